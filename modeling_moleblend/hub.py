"""Hugging Face Hub export and push for MoleBlend checkpoints.

    from modeling_moleblend.hub import export_for_hub, push_folder_to_hub

    folder = export_for_hub("out/model", "hub/moleblend-esol", repo_id="me/moleblend-esol")
    info = push_folder_to_hub(folder, "me/moleblend-esol", tag="v1")   # -> CommitInfo (info.oid, info.commit_url)

``export_for_hub`` turns a trained folder (``moleblend finetune``'s ``OUTPUT_DIR/model`` or a seed's model, a Trainer
checkpoint, a pretraining output) into a folder that loads from the Hub *without this package*: ``model.safetensors``,
``config.json`` whose ``auto_map`` names ``AutoConfig``, ``AutoModel``, ``AutoModelForSequenceClassification`` and
``AutoModelForPreTraining``, ``preprocessor_config.json`` with an ``AutoFeatureExtractor`` entry, the flat
``*.py`` code files those entries point at, and a ``README.md`` model card (kept from the trained folder, or
generated from its config and the run's ``FinetuneResult``). ``finetune_card`` / ``pretraining_card`` build the
cards of the training runs from their typed results.

``push_folder_to_hub`` uploads such a folder through ``huggingface_hub.HfApi`` (so ``HF_ENDPOINT`` / ``HF_TOKEN``
apply): the files in one commit, then the card in a commit of its own, last, so that nothing uploaded with the
files (or by another uploader that writes a generic card) ends up as the repo's README.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from transformers import TrainerCallback
from transformers.utils import CONFIG_NAME, FEATURE_EXTRACTOR_NAME, SAFE_WEIGHTS_NAME

from .configuration_moleblend import MoleBlendConfig
from .hub_card import CardInfo, MetricSummary, write_model_card
from .inference import model_class_for
from .modeling_moleblend import MoleBlendForPropertyPrediction
from .tokenization import MoleBlendFeaturizer
from .training.finetuning import FinetuneResult, HubArguments
from .training.pretraining import LOSS_COMPONENTS, PretrainResult

logger = logging.getLogger(__name__)

CARD_NAME = "README.md"
CARD_PLACEHOLDER = "REPO_OR_FOLDER"  # what hub_card's usage snippet says where the repo id goes
# The Auto classes a Hub user of a MoleBlend repo expects to work with trust_remote_code=True.
REQUIRED_AUTO_CLASSES = ("AutoConfig", "AutoModel", "AutoModelForSequenceClassification")
# Never uploaded: pickles (training_args.bin, optimizer states) and Python caches.
NEVER_UPLOAD = ["training_args.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "optimizer.*", "scheduler.*", "rng_state*"]
NEVER_UPLOAD += ["__pycache__/*", "*.pyc", ".cache/*"]


# ---------------------------------------------------------------------------------------------------------- export


def export_and_push(args: HubArguments, trained_folder: str | Path, repo_folder: str | Path, commit_message: str):
    """Export ``trained_folder`` into ``repo_folder`` (checkpoints and logs left out) and push it as the script's
    ``hub_*`` arguments say; returns the last commit's info."""
    folder = export_for_hub(trained_folder, repo_folder, repo_id=args.hub_model_id, overwrite=True)
    return push_folder_to_hub(
        folder,
        args.hub_model_id,
        private=args.hub_private_repo,
        revision=args.hub_revision,
        token=args.hub_token,
        commit_message=commit_message,
    )


