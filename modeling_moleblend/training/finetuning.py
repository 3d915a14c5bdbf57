"""Finetuning on molecular property data with the transformers ``Trainer``, under the MoleculeNet protocol.

    from modeling_moleblend.training import FinetuneArguments, finetune

    result = finetune(FinetuneArguments(train_file="data.csv", label_columns=["logS"], output_dir="out/"))
    result.aggregate["test"]["rmse"]          # {"mean": ..., "std": ..., "values": [...]}

Protocol: the split (scaffold 8:1:1 by default, deterministic) is computed once on the featurizable molecules and
written to ``OUTPUT_DIR/splits.json``; every seed trains a model, keeps the epoch with the best validation metric
(RMSE for regression, ROC-AUC for classification) and reports test metrics at that epoch; the test split is never
used for selection. A random forest on Morgan fingerprints is trained on the same split as a baseline.

Outputs in ``OUTPUT_DIR``: ``results.json`` (``FinetuneResult``), ``predictions_test.csv``, ``learning_curve.png``,
``parity.png`` or ``roc.png``, ``splits.json``, ``featurization_report.json``, ``seeds/seed_K/model`` (each seed's
model) and ``model/`` (the seed with the best validation metric: save_pretrained + featurizer + model card).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..configuration_moleblend import MOLEBLEND_PRESETS, MoleBlendConfig
from ..data import InputError, featurize_table, infer_problem_type, label_statistics, make_split, read_molecule_table
from ..data.descriptors import DescriptorScaler
from ..data.samplers import LengthBucketedSampler, SortedByLengthSampler
from ..data.splits import carve_validation, column_split
from ..data.tables import concatenate_tables
from ..evaluation.baselines import random_forest_baseline
from ..evaluation.metrics import aggregate_seeds, classification_metrics, regression_metrics
from ..evaluation.plots import plot_learning_curve, plot_parity, plot_reliability, plot_roc
from ..evaluation.predictions import prediction_columns, write_table
from ..evaluation.uncertainty import (
    Calibration,
    calibrated_probabilities,
    classification_calibration,
    regression_uncertainty,
)
from ..files import write_json_atomic
from ..inference import predict_properties, resolve_model_paths, to_probabilities
from ..modeling_moleblend import MoleBlendForPropertyPrediction
from ..pretrained import BUILTIN_PREFIX, DEFAULT_CHECKPOINT, available_checkpoints
from ..tokenization import CONFORMER_POLICIES, FEATURE_COLUMNS, MoleBlendCollator
from ..tokenization.descriptors_moleblend import descriptor_names, morgan_names
from .checkpoints import checkpoint_problem
from .common import (
    HubArguments,
    SavedResult,
    build_featurizer,
    hardware_description,
    jsonable,
    option,
    parse_config_overrides,
    required_option,
    set_quiet,
)

logger = logging.getLogger(__name__)
CLASSIFICATION = "multi_label_classification"
RESULTS_NAME = "results.json"
MIN_MOLECULES = 10  # fewer cannot fill a train / validation / test split
# the default recipe, chosen on validation (docs/benchmarks.md section 6): a head reading the graph token and the
# mean of the atoms, learning rate 5e-4; the paper's graph-token readout stays available (--readout graph_token)
DEFAULT_READOUT = "graph_token+mean"
# Without --model_name_or_path, the small preset starts from the shipped checkpoint: it beat training from scratch
# on the mean of the public sets' validation splits (docs/benchmarks.md section 13). --from_scratch opts out.
DEFAULT_START = BUILTIN_PREFIX + DEFAULT_CHECKPOINT
ARCHITECTURE_FIELDS = {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "num_kernels",
                       "max_spd", "max_hops", "hidden_act", "input_modality"}  # fmt: skip


@dataclass(kw_only=True)
class FinetuneArguments(HubArguments):
    """Every setting of a finetuning run; the ``moleblend finetune`` options are these fields."""

    # data
    train_file: Path = required_option("CSV/TSV/SMI (optionally .gz), SDF (.sdf, .sdf.gz) or a datasets folder", "data")
    validation_file: Path | None = option(
        None, "a predefined validation set (same columns); with --test_file, no split is computed", "data"
    )
    test_file: Path | None = option(None, "a predefined test set (same columns), evaluated once at the end", "data")
    smiles_column: str = option("smiles", "SMILES column of a table", "data")
    label_columns: list[str] = required_option("columns (SDF tags) to predict, one task each", "data", nargs="+")
    problem_type: str = option(
        "auto", "auto: classification if every label is 0/1 (or one of two texts)", "data",
        choices=("auto", "regression", "classification"),
    )  # fmt: skip
    split: str = option("scaffold", "how rows are split 8:1:1", "data", choices=("scaffold", "random", "column"))
    split_column: str | None = option(
        None, "with --split column: train / validation / test per row (train and test only: validation is carved "
        "out of train, see --carve_validation)", "data",
    )  # fmt: skip
    carve_validation: str = option(
        "scaffold", "how validation is carved out of train when the data names only train and test", "data",
        choices=("scaffold", "random"),
    )  # fmt: skip
    split_fractions: list[float] = option([0.8, 0.1, 0.1], "train, validation, test fractions", "data", nargs=3)
    split_seed: int = option(0, "seed of --split random (scaffold is deterministic)", "data")
    scaffold_ties: str = option(
        "deepchem", "order of equal-size scaffold sets (deepchem: the MoleculeNet convention)", "data",
        choices=("deepchem", "ascending"),
    )  # fmt: skip
    data_cache_dir: Path | None = option(
        None, "featurized-data cache, reused by runs on the same data (default: OUTPUT_DIR/featurized)", "data",
        aliases=("--cache_dir",),
    )  # fmt: skip

    # model
    model_name_or_path: str | None = option(
        None, "start from a MoleBlend model folder, a finetune output folder or a Hub id", "model"
    )
    revision: str | None = option(None, "Hub revision (branch, tag or commit) of the model", "model")
    from_scratch: bool = option(
        False, "train from the --config_name preset instead of the shipped pretrained checkpoint (builtin:small), "
        "the default start of the small preset", "model",
    )  # fmt: skip
    config_name: str = option(
        "small", "preset of a model trained from scratch", "model", choices=sorted(MOLEBLEND_PRESETS)
    )
    config_overrides: str | None = option(None, 'config fields, "k=v,k=v" (e.g. "activation_dropout=0.1")', "model")
    input_modality: str | None = option(
        None, "2d, 3d or 2d3d (default: the model's; 2d from scratch)", "model", choices=("2d", "3d", "2d3d")
    )
    conformer: str = option("auto", "3D source for 3d/2d3d (auto: the file's, else generated)", "model",
                          choices=CONFORMER_POLICIES)  # fmt: skip
    conformer_fallback: str | None = option(
        None, "a molecule whose conformer cannot be made: error (skipped and reported) or 2d (kept, without 3D); "
        "default: the starting model's featurizer's, else error", "model", choices=("error", "2d"),
    )  # fmt: skip
    max_atoms: int = option(512, "heavy atoms; larger molecules are skipped and reported", "model")
    num_workers: int | None = option(None, "conformer-generation processes (default: all cores)", "model")

    # training
    seeds: list[int] = option([0, 1, 2], "one model per seed; mean +- std over them", "training", nargs="+")
    num_train_epochs: float = option(50, "maximum epochs", "training")
    learning_rate: float = option(5e-4, "peak learning rate (AdamW, linear warm-up and decay)", "training")
    per_device_train_batch_size: int = option(32, "molecules per training batch", "training")
    per_device_eval_batch_size: int = option(64, "molecules per evaluation batch", "training")
    length_group_batches: int = option(
        0, "training batches of similar-size molecules: each epoch, shuffle, sort groups of this many batches by "
        "size, shuffle the batches (more = less padding, less mixing); 0 = a quarter of the epoch, at most 50 "
        "(transformers' group_by_length). Evaluation batches are always sorted by size", "training",
    )  # fmt: skip
    warmup_ratio: float = option(0.06, "fraction of the steps for linear warm-up", "training")
    weight_decay: float = option(0.01, "AdamW weight decay", "training")
    early_stopping_patience: int = option(10, "epochs without validation improvement before stopping; 0 = off",
                                        "training")  # fmt: skip
    dropout: float | None = option(None, "attention and classifier dropout (default: the config's)", "training")
    readout: str | None = option(
        None, "what the head reads: graph_token (the paper), mean, sum, graph_token+mean (default: graph_token+mean "
        "for a new head; a finetuned model keeps its own)", "model",
        choices=("graph_token", "mean", "sum", "graph_token+mean"),
    )  # fmt: skip
    molecule_descriptors: bool = option(
        False, "the head also reads RDKit's 2D descriptors (standardised on the training rows; about 10 ms per "
        "molecule to compute, cached; going beyond the paper). A model started from one that reads them keeps "
        "them", "model",
    )  # fmt: skip
    morgan_counts: bool = option(
        False, "the head also reads a Morgan count fingerprint (radius 2, 2,048 bits: the forest's input, chemprop's "
        "morgan_count; bits constant on the training rows are dropped; going beyond the paper). Combines with "
        "--molecule_descriptors", "model",
    )  # fmt: skip
    loss: str = option("mse", "regression loss on standardised targets", "training", choices=("mse", "l1", "huber"))
    metric_for_best_model: str | None = option(
        None, "validation metric that selects the epoch and the shipped seed (default: rmse, or roc_auc for "
        "classification; mae for QM9-style energies)", "training", choices=("rmse", "mae", "roc_auc", "pr_auc"),
    )  # fmt: skip
    baseline_estimators: int = option(500, "random-forest trees of the baseline (0 = no baseline)", "training")
    output_dir: Path = required_option("where results, plots and models go", "output")
    overwrite_output_dir: bool = option(False, "start again in a non-empty OUTPUT_DIR", "output")
    resume: bool = option(
        False, "continue a killed run in OUTPUT_DIR: finished seeds are kept, the running one restarts from its last "
        "checkpoint (the same settings are required)", "output",
    )  # fmt: skip
    quiet: bool = option(False, "no progress bars or per-epoch logs", "output")
    hub_strategy: str = option(
        "end", "end: push the selected model at the end. every_save (checkpoint, all_checkpoints: the same): also push "
        "each seed's model at every save to the branch seed-K: weights, config, featurizer, code and card only, "
        "never the Trainer's pickles", "hub", choices=("end", "every_save", "checkpoint", "all_checkpoints"),
    )  # fmt: skip

    def check(self) -> None:
        """Argument combinations that cannot work: raised before any data is read."""
        self.check_hub()
        if (self.validation_file is None) != (self.test_file is None):
            raise InputError("--validation_file and --test_file go together (or give a --split_column naming train "
                             "and test, and validation is carved out of train)")  # fmt: skip
        if self.split == "column" and not self.split_column and self.validation_file is None:
            raise InputError("--split column needs --split_column NAME (the column holding train/validation/test)")
        if len(self.split_fractions) != 3 or not math.isclose(sum(self.split_fractions), 1.0, abs_tol=1e-6):
            raise InputError(f"--split_fractions must be three fractions summing to 1, got {self.split_fractions}")
        if not self.seeds:
            raise InputError("--seeds needs at least one seed")


@dataclass
class FinetuneResult(SavedResult):
    """What a finetuning run found; saved as ``OUTPUT_DIR/results.json`` (``save``/``load``)."""

    RESULTS_NAME = RESULTS_NAME

    data: dict
    protocol: str
    model: dict
    training: dict
    per_seed: list[dict]
    aggregate: dict
    best_seed: int
    wall_time_s: float
    hardware: str
    featurizer: dict = field(default_factory=dict)
    architecture: dict = field(default_factory=dict)
    uncertainty: dict = field(default_factory=dict)
    ensemble: dict = field(default_factory=dict)
    output_dir: Path | None = None

    @property
    def selection_metric(self) -> str:
        default = "roc_auc" if self.data["problem_type"] == CLASSIFICATION else "rmse"
        return self.data.get("selection_metric", default)

    @classmethod
    def find(cls, model_folder: str | Path) -> FinetuneResult | None:
        """The result of the run a model folder belongs to (``OUT/model``, ``OUT/seeds/seed_K/model``, or ``OUT``)."""
        folder = Path(model_folder).resolve()
        for candidate in (folder, *list(folder.parents)[:3]):
            if (candidate / RESULTS_NAME).is_file() and (candidate / "splits.json").is_file():
                try:
                    return cls.load(candidate)
                except (KeyError, TypeError, json.JSONDecodeError):
                    return None
        return None


def task_config(
    args: FinetuneArguments,
    config: MoleBlendConfig,
    problem_type,
    label_names,
    train_labels,
    label_maps,
    molecule_features: dict | None = None,
) -> MoleBlendConfig:
    """The property model's config: the task (names, type, regression statistics) and the finetuning recipe of the
    paper (attention dropout only: activation, hidden and drop-path dropout 0), then the user's overrides."""
    updates = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
        "problem_type": problem_type,
        "target_mean": None,
        "target_std": None,
        "activation_dropout": 0.0,
        "hidden_dropout": 0.0,
        "drop_path_rate": 0.0,
    }
    if label_maps:
        updates["label_values"] = {
            task: {str(k): v for k, v in mapping.items()} for task, mapping in label_maps.items()
        }
    if args.input_modality:
        updates["input_modality"] = args.input_modality
    if problem_type == "regression":
        updates["target_mean"], updates["target_std"] = label_statistics(train_labels)
    if args.dropout is not None:
        updates["attention_dropout"] = updates["classifier_dropout"] = args.dropout
    has_head = bool(config.problem_type) and "MoleBlendForPropertyPrediction" in (config.architectures or [])
    updates["readout"] = args.readout or (config.readout if has_head else DEFAULT_READOUT)
    updates["regression_loss"] = args.loss
    updates.update(molecule_features or {})
    updates.update(parse_config_overrides(args.config_overrides))
    data = {**config.to_dict(), **updates}
    for key in ("architectures", "transformers_version", "auto_map", "dtype", "model_type"):
        data.pop(key, None)
    return MoleBlendConfig(**data)


