"""Pretraining with the blend-then-predict objective (MoleBLEND, ICLR 2024), with Accelerate.

    moleblend pretrain --train_file corpus.sdf.gz --config_name small --max_train_steps 1000 \\
        --checkpointing_steps 200 --resume_from_checkpoint latest --output_dir pre/
    accelerate launch --num_processes 2 -m modeling_moleblend.cli pretrain ...        # data-parallel
    accelerate launch --mixed_precision bf16 -m modeling_moleblend.cli pretrain ...  # precision: the launcher's
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 -m modeling_moleblend.cli pretrain ...
        (2 CPU processes over gloo; in accelerate 1.15 `--cpu --num_processes 2` alone starts one process)

Data: an SDF (its 3D coordinates are used: QM9, PCQM4Mv2) or SMILES (CSV column or .smi file; conformers are
generated once, in parallel, and cached). The corpus is featurized once into a disk cache (--data_cache_dir) that
later runs, and the other processes of a launch, stream from. A seeded --validation_split_percentage of the
molecules is held out; validation reports every loss component (SPD, edge, 3D distance, denoising).

Batches: molecules of similar size are batched together (sorted by atom count within large random pools, batches
shuffled), deterministically per (seed, epoch), so that --resume_from_checkpoint continues exactly: same data
order, same schedule, same RNG state, the batches already done in the resumed epoch skipped. A checkpoint
records its run's updates, warm-up, learning rate, total batch, process count and held-out split: resuming it under
other values is an input error (the restored schedule would otherwise be re-planned mid-run without a word).

Outputs in OUTPUT_DIR: the final model (save_pretrained of MoleBlendForPretraining + the featurizer + a model
card README.md: MoleBlendForPropertyPrediction.from_pretrained and `moleblend finetune --model_name_or_path` take
it), pretraining_log.jsonl (one line per log step and per validation), pretraining_curves.png, all_results.json,
featurization_report.json, and step_N/ (or epoch_E/) checkpoints written by accelerator.save_state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..configuration_moleblend import MOLEBLEND_PRESETS, MoleBlendConfig
from ..data import InputError, LengthBucketedBatchSampler, featurize_table, padding_counts, read_molecule_table
from ..data.descriptors import STATISTICS_NAME as DESCRIPTOR_STATISTICS_NAME
from ..data.descriptors import DescriptorScaler, cached_descriptors
from ..data.samplers import split_train_validation
from ..evaluation.plots import plot_pretraining_curves
from ..files import publish, temporary_folder
from ..modeling_moleblend import MoleBlendForPretraining
from ..tokenization import CONFORMER_POLICIES, FEATURE_COLUMNS, MoleBlendCollator, MoleBlendFeaturizer
from .checkpoints import (
    TRAINER_STATE_NAME,
    append_jsonl,
    checkpoint_completed_steps,
    checkpoint_problem,
    checkpoint_setting_changes,
    complete_checkpoints,
    prune_checkpoints,
    read_jsonl,
    write_jsonl,
)
from .common import (
    HubArguments,
    SavedResult,
    build_featurizer,
    hardware_description,
    optimizer_groups,
    option,
    parse_config_overrides,
    required_option,
    set_quiet,
)

logger = logging.getLogger(__name__)
LOG_NAME = "pretraining_log.jsonl"
RESULTS_NAME = "all_results.json"
LOSS_COMPONENTS = ("loss", "spd_loss", "edge_loss", "distance_loss", "denoise_loss")
DESCRIPTOR_COMPONENT = "descriptor_loss"  # logged only when the descriptor head is trained
EVAL_SEED_OFFSET = 1_000_003  # validation draws its blend masks and noise from its own fixed seed


@dataclass(kw_only=True)
class PretrainArguments(HubArguments):
    """Every setting of a pretraining run; the ``moleblend pretrain`` options are these fields."""

    # data
    train_file: Path = required_option(
        "SDF (.sdf/.sdf.gz: its 3D is used), CSV/TSV/SMI (optionally .gz) or a datasets folder", "data"
    )
    smiles_column: str = option("smiles", "SMILES column of a table", "data")
    validation_split_percentage: float = option(5.0, "held out, seeded (0 = none)", "data")
    validation_split_seed: int | None = option(
        None,
        "seed of the held-out split (default: --seed); keep it to continue on a corpus under another --seed",
        "data",
    )
    max_train_samples: int | None = option(None, "keep only this many training molecules", "data")
    max_eval_samples: int | None = option(None, "keep only this many validation molecules", "data")
    conformer: str = option("auto", "3D source: auto = the file's, else generated (none: no 3D, the 3D losses vanish)",
                          "data", choices=CONFORMER_POLICIES)  # fmt: skip
    max_atoms: int = option(512, "larger molecules are skipped (and reported)", "data")
    num_workers: int | None = option(None, "conformer-generation processes (default: all cores)", "data")
    data_cache_dir: Path | None = option(
        None, "featurized-corpus cache, reused by later runs (default: OUTPUT_DIR/featurized)", "data",
        aliases=("--cache_dir",),
    )  # fmt: skip
    megabatch_batches: int = option(50, "length bucketing: sort by size within pools of N batches", "data")
    pad_to_multiple_of: int | None = option(None, "atoms + graph token padded to it (default: 8 on GPU)", "data")

    # model
    model_name_or_path: str | None = option(None, "continue from a MoleBlend folder or Hub id", "model")
    config_name: str = option(
        "small", "preset of a model trained from scratch", "model", choices=sorted(MOLEBLEND_PRESETS)
    )
    config_overrides: str | None = option(None, 'config fields, "k=v,k=v" (e.g. "hidden_size=64,num_kernels=16")',
                                        "model")  # fmt: skip
    descriptor_loss_weight: float = option(
        0.0, "also regress standardised RDKit 2D descriptors from the graph token, with this weight (0 = off: the "
        "paper's objective)", "model",
    )  # fmt: skip

    # training
    per_device_train_batch_size: int = option(64, "molecules per batch and process", "training")
    per_device_eval_batch_size: int = option(128, "molecules per validation batch", "training")
    learning_rate: float = option(1e-4, "peak learning rate (AdamW)", "training")
    weight_decay: float = option(0.01, "not applied to biases and norms", "training")
    num_train_epochs: int = option(10, "epochs (--max_train_steps overrides)", "training")
    max_train_steps: int | None = option(None, "optimizer updates; overrides epochs", "training")
    gradient_accumulation_steps: int = option(1, "micro-batches per update", "training")
    num_warmup_steps: int | None = option(None, "default: --warmup_ratio of the steps", "training")
    warmup_ratio: float = option(0.06, "linear warm-up, then cosine decay", "training")
    max_grad_norm: float = option(5.0, "gradient clipping (0 = off)", "training")
    seed: int = option(42, "weights, batches, blend masks, noise", "training")
    mixed_precision: str | None = option(None, "default: the launcher's", "training", choices=("no", "fp16", "bf16"))

    # run
    output_dir: Path = required_option("model, logs, checkpoints", "run")
    checkpointing_steps: str | None = option(None, "N (every N updates) or 'epoch'", "run")
    save_total_limit: int | None = option(None, "keep only the newest N checkpoints", "run")
    resume_from_checkpoint: str | None = option(None, "a checkpoint folder, or 'latest' in OUTPUT_DIR", "run")
    eval_steps: int | None = option(None, "validate every N updates (default: every epoch)", "run")
    logging_steps: int = option(10, "log training losses every N updates", "run")
    with_tracking: bool = option(False, "log to --report_to through accelerate", "run")
    report_to: str = option("tensorboard", "tracker(s) for --with_tracking, e.g. tensorboard", "run")
    quiet: bool = option(False, "no progress bars", "run")

    def check(self) -> None:
        self.check_hub()
        if self.checkpointing_steps is not None and self.checkpointing_steps != "epoch":
            if not str(self.checkpointing_steps).isdigit() or int(self.checkpointing_steps) < 1:
                raise InputError(
                    f"--checkpointing_steps must be a positive integer or 'epoch', got {self.checkpointing_steps!r}"
                )
            self.checkpointing_steps = int(self.checkpointing_steps)
        for name in ("logging_steps", "eval_steps", "per_device_train_batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"--{name} must be >= 1")
        if self.descriptor_loss_weight < 0:
            raise InputError(f"--descriptor_loss_weight must be >= 0, got {self.descriptor_loss_weight}")


@dataclass
class PretrainResult(SavedResult):
    """What a pretraining run did; saved as ``OUTPUT_DIR/all_results.json``."""

    RESULTS_NAME = RESULTS_NAME

    data: dict
    training: dict
    model: dict
    num_parameters: int
    final_train: dict | None
    final_validation: dict | None
    throughput_molecules_per_second: float | None
    wall_time_s: float
    hardware: str
    featurizer: dict = field(default_factory=dict)
    architecture: dict = field(default_factory=dict)
    output_dir: Path | None = None


# ---------------------------------------------------------------------------------------------------------- setup


def build_model(args, num_descriptors: int = 0) -> MoleBlendForPretraining:
    overrides = parse_config_overrides(args.config_overrides)
    overrides["input_modality"] = "2d3d"  # blending needs both views
    if num_descriptors:
        overrides.update(num_descriptors=num_descriptors, descriptor_loss_weight=args.descriptor_loss_weight)
    if args.model_name_or_path:
        start = starting_point(args)
        config = MoleBlendConfig.from_pretrained(start, **overrides)
        return MoleBlendForPretraining.from_pretrained(start, config=config)
    return MoleBlendForPretraining(MoleBlendConfig.from_preset(args.config_name, **overrides))


def starting_point(args) -> str:
    """``--model_name_or_path`` as a folder or Hub id (``builtin:NAME``: the shipped checkpoint's folder)."""
    from ..inference import resolve_model_paths

    return resolve_model_paths(args.model_name_or_path)[0]


def checkpoint_candidates(args, updates_per_epoch: int) -> list[Path]:
    """The checkpoints to try, in order: the named folder, or with ``latest`` every complete one, newest first."""
    if not args.resume_from_checkpoint:
        return []
    if args.resume_from_checkpoint == "latest":
        complete = complete_checkpoints(args.output_dir, updates_per_epoch)
        if not complete:
            logger.info(f"--resume_from_checkpoint latest: no checkpoint in {args.output_dir}, starting fresh")
        return complete
    path = Path(args.resume_from_checkpoint)
    if not path.is_dir():
        raise InputError(f"--resume_from_checkpoint: {path} is not a folder")
    if (problem := checkpoint_problem(path)) is not None:
        raise InputError(f"--resume_from_checkpoint: {path} is not a complete checkpoint: {problem}")
    return [path]


def load_checkpoint(accelerator, candidates: list[Path], named: bool) -> Path | None:
    """Load the first candidate that loads; one that fails is skipped with a warning (a named one is an error)."""
    for candidate in candidates:
        try:
            accelerator.load_state(str(candidate))
            return candidate
        except Exception as error:  # a corrupt file that passed the completeness check
            if named:
                raise InputError(f"--resume_from_checkpoint: {candidate} does not load: {error}") from error
            logger.warning("skipping the checkpoint %s: it does not load (%s)", candidate, error)
    return None


@contextlib.contextmanager
def fixed_rng(seed: int, device: torch.device):
    """Run a block on a torch RNG seeded with ``seed``, then restore the RNG state it had: validation sees the
    same blend masks and noise at every evaluation, and does not shift the training run's random stream."""
    devices = [device.index or 0] if device.type == "cuda" else []  # the CPU generator is always forked
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def evaluate(model, dataloader, accelerator, seed: int, components=LOSS_COMPONENTS) -> dict[str, float]:
    """Mean of each loss component over the validation molecules (every process's, each counted once)."""
    model.eval()
    per_molecule = []
    with torch.no_grad(), fixed_rng(seed, accelerator.device):
        for batch in dataloader:
            outputs = model(**batch)
            values = torch.stack([outputs[name].detach().float() for name in components])
            # each molecule carries its batch's means: the result weights batches by their molecules
            rows = values.expand(batch["num_atoms"].shape[0], -1)
            per_molecule.append(accelerator.gather_for_metrics(rows))
    model.train()
    means = torch.cat(per_molecule).mean(dim=0)
    return {f"eval_{name}": float(value) for name, value in zip(components, means)}


class TrainingWindow:
    """Sums since the last log line: loss components, micro-batches, molecules, padding counts, training seconds
    (the clock is paused during validation and checkpointing)."""

    def __init__(self, device: torch.device, components=LOSS_COMPONENTS):
        self.device = device
        self.components = components
        self.running = False
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(len(self.components) + 6, dtype=torch.float64, device=self.device)
        self.seconds = 0.0

    def resume(self) -> None:
        if not self.running:
            self.started, self.running = time.perf_counter(), True

    def pause(self) -> None:
        if self.running:
            self.seconds += time.perf_counter() - self.started
            self.running = False

    def add(self, outputs, batch) -> None:
        losses = torch.stack([outputs[name].detach().to(torch.float64) for name in self.components])
        counts = torch.cat([losses.new_tensor([1.0, batch["num_atoms"].shape[0]]), padding_counts(batch)])
        self.sums += torch.cat([losses, counts.to(losses.device)])

    def summary(self, accelerator) -> tuple[dict[str, float], int, float]:
        """(log entry, molecules, seconds), reduced over processes (every process must call it); then resets."""
        self.pause()
        sums = accelerator.reduce(self.sums.clone(), reduction="sum").tolist()
        micro_batches, molecules, atoms, atom_slots, pairs, pair_slots = sums[len(self.components) :]
        seconds = self.seconds  # the main process's clock
        entry = {f"train_{name}": sums[i] / max(micro_batches, 1) for i, name in enumerate(self.components)}
        entry["molecules_per_second"] = molecules / max(seconds, 1e-9)
        entry["atom_padding_efficiency"] = atoms / max(atom_slots, 1)
        entry["pair_padding_efficiency"] = pairs / max(pair_slots, 1)
        self.reset()
        self.resume()
        return entry, int(molecules), seconds


# ---------------------------------------------------------------------------------------------------------- main


def pretrain(args: PretrainArguments) -> PretrainResult:
    """Pretrain as the module docstring says; returns (and saves) the ``PretrainResult``.

    Raises:
        InputError: bad arguments or data (no such file, no molecule featurized, a missing checkpoint folder).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    args.check()
    started = time.perf_counter()
    log_with = None
    if args.with_tracking:
        log_with = _available_trackers(args.report_to)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,  # None: what `accelerate launch` / its config says
        log_with=log_with,
        project_dir=str(args.output_dir),
    )
    set_quiet(args.quiet or not accelerator.is_local_main_process)
    logger.debug("%s", accelerator.state)
    set_seed(args.seed)  # the same initial weights on every process
    out: Path = args.output_dir
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()

    # ---- data: featurize once (the main process writes the cache, the others read it), split, batch
    table = read_molecule_table(args.train_file, args.smiles_column)
    featurizer = build_featurizer(args.model_name_or_path, args.conformer, args.max_atoms, args.num_workers)
    with accelerator.main_process_first():
        dataset, report = featurize_table(
            table,
            featurizer,
            cache_dir=args.data_cache_dir or (out / "featurized"),
            progress=False if args.quiet else None,
        )
    if accelerator.is_main_process:
        (out / "featurization_report.json").write_text(json.dumps(report.to_dict(), indent=2))
    logger.info(f"featurization: {report.summary(max_listed=10)}")
    split_seed = args.seed if args.validation_split_seed is None else args.validation_split_seed
    train_idx, eval_idx = split_train_validation(len(dataset), args.validation_split_percentage, split_seed)
    train_idx = train_idx[: args.max_train_samples] if args.max_train_samples else train_idx
    eval_idx = eval_idx[: args.max_eval_samples] if args.max_eval_samples else eval_idx
    if len(train_idx) == 0:
        raise InputError(f"{args.train_file}: no training molecules; see {out / 'featurization_report.json'}")
    features = dataset.select_columns(list(FEATURE_COLUMNS)).with_format("numpy")
    train_dataset = features.select(train_idx, keep_in_memory=True)
    eval_lengths = (
        np.asarray(dataset.select(eval_idx, keep_in_memory=True)["num_atoms"]) if len(eval_idx) else np.zeros(0)
    )
    # validation in size order: little padding, and the order does not matter for a mean
    eval_order = eval_idx[np.argsort(eval_lengths, kind="stable")]
    eval_dataset = features.select(eval_order, keep_in_memory=True) if len(eval_idx) else None
    components, scaler = LOSS_COMPONENTS, None
    if args.descriptor_loss_weight > 0:
        scaler, targets = descriptor_targets(args, dataset, train_idx, out, accelerator)
        train_dataset = with_descriptors(train_dataset, targets[train_idx])
        eval_dataset = with_descriptors(eval_dataset, targets[eval_order]) if eval_dataset is not None else None
        components = (*LOSS_COMPONENTS, DESCRIPTOR_COMPONENT)
    logger.info(f"{len(train_dataset)} training and {len(eval_idx)} validation molecules")

    pad_to = args.pad_to_multiple_of or (8 if accelerator.device.type == "cuda" else None)
    collator = MoleBlendCollator(pad_to_multiple_of=pad_to)
    bucket_sampler = LengthBucketedBatchSampler(
        np.asarray(dataset.select(train_idx, keep_in_memory=True)["num_atoms"]),
        args.per_device_train_batch_size,
        seed=args.seed,
        megabatch_batches=args.megabatch_batches,
    )
    # the loader gets its own generator so that creating an iterator never draws from the global torch RNG
    train_dataloader = DataLoader(
        train_dataset, batch_sampler=bucket_sampler, collate_fn=collator, generator=torch.Generator()
    )
    eval_dataloader = None
    if eval_dataset is not None:
        eval_dataloader = DataLoader(eval_dataset, batch_size=args.per_device_eval_batch_size, collate_fn=collator)

    # ---- model, optimizer, schedule
    model = build_model(args, num_descriptors=len(scaler.names) if scaler else 0)
    set_seed(args.seed, device_specific=True)  # blend masks, noise and dropout differ between processes
    optimizer = torch.optim.AdamW(optimizer_groups(model, args.weight_decay), lr=args.learning_rate)
    model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)
    if eval_dataloader is not None:
        eval_dataloader = accelerator.prepare(eval_dataloader)
    # after prepare: sharding across processes changed the number of batches per process
    updates_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    steps_given = args.max_train_steps is not None
    if not steps_given:
        args.max_train_steps = args.num_train_epochs * updates_per_epoch
    args.num_train_epochs = math.ceil(args.max_train_steps / updates_per_epoch)
    if args.num_warmup_steps is None:
        args.num_warmup_steps = int(args.warmup_ratio * args.max_train_steps)
    # the prepared scheduler steps once per process per update: scale the step counts the same way
    lr_scheduler = get_scheduler(
        "cosine",
        optimizer=optimizer,
        num_warmup_steps=args.num_warmup_steps * accelerator.num_processes,
        num_training_steps=args.max_train_steps * accelerator.num_processes,
    )
    lr_scheduler = accelerator.prepare(lr_scheduler)
    unwrapped = accelerator.unwrap_model(model)
    num_parameters = sum(p.numel() for p in unwrapped.parameters())

    if args.with_tracking and log_with:
        accelerator.init_trackers("moleblend_pretraining", tracker_config(args))

    total_batch = args.per_device_train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"***** Pretraining *****  molecules {len(train_dataset)}, epochs {args.num_train_epochs}, batch per device "
        f"{args.per_device_train_batch_size}, total batch {total_batch}, "
        f"accumulation {args.gradient_accumulation_steps}, updates {args.max_train_steps} "
        f"({updates_per_epoch}/epoch), warm-up {args.num_warmup_steps}, "
        f"parameters {num_parameters / 1e6:.2f} M"
    )

    # ---- resume: weights, optimizer, schedule and RNG states from the checkpoint; skip the batches done
    completed_steps, starting_epoch, skip_batches = 0, 0, 0
    # what a resumed run must share with its checkpoint (the prepared scheduler counts num_processes steps per update)
    recorded = {"max_train_steps": args.max_train_steps, "num_warmup_steps": args.num_warmup_steps,
                "learning_rate": args.learning_rate, "total_batch_size": total_batch,
                "num_processes": accelerator.num_processes, "validation_split_seed": split_seed}  # fmt: skip
    candidates = checkpoint_candidates(args, updates_per_epoch)
    checkpoint = load_checkpoint(accelerator, candidates, named=args.resume_from_checkpoint != "latest")
    if candidates and checkpoint is None:
        logger.warning("no checkpoint in %s loads: starting fresh", args.output_dir)
    if checkpoint is not None:
        # the restored scheduler and optimizer keep the checkpoint's lr and step count but would follow this
        # run's schedule from here: a run resumed under other settings is refused, not silently re-planned
        if changes := checkpoint_setting_changes(checkpoint, recorded):
            derived = "" if steps_given else " (max_train_steps from --num_train_epochs and the batches per epoch)"
            raise InputError(
                f"--resume_from_checkpoint: {checkpoint} was written by a run with other settings "
                f"({'; '.join(changes)}){derived}; resume with that run's settings, or start a new --output_dir "
                "(--model_name_or_path a finished run's folder continues its weights under a new schedule)"
            )
        completed_steps = checkpoint_completed_steps(checkpoint, updates_per_epoch)
        if completed_steps is None:
            raise InputError(f"{checkpoint}: cannot tell how many updates it holds (no {TRAINER_STATE_NAME})")
        starting_epoch = completed_steps // updates_per_epoch
        skip_batches = (completed_steps % updates_per_epoch) * args.gradient_accumulation_steps
        logger.info(f"resumed from {checkpoint}: step {completed_steps}, epoch {starting_epoch}, skip {skip_batches}")

    log_path = out / LOG_NAME
    if accelerator.is_main_process:  # a resumed run keeps the history up to its checkpoint, a fresh one none
        kept = [e for e in read_jsonl(log_path) if e.get("step", math.inf) <= completed_steps] if checkpoint else []
        write_jsonl(log_path, kept)

    def record(entry: dict) -> None:
        if accelerator.is_main_process:
            append_jsonl(log_path, entry)
        if args.with_tracking and log_with:
            accelerator.log({k: v for k, v in entry.items() if k != "step"}, step=entry["step"])

    def validate() -> dict[str, float] | None:
        if eval_dataloader is None:
            return None
        result = evaluate(model, eval_dataloader, accelerator, args.seed + EVAL_SEED_OFFSET, components)
        record({"step": completed_steps, "epoch": completed_steps / updates_per_epoch, **result})
        logger.info(f"step {completed_steps} validation: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
        return result

    def save_checkpoint(name: str) -> None:
        """Every process writes into one temporary folder; the main one adds the state file (the completeness
        marker) and renames the folder into place: a kill leaves no half-written ``step_N``."""
        folder, temporary = out / name, temporary_folder(out / name)
        if accelerator.is_main_process:
            shutil.rmtree(temporary, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(temporary))  # weights, optimizer, scheduler, RNG states of every process
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            state = {"completed_steps": completed_steps, "epoch": epoch, **recorded}
            (temporary / TRAINER_STATE_NAME).write_text(json.dumps(state))
            publish(temporary, folder)
            prune_checkpoints(out, args.save_total_limit, updates_per_epoch)
        accelerator.wait_for_everyone()

    # ---- train
    progress_bar = tqdm(
        total=args.max_train_steps,
        initial=completed_steps,
        disable=not accelerator.is_local_main_process or args.quiet,
        desc="pretraining",
    )
    window = TrainingWindow(accelerator.device, components)
    train_seconds, train_molecules = 0.0, 0
    last_eval, last_train_entry, grad_norm, epoch = None, None, None, starting_epoch
    last_eval_step = -1
    model.train()
    for epoch in range(starting_epoch, args.num_train_epochs):
        if completed_steps >= args.max_train_steps:
            break
        bucket_sampler.set_epoch(epoch)
        train_dataloader.set_epoch(epoch)  # accelerate's own epoch counter, kept equal
        active_dataloader = train_dataloader
        if epoch == starting_epoch and skip_batches:
            active_dataloader = accelerator.skip_first_batches(train_dataloader, skip_batches)
        window.resume()
        for batch in active_dataloader:
            with accelerator.accumulate(model):
                outputs = model(**batch)
                accelerator.backward(outputs.loss)  # accelerate divides by the accumulation steps itself
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            window.add(outputs, batch)
            if not accelerator.sync_gradients:
                continue
            completed_steps += 1
            progress_bar.update(1)
            if completed_steps % args.logging_steps == 0 or completed_steps == args.max_train_steps:
                entry, molecules, seconds = window.summary(accelerator)
                train_molecules, train_seconds = train_molecules + molecules, train_seconds + seconds
                entry = {"step": completed_steps, "epoch": completed_steps / updates_per_epoch, **entry}
                entry["learning_rate"] = lr_scheduler.get_last_lr()[0]
                if grad_norm is not None:
                    entry["grad_norm"] = float(grad_norm)
                record(entry)
                last_train_entry = entry
                progress_bar.set_postfix(loss=f"{entry['train_loss']:.3f}", refresh=False)
            window.pause()
            if args.eval_steps and completed_steps % args.eval_steps == 0:
                last_eval, last_eval_step = validate(), completed_steps
            if isinstance(args.checkpointing_steps, int) and completed_steps % args.checkpointing_steps == 0:
                save_checkpoint(f"step_{completed_steps}")
            window.resume()
            if completed_steps >= args.max_train_steps:
                break
        window.pause()
        if args.eval_steps is None and last_eval_step != completed_steps:
            last_eval, last_eval_step = validate(), completed_steps
        if args.checkpointing_steps == "epoch" and completed_steps % updates_per_epoch == 0:  # whole epochs only
            save_checkpoint(f"epoch_{epoch}")
    progress_bar.close()
    if last_eval_step != completed_steps:
        last_eval = validate()

    # ---- export: the model (pretraining heads included), its featurizer, a card, logs and a figure
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(out, is_main_process=accelerator.is_main_process)
    config = unwrapped.config
    result = PretrainResult(
        data={
            "file": str(args.train_file),
            "num_rows": len(table),
            "num_featurized": len(dataset),
            "num_skipped": len(report.skipped),
            "train_molecules": len(train_dataset),
            "validation_molecules": len(eval_idx),
            "validation_split": f"seeded random {args.validation_split_percentage:g}% (seed {split_seed})",
        },
        training={
            "completed_steps": completed_steps,
            "epochs": completed_steps / updates_per_epoch,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "total_batch_size": total_batch,
            "num_processes": accelerator.num_processes,
            "learning_rate": args.learning_rate,
            "num_warmup_steps": args.num_warmup_steps,
            "weight_decay": args.weight_decay,
            "max_grad_norm": args.max_grad_norm,
            "descriptor_loss_weight": args.descriptor_loss_weight,
            "num_descriptors": len(scaler.names) if scaler else 0,
            "mixed_precision": accelerator.mixed_precision,
            "seed": args.seed,
            "resumed_from": str(checkpoint) if checkpoint else None,
        },
        model={"start": args.model_name_or_path or f"scratch ({args.config_name} preset)"},
        num_parameters=num_parameters,
        final_train=last_train_entry,
        final_validation=last_eval,
        # this run's training time only (a resumed run: since the resume)
        throughput_molecules_per_second=train_molecules / train_seconds if train_seconds else None,
        wall_time_s=time.perf_counter() - started,
        hardware=hardware_description(accelerator.device, accelerator.num_processes)
        + f", mixed precision {accelerator.mixed_precision}",
        featurizer={"max_atoms": featurizer.max_atoms, "conformer": featurizer.conformer, "mmff": featurizer.mmff},
        architecture={
            "Layers": config.num_hidden_layers,
            "Hidden size": config.hidden_size,
            "Attention heads": config.num_attention_heads,
            "Input modality": config.input_modality,
            "Parameters": f"{num_parameters / 1e6:.2f} M (pretraining heads included)",
        },
        output_dir=out,
    )
    if accelerator.is_main_process:
        from ..hub import export_and_push, pretraining_card
        from ..hub_card import write_model_card

        MoleBlendFeaturizer(**{**featurizer.to_dict(), "num_workers": 1, "errors": "raise"}).save_pretrained(out)
        if scaler is not None:
            scaler.save(out)
        result.save(out)
        plot_pretraining_curves(
            read_jsonl(log_path),
            out / "pretraining_curves.png",
            f"MoleBlend pretraining on {Path(args.train_file).name}",
        )
        write_model_card(out, pretraining_card(result))
        logger.info(f"model, featurizer, card and logs written to {out} ({result.wall_time_s:.0f} s)")
        if args.push_to_hub:
            message = f"MoleBlend pretrained on {Path(args.train_file).name} ({completed_steps} steps)"
            info = export_and_push(args, out, out / "hub", message)
            logger.warning(f"pushed to {args.hub_model_id}: {info.commit_url}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


# ---------------------------------------------------------------------------------------------------------- helpers


def with_descriptors(rows, descriptors: np.ndarray):
    """The featurized rows with each molecule's standardised descriptors as a float32 ``descriptors`` column (the
    collator stacks it; the loader keeps fetching whole batches from the table)."""
    from datasets import List, Value

    return rows.add_column("descriptors", list(descriptors), feature=List(Value("float32")))


def descriptor_targets(args, dataset, train_idx, out: Path, accelerator) -> tuple[DescriptorScaler, np.ndarray]:
    """The standardised descriptor targets of every featurized molecule ``[molecules, descriptors]`` and their
    scaler: the starting checkpoint's (so its head keeps its meaning), else fitted on the training molecules. The raw
    values are cached beside the featurized corpus (the main process computes them, the others read them)."""
    cache_dir = args.data_cache_dir or (out / "featurized")
    with accelerator.main_process_first():
        values = cached_descriptors(
            dataset["smiles"], cache_dir, num_workers=args.num_workers or 1, progress=False if args.quiet else None
        )
    start = Path(starting_point(args)) if args.model_name_or_path else None
    if start is not None and (start / DESCRIPTOR_STATISTICS_NAME).exists():
        scaler = DescriptorScaler.load(start)
        logger.info(f"descriptor targets: the {len(scaler.names)} descriptors of {start}")
    else:
        scaler = DescriptorScaler.fit(values[train_idx])
        logger.info(f"descriptor targets: {len(scaler.names)} RDKit descriptors (constant ones dropped)")
    missing = int(np.isnan(values).any(axis=1).sum())
    if missing:
        logger.info(f"descriptor targets: {missing} molecules miss some values (not scored)")
    return scaler, scaler.transform(values)


def _available_trackers(report_to: str) -> list[str] | None:
    """The requested trackers that are installed (a missing one is a warning, not a crash mid-setup)."""
    from accelerate.utils import is_tensorboard_available, is_wandb_available

    checks = {"tensorboard": is_tensorboard_available, "wandb": is_wandb_available}
    wanted = list(checks) if report_to == "all" else [name.strip() for name in report_to.split(",")]
    available = [name for name in wanted if name in checks and checks[name]()]
    for name in set(wanted) - set(available):
        logger.warning(f"tracker {name!r} is not installed (or not supported): not used")
    return available or None


def tracker_config(args: PretrainArguments) -> dict:
    """The run's settings for the experiment tracker: primitives only (TensorBoard cannot log paths or None), and
    never a secret (every ``*token*`` argument is left out)."""
    values = {k: v for k, v in vars(args).items() if "token" not in k.lower()}
    return {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in values.items()}