def export_for_hub(
    trained_folder: str | Path,
    repo_folder: str | Path,
    *,
    card: CardInfo | None = None,
    regenerate_card: bool = False,
    repo_id: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a Hub-ready copy of ``trained_folder`` into ``repo_folder`` and return ``repo_folder``.

    Args:
        trained_folder: a folder written by ``save_pretrained`` (a MoleBlend model, optionally with the featurizer's
            ``preprocessor_config.json`` and a ``README.md`` card).
        repo_folder: where the export goes (created; must be empty unless ``overwrite``).
        card: write this card. Otherwise the trained folder's ``README.md`` is kept, or, if it has none or
            ``regenerate_card``, a card is generated from the config and the result of the run the folder belongs
            to (``FinetuneResult.find``).
        repo_id: the Hub id the folder is meant for: it replaces the card's ``REPO_OR_FOLDER`` placeholders.
        overwrite: replace a non-empty ``repo_folder``.

    Raises:
        ValueError: the folder is not a MoleBlend model, or the export would not load without the package.
    """
    trained, out = Path(trained_folder), Path(repo_folder)
    if not (trained / CONFIG_NAME).is_file():
        raise ValueError(f"{trained} has no {CONFIG_NAME}: not a saved model folder")
    if out.resolve() == trained.resolve():
        raise ValueError("repo_folder must differ from trained_folder (the export is written from scratch)")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty: pass overwrite=True (--overwrite_output_dir)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    config = MoleBlendConfig.from_pretrained(trained)
    model_class = model_class_for(config)
    model = model_class.from_pretrained(trained)
    # save_pretrained copies the defining .py files flat and writes auto_map (MoleBlend pre-seeds every auto class)
    model.save_pretrained(out)
    featurizer = None
    if (trained / FEATURE_EXTRACTOR_NAME).is_file():
        featurizer = MoleBlendFeaturizer.from_pretrained(trained)
        featurizer.save_pretrained(out)  # preprocessor_config.json + AutoFeatureExtractor auto_map + its .py files
    else:
        logger.warning("%s has no %s: the export has no featurizer", trained, FEATURE_EXTRACTOR_NAME)

    if card is not None:
        write_model_card(out, card)
    elif (trained / CARD_NAME).is_file() and not regenerate_card:
        shutil.copyfile(trained / CARD_NAME, out / CARD_NAME)
    else:
        write_model_card(out, card_info_from_folder(trained, model, featurizer))
    if repo_id:
        text = (out / CARD_NAME).read_text(encoding="utf-8")
        (out / CARD_NAME).write_text(text.replace(CARD_PLACEHOLDER, repo_id), encoding="utf-8")

    problems = check_hub_folder(out)
    if problems:
        raise ValueError(f"the export in {out} is incomplete: " + "; ".join(problems))
    return out


def check_hub_folder(folder: str | Path) -> list[str]:
    """What would keep ``folder`` from loading with ``trust_remote_code=True`` alone (empty list: nothing)."""
    folder = Path(folder)
    problems = [f"no {name}" for name in (CONFIG_NAME, SAFE_WEIGHTS_NAME) if not (folder / name).is_file()]
    if problems:
        return problems
    auto_map = dict(json.loads((folder / CONFIG_NAME).read_text()).get("auto_map") or {})
    problems += [f"config.json auto_map lacks {name}" for name in REQUIRED_AUTO_CLASSES if name not in auto_map]
    if (folder / FEATURE_EXTRACTOR_NAME).is_file():
        extractor_map = json.loads((folder / FEATURE_EXTRACTOR_NAME).read_text()).get("auto_map") or {}
        if "AutoFeatureExtractor" not in extractor_map:
            problems.append(f"{FEATURE_EXTRACTOR_NAME} auto_map lacks AutoFeatureExtractor")
        auto_map.update(extractor_map)
    for name, reference in auto_map.items():
        references = reference if isinstance(reference, (list, tuple)) else [reference]
        for item in filter(None, references):
            if "--" in item:  # code in another repo: not checked here
                continue
            module = item.rsplit(".", 1)[0]
            if not (folder / f"{module}.py").is_file():
                problems.append(f"auto_map[{name}] points at {module}.py, which is missing")
    return problems


def _metric_summaries(aggregate: dict, part: str) -> list[MetricSummary]:
    return [
        MetricSummary(
            name,
            stats["mean"],
            stats.get("std", 0.0),
            list(stats.get("values", [])),
            split="test",
            higher_is_better=name in ("roc_auc", "pr_auc"),
        )  # fmt: skip
        for name, stats in aggregate.get(part, {}).items()
    ]


def finetune_card(result: FinetuneResult, model_name: str | None = None) -> CardInfo:
    """The card of a finetuning run's model: data, split, protocol, recipe, test metrics beside the baseline."""
    data, training = result.data, result.training
    dataset = Path(data["file"]).name
    return CardInfo(
        model_name=model_name or f"moleblend-{Path(data['file']).name.split('.')[0].replace('_', '-')}",
        summary=(
            f"A MoleBlend model finetuned to predict {', '.join(data['tasks'])} "
            f"({data['problem_type'].replace('_', ' ')}) from molecular structure."
        ),
        dataset_name=dataset,
        base_model=None if result.model["start"].startswith("scratch") else result.model["start"],
        task_names=data["tasks"],
        problem_type=data["problem_type"],
        split=data["split"]["description"],
        protocol=result.protocol,
        seeds=list(training["seeds"]),
        metrics=_metric_summaries(result.aggregate, "test"),
        baseline_metrics=_metric_summaries(result.aggregate, "baseline_test"),
        training={
            "Epochs (max)": training["epochs"],
            "Learning rate": training["learning_rate"],
            "Batch size": training["batch_size"],
            "Early stopping": f"{training['early_stopping_patience']} epochs without validation improvement",
            "Hardware": result.hardware,
            "Wall time": f"{result.wall_time_s:.0f} s for {len(training['seeds'])} seeds",
        }
        | ({"Text labels": str(data["label_values"])} if data.get("label_values") else {})
        | _uncertainty_lines(result.uncertainty)
        | _ensemble_lines(result.ensemble),
        architecture=result.architecture,
        featurizer=result.featurizer,
    )


def _uncertainty_lines(uncertainty: dict) -> dict[str, str]:
    """The card's lines on the ensemble's calibration, measured on test."""
    if not uncertainty:
        return {}
    parts = []
    for task, metrics in uncertainty.get("test", {}).items():
        shown = {k: v for k, v in metrics.items() if isinstance(v, float) and k != "interval_scale"}
        parts.append(f"{task}: " + ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in shown.items()))
    return {"Uncertainty": uncertainty["method"], "Uncertainty on test": "; ".join(parts) or "n/a"}