def with_default_start(args: FinetuneArguments) -> FinetuneArguments:
    """``args`` with the default starting point filled in (``DEFAULT_START``, 2D input unless asked), unless a model
    is given, ``from_scratch`` is set, or the run asks for another architecture (a preset other than small, or
    architecture fields in ``config_overrides``)."""
    overrides = set(parse_config_overrides(args.config_overrides))
    if args.model_name_or_path or args.from_scratch or args.config_name != "small" or overrides & ARCHITECTURE_FIELDS:
        return args
    if DEFAULT_CHECKPOINT not in available_checkpoints():
        return args
    return replace(args, model_name_or_path=DEFAULT_START, input_modality=args.input_modality or "2d")


def starting_model(name_or_path: str) -> str:
    """The model a run starts from: a finetune output folder stands for its selected ``model/``."""
    folder = Path(name_or_path)
    if folder.is_dir() and not (folder / "config.json").is_file() and (folder / "model" / "config.json").is_file():
        return str(folder / "model")
    return resolve_model_paths(name_or_path)[0]


def metric_fn(problem_type: str, label_names: list[str]):
    """The Trainer's ``compute_metrics``: the headline metrics, and per task with several tasks."""

    def compute_metrics(prediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        result = split_metrics(problem_type, prediction.label_ids, logits, label_names)
        keys = ("roc_auc", "pr_auc") if problem_type == CLASSIFICATION else ("rmse", "mae")
        flat = {name: result[name] for name in keys}
        if len(label_names) > 1:
            for task, values in result["per_task"].items():
                flat.update({f"{task}_{name}": value for name, value in values.items() if name in keys})
        return flat

    return compute_metrics


def split_metrics(problem_type, labels, outputs, label_names) -> dict:
    if problem_type == CLASSIFICATION:
        return classification_metrics(labels, outputs, label_names)
    return regression_metrics(labels, outputs, label_names)


def best_epoch(history: list[dict], metric: str, greater: bool) -> float | None:
    evals = [(h["epoch"], h[f"eval_{metric}"]) for h in history if f"eval_{metric}" in h]
    evals = [(e, v) for e, v in evals if not math.isnan(v)]
    if not evals:
        return None
    return (max if greater else min)(evals, key=lambda item: item[1])[0]


def best_seed_of(per_seed: list[dict], metric: str, greater: bool) -> int:
    """The seed with the best validation ``metric`` (the first seed when no validation score is a number, e.g. a
    validation set holding one class only: said in the log)."""
    scores = np.array([r["validation"][metric] for r in per_seed], dtype=np.float64)
    if np.isnan(scores).all():
        logger.warning("no seed has a validation %s (see results.json): shipping seed %d", metric, per_seed[0]["seed"])
        return per_seed[0]["seed"]
    return per_seed[int(np.nanargmax(scores) if greater else np.nanargmin(scores))]["seed"]


def headline(metrics: dict) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "n_tasks_scored"}


