"""Inference with MoleBlend models: find and load them, featurize the rows of a file, predict properties, encode.

    from modeling_moleblend.inference import load_property_models, predict_properties

    models = load_property_models(["out/"])            # a finetune output folder: every seed's model (an ensemble)
    values = predict_properties(models, features)      # [models, molecules, tasks], real units / probabilities

Molecules are batched by size (little padding) and every result is put back in input order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from .configuration_moleblend import MoleBlendConfig
from .data.tables import InputError, MoleculeTable
from .modeling_moleblend import MoleBlendForPretraining, MoleBlendForPropertyPrediction, MoleBlendModel
from .pretrained import BUILTIN_PREFIX, pretrained_checkpoint
from .tokenization import FeaturizationResult, MoleBlendCollator, MoleBlendFeaturizer

logger = logging.getLogger(__name__)

MODEL_CLASSES = {cls.__name__: cls for cls in (MoleBlendModel, MoleBlendForPropertyPrediction, MoleBlendForPretraining)}
CLASSIFICATION_TYPES = ("multi_label_classification", "single_label_classification")


# ---------------------------------------------------------------------------------------------------------- models


def resolve_model_paths(name_or_path: str | os.PathLike) -> list[str]:
    """The model folders (or the Hub id) that ``name_or_path`` stands for.

    * a folder with a ``config.json``: itself;
    * a ``moleblend finetune`` output folder (``seeds/seed_K/model``): every seed's model, an ensemble;
    * a folder with a ``model/`` subfolder: that;
    * ``builtin:NAME``: the checkpoint shipped in the package (``pretrained_checkpoint``);
    * anything else that looks like a local path (exists, starts with ``.``, ``/`` or ``~``, or has more than one
      ``/``): an ``InputError``; otherwise a Hub id, returned as given.
    """
    text = str(name_or_path)
    if text.startswith(BUILTIN_PREFIX):
        try:
            return [str(pretrained_checkpoint(text))]
        except FileNotFoundError as error:
            raise InputError(str(error)) from None
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return [str(path)]
        seeds = sorted(path.glob("seeds/seed_*/model/config.json"), key=lambda p: _seed_number(p.parent.parent))
        if seeds:
            return [str(p.parent) for p in seeds]
        if (path / "model" / "config.json").is_file():
            return [str(path / "model")]
        raise InputError(f"{text}: a folder, but no model in it (no config.json, model/ or seeds/seed_K/model)")
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep in text.replace("/", ""):
        raise InputError(f"{text}: no such model folder")
    return [text]


def _seed_number(folder: Path) -> int:
    digits = folder.name.removeprefix("seed_")
    return int(digits) if digits.isdigit() else 0


def _from_pretrained(model_class, name: str, revision: str | None, **kwargs):
    try:
        return model_class.from_pretrained(name, revision=revision, **kwargs)
    except OSError as error:
        if Path(name).exists():
            raise
        raise InputError(f"{name}: not a local folder, and the Hub could not provide it ({error})") from error


def load_property_models(
    names_or_paths: Sequence[str], revision: str | None = None, device: str | torch.device | None = None
) -> tuple[list[MoleBlendForPropertyPrediction], list[str]]:
    """Every property model the names stand for (see ``resolve_model_paths``), in eval mode on ``device``, and
    their folders. All must predict the same tasks."""
    paths = [p for name in names_or_paths for p in resolve_model_paths(name)]
    models = [_from_pretrained(MoleBlendForPropertyPrediction, p, revision).eval() for p in paths]
    if device is not None:
        models = [m.to(device) for m in models]
    tasks = task_names(models[0].config)
    for path, model in zip(paths[1:], models[1:]):
        if task_names(model.config) != tasks:
            raise InputError(f"{path} predicts {task_names(model.config)}, but {paths[0]} predicts {tasks}")
    return models, paths


def load_encoder(name_or_path: str, revision: str | None = None) -> MoleBlendModel:
    """The encoder of whatever MoleBlend checkpoint ``name_or_path`` holds (loaded with its own class, so no
    weight is reported missing or unexpected)."""
    path = resolve_model_paths(name_or_path)[0]
    config = _from_pretrained(MoleBlendConfig, path, revision)
    model_class = model_class_for(config)
    return _from_pretrained(model_class, path, revision).base_model  # MoleBlendModel, or a head model's encoder


def model_class_for(config: MoleBlendConfig) -> type:
    """The MoleBlend class named in ``config.architectures`` (a property model without one if the config has a
    problem type, else the bare encoder)."""
    names = [name for name in (config.architectures or []) if name in MODEL_CLASSES]
    if names:
        return MODEL_CLASSES[names[0]]
    if config.architectures:
        raise InputError(f"not a MoleBlend model: architectures {config.architectures}")
    return MoleBlendForPropertyPrediction if config.problem_type else MoleBlendModel


def load_featurizer(name_or_path: str, revision: str | None = None) -> MoleBlendFeaturizer:
    return _from_pretrained(MoleBlendFeaturizer, resolve_model_paths(name_or_path)[0], revision)


def task_names(config: MoleBlendConfig) -> list[str]:
    return [config.id2label[i] for i in range(config.num_labels)]


# ---------------------------------------------------------------------------------------------------------- data


def featurize_rows(
    table: MoleculeTable,
    featurizer: MoleBlendFeaturizer,
    conformer: str | None = None,
    num_workers: int | None = None,
    progress: bool | None = None,
) -> tuple[FeaturizationResult, dict[int, str]]:
    """Featurize every row of ``table``, skipping (and naming) the bad ones, for commands that write one output row
    per input row. Returns ``(result, errors)``; ``errors`` maps an input row to "ErrorType: reason"."""
    overrides: dict = {"errors": "skip"}
    if conformer:
        overrides["conformer"] = conformer
    if num_workers is not None:
        overrides["num_workers"] = num_workers
    result = featurizer.featurize(table.molecules(), progress=progress, **overrides)
    errors = {item.index: f"{item.error_type}: {item.reason}" for item in result.report.skipped}
    return result, errors


# ---------------------------------------------------------------------------------------------------------- run


def batches_by_size(
    features: Sequence[dict], batch_size: int, progress: bool = False, description: str = "predicting"
) -> Iterator[tuple[np.ndarray, dict]]:
    """``(indices, collated batch)`` over ``features`` in order of size (least padding), labels dropped; with
    ``progress``, a bar over the molecules (molecules/s)."""
    from tqdm.auto import tqdm

    sizes = [int(np.asarray(f["num_atoms"])) for f in features]
    order = np.argsort(sizes, kind="stable")
    collator = MoleBlendCollator(pad_to_multiple_of=8)
    with tqdm(total=len(order), desc=description, unit="mol", disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batch = collator([features[i] for i in index])
            batch.pop("labels", None)
            yield index, batch
            bar.update(len(index))


def to_probabilities(logits: torch.Tensor, problem_type: str | None) -> torch.Tensor:
    """Classification logits as probabilities (sigmoid per task, or softmax over classes); regression unchanged."""
    if problem_type == "multi_label_classification":
        return torch.sigmoid(logits)
    if problem_type == "single_label_classification":
        return torch.softmax(logits, dim=-1)
    return logits


@torch.no_grad()
def predict_properties(
    models: Sequence[torch.nn.Module],
    features: Sequence[dict],
    batch_size: int = 64,
    probabilities: bool = True,
    progress: bool = False,
    mc_samples: int = 0,
) -> np.ndarray:
    """Predictions ``[models, molecules, tasks]`` in the order of ``features`` (featurizer dicts or rows of a
    featurized ``datasets`` table). Regression outputs are in real units; classification outputs are
    probabilities (``probabilities=True``) or logits. The Trainer's length-grouped evaluation sampler does not
    keep the input order; this does.

    With ``mc_samples`` > 0 (MC dropout), every model predicts ``mc_samples`` times with its dropout on (seeded):
    the result is ``[models * mc_samples, molecules, tasks]``.
    """
    passes = max(mc_samples, 1)
    outputs = np.zeros((len(models) * passes, len(features), models[0].config.num_labels), dtype=np.float64)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)  # MC dropout masks: the same predictions on every run
    try:
        for index, batch in batches_by_size(features, batch_size, progress, "predicting"):
            for m, model in enumerate(models):
                model.train(mc_samples > 0)  # dropout on only for MC dropout (the model has no batch norm)
                for k in range(passes):
                    logits = model(**batch.to(model.device)).logits.float()
                    if probabilities:
                        logits = to_probabilities(logits, model.config.problem_type)
                    outputs[m * passes + k, index] = logits.cpu().numpy()
    finally:
        torch.random.set_rng_state(generator_state)
        for model in models:
            model.eval()
    return outputs


@torch.no_grad()
def encode_features(
    encoder: MoleBlendModel,
    features: Sequence[dict],
    batch_size: int = 64,
    per_atom: bool = False,
    progress: bool = False,
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """``[molecules, hidden]`` graph-token embeddings (and each molecule's ``[atoms, hidden]``) in the order of
    ``features``."""
    encoder.eval()
    pooled = np.zeros((len(features), encoder.config.hidden_size), dtype=np.float32)
    atoms: list | None = [None] * len(features) if per_atom else None
    # the last layer's atom states only if asked for
    flags = {"output_hidden_states": False, "output_attentions": False, "graph_token_only": not per_atom}
    for index, batch in batches_by_size(features, batch_size, progress, "encoding"):
        output = encoder(**batch.to(encoder.device), **flags)
        pooled[index] = output.pooler_output.float().cpu().numpy()
        if atoms is not None:
            states = output.last_hidden_state.float().cpu().numpy()
            sizes = batch["num_atoms"].tolist()
            for row, i in enumerate(index):
                atoms[i] = states[row, 1 : 1 + sizes[row]]  # token 0 is the graph token
    return pooled, atoms