def _ensemble_lines(ensemble: dict) -> dict[str, str]:
    """The card's line on the seed models as one ensemble (what ``moleblend predict`` uses), on test."""
    test = ensemble.get("test", {})
    if ensemble.get("members", 0) < 2 or not test:
        return {}
    shown = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in test.items() if isinstance(v, float))
    return {f"Ensemble of the {ensemble['members']} seed models on test": shown}


def pretraining_card(result: PretrainResult) -> CardInfo:
    """The card of a pretrained encoder: corpus, budget, optimizer, final validation losses."""
    final = result.final_validation or {}
    metrics = [
        MetricSummary(f"validation {name.replace('_', ' ')}", final[f"eval_{name}"], split="validation")
        for name in LOSS_COMPONENTS
        if final.get(f"eval_{name}") is not None
    ]
    data, training = result.data, result.training
    throughput = result.throughput_molecules_per_second
    start = result.model["start"]
    return CardInfo(
        model_name=f"moleblend-pretrained-{Path(data['file']).name.split('.')[0]}",
        summary=(
            "A MoleBlend encoder pretrained with the blend-then-predict objective (modality blending of 2D graph "
            "and 3D structure relations; predicting shortest paths, bonds along them, interatomic distances and "
            "coordinate noise). Finetune it for property prediction: `moleblend finetune --model_name_or_path` "
            "(or `MoleBlendForPropertyPrediction.from_pretrained`) keeps the encoder and drops the pretraining heads."
        ),
        task="molecular representation learning (pretraining)",
        dataset_name=Path(data["file"]).name,
        base_model=None if start.startswith("scratch") else start,
        split=data["validation_split"],
        protocol="validation losses: mean over the held-out molecules, fixed blend masks and noise (seeded)",
        seeds=[training["seed"]] if "seed" in training else [],
        metrics=metrics,
        training={
            "Molecules": f"{data['train_molecules']} train, {data['validation_molecules']} validation",
            "Updates": f"{training['completed_steps']} ({training['epochs']:.2f} epochs)",
            "Batch size": f"{training['total_batch_size']} molecules per update "
            f"({training['per_device_train_batch_size']} per device x {training['num_processes']} processes x "
            f"{training.get('gradient_accumulation_steps', 1)} accumulation)",
            "Optimizer": f"AdamW, peak lr {training['learning_rate']:g}, weight decay {training['weight_decay']:g}, "
            f"{training['num_warmup_steps']} warm-up steps then cosine decay, gradient clipping "
            f"{training['max_grad_norm']:g}",
            "Hardware": result.hardware,
            "Wall time": f"{result.wall_time_s:.0f} s"
            + (f" ({throughput:.0f} molecules/s in training)" if throughput else ""),
            "Final validation losses": ", ".join(f"{m.name.removeprefix('validation ')} {m.mean:.4f}" for m in metrics)
            or "n/a",
        },
        architecture=result.architecture,
        featurizer=result.featurizer,
        limitations=["A pretrained encoder: it predicts no property until finetuned."],
    )