@dataclass
class FinetuneData:
    """The featurized data of a run, split: what every seed trains and is scored on."""

    table: object  # MoleculeTable
    dataset: object  # the featurized datasets.Dataset (one row per featurized molecule)
    report: object  # FeaturizationReport
    problem_type: str
    label_names: list[str]
    rows: np.ndarray  # input row of each dataset row
    split: dict[str, list[int]]  # dataset indices per split
    split_description: str
    tables: dict  # split -> model-ready datasets table
    labels: dict  # split -> [n, tasks] float32
    smiles: dict  # split -> SMILES
    selection_metric: str = "rmse"
    molecule_features: dict | None = None  # config fields of the descriptors the head reads (fitted on train)

    @property
    def greater_is_better(self) -> bool:
        return self.selection_metric in ("roc_auc", "pr_auc")


SEED_RESULT_NAME = "seed_result.json"
RUN_SETTINGS_NAME = "run_settings.json"
# arguments that may differ between a run and its --resume (they change nothing that was computed)
RESUME_FREE_ARGUMENTS = {"resume", "quiet", "overwrite_output_dir", "hub_token", "num_workers", "data_cache_dir"}


def finetune(args: FinetuneArguments, callbacks: Sequence = ()) -> FinetuneResult:
    """Run the protocol of the module docstring; returns (and saves) the ``FinetuneResult``.

    With ``args.resume``, a run killed part-way continues: seeds that finished are kept (their results, test
    predictions and models), the seed that was running restarts from its last complete Trainer checkpoint, and
    the final results equal those of an uninterrupted run. ``callbacks`` are extra ``TrainerCallback`` objects
    given to every seed's ``Trainer``.

    Raises:
        InputError: bad arguments or data (no such file or column, too few molecules, an empty split, a resume
            with other settings).
    """
    from accelerate import PartialState

    args.check()
    args = with_default_start(args)
    set_quiet(args.quiet)
    started = time.perf_counter()
    out = Path(args.output_dir)
    # under `accelerate launch` every process runs this: the main one prepares data and writes outputs
    state = PartialState(cpu=not torch.cuda.is_available())  # as the Trainer will ask (use_cpu), or no DDP on CPU
    settings = {k: v for k, v in jsonable(asdict(args)).items() if k not in RESUME_FREE_ARGUMENTS}
    _check_output_dir(out, args, settings)

    # ---- data: read (inputs checked before any model is loaded), featurize once (cached), split
    table = read_training_table(args)
    start = starting_model(args.model_name_or_path) if args.model_name_or_path else None
    config = (
        MoleBlendConfig.from_pretrained(start, revision=args.revision)
        if start
        else MoleBlendConfig.from_preset(args.config_name, input_modality=args.input_modality or "2d")
    )
    modality = args.input_modality or config.input_modality
    featurizer = build_featurizer(
        start, "none" if modality == "2d" else args.conformer, args.max_atoms, args.num_workers, args.revision,
        conformer_fallback=args.conformer_fallback,
    )  # fmt: skip
    if config.molecule_feature_names:  # the starting model reads descriptors: its featurizer computes them
        featurizer.molecule_descriptors = list(config.molecule_feature_names)
        asked = [flag for flag in ("molecule_descriptors", "morgan_counts") if getattr(args, flag)]
        if asked:
            logger.warning(
                "%s: the starting model's head reads its own %d molecule features, which are kept; %s ignored "
                "(start from a model without them to choose others)", args.model_name_or_path,
                len(config.molecule_feature_names), ", ".join(f"--{flag}" for flag in asked),
            )  # fmt: skip
    elif args.molecule_descriptors or args.morgan_counts:  # every one; the constant ones are dropped after
        featurizer.molecule_descriptors = (descriptor_names() if args.molecule_descriptors else []) + (
            morgan_names() if args.morgan_counts else []
        )
    state.wait_for_everyone()  # every process has checked before the main one writes
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / RUN_SETTINGS_NAME, settings)
    data = prepare_data(args, table, featurizer, state, out, fit_descriptors=not config.molecule_feature_names)

    # ---- one model per seed; selection on validation only
    per_seed, histories, member_outputs = [], {}, {}
    model = None
    for seed in args.seeds:
        result, history, outputs, model = train_seed(args, seed, data, config, start, featurizer, state, out,
                                                     callbacks)  # fmt: skip
        if result is None:
            continue  # not the main process: the main one scores and writes
        histories[seed], member_outputs[seed] = history, outputs
        per_seed.append(result)
        logger.info(
            "seed %d: best epoch %s, validation %s, test %s",
            seed, result["best_epoch"], headline(result["validation"]), headline(result["test"]),
        )  # fmt: skip

    # ---- aggregate, pick the model to ship (best validation), write everything
    metric = data.selection_metric
    best_seed = best_seed_of(per_seed, metric, data.greater_is_better) if per_seed else args.seeds[0]
    num_parameters = sum(p.numel() for p in model.parameters())
    result = FinetuneResult(
        data={
            "file": str(args.train_file),
            "tasks": data.label_names,
            "problem_type": data.problem_type,
            "label_values": table.label_maps,
            "num_rows": len(table),
            "num_featurized": len(data.dataset),
            "num_skipped": len(data.report.skipped),
            "selection_metric": data.selection_metric,
            "input_notes": table.notes,
            "split": {
                "kind": "files" if args.validation_file is not None else args.split,
                "description": data.split_description,
                "sizes": {name: len(idx) for name, idx in data.split.items()},
                "file": "splits.json",
            },
        },
        protocol=(
            f"one model per seed; the epoch with the best validation {metric} is kept "
            "(load_best_model_at_end) and evaluated once on test; the test split is never used for selection; "
            f"the shipped model/ is the seed with the best validation {metric} (seed {best_seed})"
        ),
        model={
            "start": args.model_name_or_path or f"scratch ({args.config_name} preset)",
            "input_modality": modality,
            "num_parameters": num_parameters,
        },
        training={
            "epochs": args.num_train_epochs,
            "learning_rate": args.learning_rate,
            "batch_size": args.per_device_train_batch_size,
            "warmup_ratio": args.warmup_ratio,
            "weight_decay": args.weight_decay,
            "early_stopping_patience": args.early_stopping_patience,
            "seeds": list(args.seeds),
            "num_processes": state.num_processes,
        },
        per_seed=per_seed,
        aggregate={
            part: aggregate_seeds([headline(r[part]) for r in per_seed])
            for part in ("validation", "test", "baseline_test")
            if per_seed and all(part in r for r in per_seed)
        },
        best_seed=best_seed,
        wall_time_s=time.perf_counter() - started,
        hardware=hardware_description(num_processes=state.num_processes),
        featurizer={"max_atoms": featurizer.max_atoms, "conformer": featurizer.conformer, "mmff": featurizer.mmff},
        architecture={
            "Layers": model.config.num_hidden_layers,
            "Hidden size": model.config.hidden_size,
            "Attention heads": model.config.num_attention_heads,
            "Input modality": model.config.input_modality,
            "Parameters": f"{num_parameters / 1e6:.2f} M",
        },
        output_dir=out,
    )
    if state.is_main_process:
        result.uncertainty = fit_uncertainty(data, member_outputs, args.seeds, out)
        result.ensemble = ensemble_metrics(data, member_outputs, args.seeds)
        write_outputs(args, result, data, histories, member_outputs)
    return result


def read_training_table(args: FinetuneArguments):
    """The training file, or the train + validation + test files as one table whose split column says which."""
    if args.validation_file is None:
        split_column = args.split_column if args.split == "column" else None
        return read_molecule_table(args.train_file, args.smiles_column, args.label_columns, split_column)
    parts = {
        name: read_molecule_table(path, args.smiles_column, args.label_columns)
        for name, path in (("train", args.train_file), ("validation", args.validation_file), ("test", args.test_file))
    }
    return concatenate_tables(parts)


def _check_output_dir(out: Path, args: FinetuneArguments, settings: dict) -> None:
    if not (out.exists() and any(out.iterdir())):
        return
    if args.resume:
        saved = out / RUN_SETTINGS_NAME
        if not saved.is_file():
            raise InputError(f"--resume: {out} holds no run ({RUN_SETTINGS_NAME} is missing)")
        before = json.loads(saved.read_text())
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            raise InputError(f"--resume: {out} was run with other settings ({', '.join(changed)}); rerun without "
                             "--resume (and --overwrite_output_dir) or with the same settings")  # fmt: skip
    elif not args.overwrite_output_dir:
        raise InputError(
            f"{out} exists and is not empty: pass --resume to continue that run, --overwrite_output_dir to start "
            "again, or choose another folder"
        )