def card_info_from_folder(trained: Path, model, featurizer: MoleBlendFeaturizer | None) -> CardInfo:
    """A card for a folder without one: the run's card when the folder belongs to a finetuning or pretraining
    run, else what the config says."""
    run = FinetuneResult.find(trained)
    if run is not None and isinstance(model, MoleBlendForPropertyPrediction):
        return finetune_card(run)
    if (trained / "all_results.json").is_file():
        return pretraining_card(PretrainResult.load(trained))
    config = model.config
    is_property_model = isinstance(model, MoleBlendForPropertyPrediction)
    tasks = [config.id2label[i] for i in range(config.num_labels)] if is_property_model else []
    kind = (config.problem_type or "regression").replace("_", " ")
    return CardInfo(
        model_name=trained.resolve().name,
        summary=(
            f"A MoleBlend model that predicts {', '.join(tasks)} ({kind}) from molecular structure."
            if is_property_model
            else f"A MoleBlend encoder ({type(model).__name__}) for molecular representations."
        ),
        task="molecular property prediction" if is_property_model else "molecular representation learning",
        task_names=tasks,
        problem_type=config.problem_type if is_property_model else None,
        architecture={
            "Layers": config.num_hidden_layers,
            "Hidden size": config.hidden_size,
            "Attention heads": config.num_attention_heads,
            "Input modality": config.input_modality,
            "Parameters": f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M",
        },
        featurizer=(
            {"max_atoms": featurizer.max_atoms, "conformer": featurizer.conformer, "mmff": featurizer.mmff}
            if featurizer is not None
            else {}
        ),
    )


# ---------------------------------------------------------------------------------------------------------- push


class SeedPushCallback(TrainerCallback):
    """Pushes one finetuning seed's model to the branch ``seed-K`` of ``args.hub_model_id`` at every save of the
    ``Trainer``: weights, config, featurizer, code files and a card, never the Trainer's checkpoint (its pickles
    of the arguments, optimizer, scheduler and RNG states). The token stays in this object's memory; the
    ``Trainer`` never sees it (it pickles its arguments into every checkpoint)."""

    def __init__(self, args: HubArguments, seed: int, featurizer: MoleBlendFeaturizer):
        self.repo_id, self.private, self.token = args.hub_model_id, args.hub_private_repo, args.hub_token
        self.seed, self.featurizer = seed, featurizer
        self.tasks = list(getattr(args, "label_columns", []) or [])

    def on_save(self, args, state, control, model=None, **kwargs):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="moleblend-push-") as folder:
            model.save_pretrained(folder)
            self.featurizer.save_pretrained(folder)
            info = CardInfo(
                model_name=f"{self.repo_id.split('/')[-1]}-seed-{self.seed}",
                summary=f"A MoleBlend model being finetuned (seed {self.seed}, epoch {state.epoch:g}): a snapshot "
                "pushed during training; the selected model is pushed to the main branch at the end.",
                task_names=self.tasks,
            )
            write_model_card(folder, info)
            push_folder_to_hub(
                folder,
                self.repo_id,
                private=self.private,
                revision=f"seed-{self.seed}",
                token=self.token,
                commit_message=f"seed {self.seed}: epoch {state.epoch:g}, step {state.global_step}",
            )
        return control


def push_folder_to_hub(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str = "Upload MoleBlend model",
    *,
    tag: str | None = None,
    endpoint: str | None = None,
    check: bool = True,
):
    """Upload ``folder`` to the Hub repo ``repo_id`` and return the ``CommitInfo`` of the last commit.

    Creates the repo if needed (``private`` applies only then), and the branch ``revision`` from ``main`` if it
    does not exist. Uploads every file except ``README.md`` and pickles in one commit, then ``README.md`` in a
    second commit (the card is always the last word), then tags the result with ``tag`` if given. Unchanged
    files are not re-uploaded. ``endpoint`` defaults to ``HF_ENDPOINT``, ``token`` to the saved / ``HF_TOKEN`` one.
    With ``check``, a folder that would not load with ``trust_remote_code=True`` alone is refused.
    """
    from huggingface_hub import HfApi  # imported late: HF_ENDPOINT is read when huggingface_hub is imported

    folder = Path(folder)
    if check and (problems := check_hub_folder(folder)):
        raise ValueError(f"{folder} is not ready for the Hub: " + "; ".join(problems) + " (use export_for_hub)")
    api = HfApi(endpoint=endpoint, token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    skipped = [p.name for p in folder.iterdir() if p.is_file() and p.name == "training_args.bin"]
    if skipped:
        logger.warning("not uploading %s (pickles are never pushed)", skipped)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        revision=revision,
        commit_message=commit_message,
        ignore_patterns=[CARD_NAME, *NEVER_UPLOAD],
    )
    if (folder / CARD_NAME).is_file():
        info = api.upload_file(
            path_or_fileobj=folder / CARD_NAME,
            path_in_repo=CARD_NAME,
            repo_id=repo_id,
            revision=revision,
            commit_message=f"{commit_message}: model card",
        )
    if tag:
        api.create_tag(repo_id, tag=tag, revision=info.oid)
    logger.info("pushed %s to %s (commit %s)", folder, repo_id, info.oid)
    return info


__all__ = [
    "card_info_from_folder",
    "check_hub_folder",
    "export_and_push",
    "export_for_hub",
    "finetune_card",
    "pretraining_card",
    "push_folder_to_hub",
    "SeedPushCallback",
]