def prepare_data(
    args: FinetuneArguments, table, featurizer, state, out: Path, fit_descriptors: bool = True
) -> FinetuneData:
    """Featurize (cached), check the labels, split (written to ``splits.json``) and build each split's table; with
    a featurizer that computes descriptors and ``fit_descriptors``, fit their statistics on the training rows."""
    cache_dir = args.data_cache_dir or (out / "featurized")
    with state.main_process_first():  # the main process featurizes and caches, the others read the cache
        dataset, report = featurize_table(
            table, featurizer, cache_dir=cache_dir, progress=False if args.quiet else None
        )
    if state.is_main_process:
        (out / "featurization_report.json").write_text(json.dumps(report.to_dict(), indent=2))
    logger.info("featurization: %s", report.summary(max_listed=10))
    if len(dataset) < MIN_MOLECULES:
        raise InputError(
            f"{args.train_file}: {len(dataset)} of {len(table)} rows could be featurized, and at least "
            f"{MIN_MOLECULES} molecules are needed for a train/validation/test split"
            + (f"; the reasons are in {out / 'featurization_report.json'}" if report.skipped else "")
        )
    if args.problem_type == "auto":
        problem_type = infer_problem_type(table.labels)
    else:
        problem_type = CLASSIFICATION if args.problem_type == "classification" else "regression"
    rows = np.asarray(dataset["row"])
    smiles = dataset["smiles"]
    kind = "column" if args.validation_file is not None else args.split
    if kind == "column":
        column_values = [table.split_values[r] for r in rows]
        split = column_split(column_values, allow_no_validation=True)
        description = (
            f"predefined files: train {args.train_file}, validation {args.validation_file}, test {args.test_file}"
            if args.validation_file is not None
            else f"user-given split column {args.split_column!r}"
        )
        if not split["validation"]:
            validation_share = args.split_fractions[1] / (args.split_fractions[0] + args.split_fractions[1])
            split = carve_validation(split, smiles, validation_share, args.carve_validation, args.split_seed,
                                     args.scaffold_ties)  # fmt: skip
            description += (
                f"; validation carved out of train ({args.carve_validation}, {100 * validation_share:.0f}% of train"
                + (f", seed {args.split_seed})" if args.carve_validation == "random" else ", deterministic)")
            )
    else:
        split = make_split(kind, smiles, args.split_seed, None, tuple(args.split_fractions), args.scaffold_ties)
        description = {
            "scaffold": "Bemis-Murcko scaffold split {:g}:{:g}:{:g}, deterministic (largest scaffold sets to train, "
            + f"{args.scaffold_ties} order of equal-size sets)",
            "random": "random split {:g}:{:g}:{:g}, seed " + str(args.split_seed),
        }[kind].format(*[10 * f for f in args.split_fractions])
    if state.is_main_process:
        (out / "splits.json").write_text(
            json.dumps({name: rows[idx].tolist() for name, idx in split.items()} | {"description": description})
        )
    sizes = {name: len(idx) for name, idx in split.items()}
    logger.info("split: %s %s; problem type %s; tasks %s", description, sizes, problem_type, table.label_names)
    if sizes.get("test", 0) == 0 or sizes["validation"] == 0:
        raise InputError(
            f"{args.train_file}: the split left an empty validation or test set ({sizes}): use more molecules, "
            "--split random, or other --split_fractions"
        )
    labels = {
        name: np.asarray(dataset.select(idx, keep_in_memory=True)["labels"], dtype=np.float32)
        for name, idx in split.items()
    }
    _check_labels(args, table.label_names, labels, problem_type)
    model_columns = [*FEATURE_COLUMNS, "labels"]
    molecule_features = None
    if featurizer.molecule_descriptors:
        if fit_descriptors:
            dataset, molecule_features = _fit_molecule_features(dataset, split["train"], featurizer)
        model_columns.append("molecule_descriptors")
    default_metric = "roc_auc" if problem_type == CLASSIFICATION else "rmse"
    metric = args.metric_for_best_model or default_metric
    if (metric in ("roc_auc", "pr_auc")) != (problem_type == CLASSIFICATION):
        raise InputError(f"--metric_for_best_model {metric} does not fit a {problem_type.replace('_', ' ')} task")
    return FinetuneData(
        selection_metric=metric,
        table=table,
        dataset=dataset,
        report=report,
        problem_type=problem_type,
        label_names=table.label_names,
        rows=rows,
        split=split,
        split_description=description,
        tables={
            name: dataset.select(idx, keep_in_memory=True).select_columns(model_columns).with_format("numpy")
            for name, idx in split.items()
        },
        labels=labels,
        smiles={name: [smiles[i] for i in idx] for name, idx in split.items()},
        molecule_features=molecule_features,
    )


def _fit_molecule_features(dataset, train_index, featurizer):
    """The descriptors the head reads and their statistics, fitted on the training rows (signed log1p, centre,
    scale; constant ones dropped), as config fields; the dataset keeps those columns only, and the featurizer
    (saved with the model) computes just those."""
    from datasets import List, Value

    names = list(featurizer.molecule_descriptors)
    raw = np.asarray(dataset["molecule_descriptors"], dtype=np.float64).reshape(len(dataset), len(names))
    scaler = DescriptorScaler.fit(raw[np.asarray(train_index, dtype=np.int64)], names)
    keep = [names.index(name) for name in scaler.names]
    dataset = dataset.remove_columns("molecule_descriptors").add_column(
        "molecule_descriptors", list(raw[:, keep]), feature=List(Value("float64"))
    )
    featurizer.molecule_descriptors = list(scaler.names)
    logger.info("molecule descriptors: %d of %d (constant ones on train dropped)", len(keep), len(names))
    fields = {"molecule_feature_names": scaler.names, "molecule_feature_center": scaler.center}
    return dataset, fields | {"molecule_feature_scale": scaler.scale, "molecule_feature_clip": scaler.clip}


def _check_labels(args: FinetuneArguments, tasks: list[str], labels: dict, problem_type: str) -> None:
    """Tasks that cannot be trained fail fast, naming the file and the fix."""
    for t, task in enumerate(tasks):
        train = labels["train"][:, t]
        if np.isnan(train).all():
            raise InputError(
                f"{args.train_file}: task {task!r} has no labelled training row (every value is missing): check the "
                "column, or leave it out of --label_columns"
            )
        if problem_type == CLASSIFICATION:
            every = np.concatenate([part[:, t] for part in labels.values()])
            classes = np.unique(every[~np.isnan(every)])
            if len(classes) < 2:
                raise InputError(
                    f"{args.train_file}: task {task!r} holds one class only ({classes.tolist()}): a classifier needs "
                    "both 0 and 1 (or pass --problem_type regression)"
                )
            for part in ("validation", "test"):
                values = labels[part][:, t]
                if len(np.unique(values[~np.isnan(values)])) < 2:
                    logger.warning(
                        "task %r has one class only in the %s split: its ROC-AUC there is undefined (try --split "
                        "random or another --split_seed)", task, part,
                    )  # fmt: skip


def train_seed(args, seed: int, data: FinetuneData, config, start, featurizer, state, out: Path, callbacks=()):
    """Train, select and score one seed's model; returns ``(result, history, outputs, model)`` (``outputs``: the
    validation and test logits, in row order; on processes
    other than the main one: ``(None, None, None, model)``). A finished seed of an interrupted run is loaded, not
    retrained."""
    from transformers import EarlyStoppingCallback, Trainer, TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback

    seed_dir = out / "seeds" / f"seed_{seed}"
    if args.resume and (seed_dir / SEED_RESULT_NAME).is_file():
        saved = json.loads((seed_dir / SEED_RESULT_NAME).read_text())
        logger.info("seed %d: finished before the interruption, kept", seed)
        model = MoleBlendForPropertyPrediction.from_pretrained(seed_dir / "model")
        outputs = {part: np.load(seed_dir / f"{part}_outputs.npy") for part in ("validation", "test")}
        return saved["result"], saved["history"], outputs, model
    checkpoint = latest_trainer_checkpoint(seed_dir / "checkpoints") if args.resume else None
    if checkpoint is None and state.is_main_process:
        shutil.rmtree(seed_dir, ignore_errors=True)  # a fresh seed never mixes with an older run's files
    state.wait_for_everyone()
    set_seed(seed)
    seed_config = task_config(args, config, data.problem_type, data.label_names, data.labels["train"],
                              data.table.label_maps, data.molecule_features)  # fmt: skip
    if start:
        model = MoleBlendForPropertyPrediction.from_pretrained(
            start, config=seed_config, revision=args.revision, ignore_mismatched_sizes=True
        )
        has_head = any("PropertyPrediction" in name for name in (config.architectures or ()))
        if has_head and config.num_labels != seed_config.num_labels and seed == args.seeds[0]:
            logger.warning(
                "%s predicts %d task(s), this data has %d: the property head is re-initialised",
                start, config.num_labels, seed_config.num_labels,
            )  # fmt: skip
    else:
        model = MoleBlendForPropertyPrediction(seed_config)
    training_args = TrainingArguments(
        output_dir=str(seed_dir / "checkpoints"),
        num_train_epochs=args.num_train_epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=args.per_device_eval_batch_size,
        warmup_steps=args.warmup_ratio,  # a float < 1 is a fraction of the steps in transformers 5
        weight_decay=args.weight_decay,
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model=data.selection_metric,
        greater_is_better=data.greater_is_better,
        remove_unused_columns=False,
        label_names=["labels"],
        seed=seed,
        data_seed=seed,
        report_to="none",
        # full checkpoints (optimizer, scheduler, RNG), so that --resume continues exactly; they stay local and are
        # deleted when the seed is done; the token is never given to the Trainer (its arguments are pickled)
        save_only_model=False,
        disable_tqdm=args.quiet,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer_callbacks = [EarlyStoppingCallback(args.early_stopping_patience)] if args.early_stopping_patience else []
    if args.push_to_hub and args.hub_strategy != "end" and state.is_main_process:
        from ..hub import SeedPushCallback

        trainer_callbacks.append(SeedPushCallback(args, seed, featurizer))
    trainer = length_bucketed_trainer(Trainer, args.length_group_batches)(
        model=model,
        args=training_args,
        train_dataset=data.tables["train"],
        eval_dataset=data.tables["validation"],
        data_collator=MoleBlendCollator(pad_to_multiple_of=8),
        compute_metrics=metric_fn(data.problem_type, data.label_names),
        processing_class=featurizer,
        callbacks=[*trainer_callbacks, *callbacks],
    )
    if args.quiet:
        trainer.remove_callback(PrinterCallback)  # with tqdm off it prints every log dictionary
    if checkpoint is not None:
        logger.info("seed %d: resuming from %s", seed, checkpoint)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    history = trainer.state.log_history
    epoch = best_epoch(history, data.selection_metric, data.greater_is_better)
    # in row order (the Trainer's length-grouped eval sampler shuffles); logits, at the best epoch
    outputs = {
        name: predict_properties([trainer.model], list(data.tables[name]), args.per_device_eval_batch_size, False)[0]
        for name in ("validation", "test")
    }
    result = {
        "seed": seed,
        "best_epoch": epoch,
        "validation": split_metrics(
            data.problem_type, data.labels["validation"], outputs["validation"], data.label_names
        ),  # fmt: skip
        "test": split_metrics(data.problem_type, data.labels["test"], outputs["test"], data.label_names),
    }
    trainer.save_model(str(seed_dir / "model"))  # the best-validation epoch (load_best_model_at_end)
    if not state.is_main_process:
        return None, None, None, trainer.model
    _make_shippable(seed_dir / "model")
    if args.baseline_estimators > 0:
        baseline = random_forest_baseline(
            data.smiles["train"],
            data.labels["train"],
            {"validation": data.smiles["validation"], "test": data.smiles["test"]},
            data.problem_type,
            seed=seed,
            n_estimators=args.baseline_estimators,
            n_jobs=-1,
        )
        for part in ("validation", "test"):
            result[f"baseline_{part}"] = split_metrics(data.problem_type, data.labels[part], baseline[part],
                                                       data.label_names)  # fmt: skip
    for part in ("validation", "test"):
        np.save(seed_dir / f"{part}_outputs.npy", outputs[part])
    write_json_atomic(seed_dir / SEED_RESULT_NAME, {"result": jsonable(result), "history": jsonable(history)})
    shutil.rmtree(seed_dir / "checkpoints", ignore_errors=True)  # only once the seed's result is safe on disk
    return result, history, outputs, trainer.model


def length_bucketed_trainer(trainer_class: type, megabatch_batches: int) -> type:
    """``trainer_class`` with MoleBlend's samplers: training batches of similar-size molecules
    (``LengthBucketedSampler``, seeded by ``data_seed`` and the epoch), evaluation sorted by size. Padding costs
    attention and the pair terms quadratically: on BBBP's scaffold validation set (batch 64) 10% of the padded
    pair slots of transformers' length-grouped evaluation batches are real, 45% of sorted ones."""

    class LengthBucketedTrainer(trainer_class):
        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return LengthBucketedSampler(dataset["num_atoms"], self._train_batch_size, seed, megabatch_batches)

        def _get_eval_sampler(self, eval_dataset):
            if self.args.world_size > 1:
                return super()._get_eval_sampler(eval_dataset)  # accelerate shards the rows itself
            return SortedByLengthSampler(eval_dataset["num_atoms"])

    return LengthBucketedTrainer


def latest_trainer_checkpoint(folder: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` of a Trainer output folder (a folder that a kill cut short, one
    without ``trainer_state.json`` or with unreadable weights, is skipped with a warning)."""
    if not folder.is_dir():
        return None
    candidates = sorted(
        (f for f in folder.iterdir() if f.is_dir() and f.name.startswith("checkpoint-")),
        key=lambda f: int(f.name.split("-")[-1]) if f.name.split("-")[-1].isdigit() else -1,
        reverse=True,
    )
    for candidate in candidates:
        problem = checkpoint_problem(candidate, state_file="trainer_state.json")
        if problem is None:
            return candidate
        logger.warning("skipping the checkpoint %s: %s", candidate, problem)
    return None


def ensemble_metrics(data: FinetuneData, member_outputs: dict, seeds) -> dict:
    """The seed models as one ensemble, as ``moleblend predict OUT/`` uses them, scored on validation and test: the
    mean of their predictions (regression), or of their logits (classification: predict's calibrated probability is
    a monotone function of the mean logit, so ROC-AUC and PR-AUC are the same)."""
    what = "mean of the seed models' logits" if data.problem_type == CLASSIFICATION else "mean of the seed models"
    result: dict = {"members": len(seeds), "prediction": what}
    for part in ("validation", "test"):
        stacked = np.stack([member_outputs[s][part] for s in seeds])  # [members, rows, tasks]
        result[part] = split_metrics(data.problem_type, data.labels[part], stacked.mean(axis=0), data.label_names)
    return result


def fit_uncertainty(data: FinetuneData, member_outputs: dict, seeds, out: Path) -> dict:
    """Calibrate the ensemble of seed models on validation (interval scale or temperature), save it as
    ``calibration.json`` (``moleblend predict`` applies it) and measure it on test."""
    members = {part: np.stack([member_outputs[s][part] for s in seeds]) for part in ("validation", "test")}
    if data.problem_type == CLASSIFICATION:
        calibration, metrics = classification_calibration(
            data.labels["validation"], members["validation"], data.labels["test"], members["test"], data.label_names
        )
        method = "temperature scaling of the ensemble's mean logit, fitted on validation (minimum log loss)"
    else:
        calibration, metrics = regression_uncertainty(
            data.labels["validation"], members["validation"], data.labels["test"], members["test"], data.label_names
        )
        method = (
            "spread over the seed models (sample std); interval mean +- scale * spread, scale fitted on validation "
            f"for {100 * calibration.coverage:.0f}% coverage"
            + ("" if len(seeds) > 1 else " (one seed: no spread; use several --seeds)")
        )
    calibration.save(out)
    return {"method": method, "members": len(seeds), "test": metrics}


def write_outputs(args: FinetuneArguments, result: FinetuneResult, data: FinetuneData, histories, member_outputs):
    """Everything a finished run leaves in OUTPUT_DIR besides the seeds: ``model/``, results, predictions, plots,
    the card, and the push."""
    out = result.output_dir
    problem_type, label_names = data.problem_type, data.label_names
    shutil.copytree(out / "seeds" / f"seed_{result.best_seed}" / "model", out / "model", dirs_exist_ok=True)
    result.save(out)
    members = [f"seed{s}" for s in args.seeds]
    columns = {"row": list(data.rows[data.split["test"]]), "smiles": data.smiles["test"]}
    columns.update({task: list(data.labels["test"][:, t]) for t, task in enumerate(label_names)})
    stacked = np.stack([member_outputs[s]["test"] for s in args.seeds])
    probabilities = to_probabilities(torch.from_numpy(stacked), problem_type).numpy()
    write_table(
        out / "predictions_test.csv", prediction_columns(columns, probabilities, label_names, problem_type, members)
    )
    plot_learning_curve(
        histories, out / "learning_curve.png", data.selection_metric, title=f"MoleBlend on {Path(args.train_file).name}"
    )
    mean_test = probabilities.mean(axis=0)
    if problem_type == CLASSIFICATION:
        plot_roc(data.labels["test"], mean_test, out / "roc.png", label_names, title="Test ROC (mean of seeds)")
        mean_logit = stacked.mean(axis=0)  # the first task's reliability, before and after the fitted temperature
        before = 1 / (1 + np.exp(-mean_logit[:, 0]))
        after = calibrated_probabilities(mean_logit, Calibration.load(out))[:, 0]
        plot_reliability(data.labels["test"][:, 0], before, after, out / "reliability.png")
    else:
        plot_parity(
            data.labels["test"], mean_test, out / "parity.png", label_names, title="Test parity (mean of seeds)"
        )
    from ..hub import export_and_push, finetune_card
    from ..hub_card import write_model_card

    write_model_card(out / "model", finetune_card(result))
    if args.push_to_hub:
        info = export_and_push(args, out / "model", out / "hub", f"MoleBlend finetuned on {Path(args.train_file).name}")
        logger.warning("pushed to %s: %s", args.hub_model_id, info.commit_url)


def _make_shippable(folder: Path) -> None:
    """A saved model folder as it is shipped: no pickle (the Trainer's ``training_args.bin``), files readable by
    the group and others as the umask allows (safetensors writes ``model.safetensors`` with mode 600)."""
    import os

    (folder / "training_args.bin").unlink(missing_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~umask)


def summary_text(result: FinetuneResult) -> str:
    """The side-by-side table a finished run prints."""
    aggregate = result.aggregate
    test, baseline = aggregate.get("test", {}), aggregate.get("baseline_test", {})
    lines = [
        "=" * 78,
        f"{result.data['file']}: {result.data['num_featurized']} molecules, "
        f"{result.data['split']['description']}, {len(result.per_seed)} seeds",
        f"{'test metric':<14}{'MoleBlend':>24}{'RF on Morgan FP':>24}",
    ]
    for name, stats in test.items():
        other = baseline.get(name)
        other_text = f"{other['mean']:.3f} +- {other['std']:.3f}" if other else "-"
        lines.append(f"{name:<14}{stats['mean']:>15.3f} +- {stats['std']:.3f}{other_text:>24}")
    ensemble = result.ensemble.get("test", {})
    if result.ensemble.get("members", 0) > 1 and ensemble:
        headline_names = [name for name in test if name in ensemble]
        text = ", ".join(f"{name} {ensemble[name]:.3f}" for name in headline_names)
        lines.append(f"ensemble of the {result.ensemble['members']} seed models (as predict uses them), test: {text}")
    out = result.output_dir
    lines += [
        f"(selection on validation {result.selection_metric}; wall time {result.wall_time_s:.0f} s)",
        f"results: {out / RESULTS_NAME}; plots: {out}/*.png; model: {out / 'model'}",
        "=" * 78,
    ]
    return "\n".join(lines)
