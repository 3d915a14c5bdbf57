"""Pieces the finetuning and pretraining loops share: the featurizer a run uses, config overrides, optimizer
parameter groups, the hardware line of a results file, JSON-safe values, and quiet mode."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data import InputError
from ..files import write_json_atomic
from ..inference import load_featurizer
from ..tokenization import MoleBlendFeaturizer
from ..tokenization.conformers_moleblend import default_num_workers

logger = logging.getLogger(__name__)


def option(default=None, help: str = "", group: str = "", **metadata):
    """A dataclass field that is also a command-line option (``cli.common.add_dataclass_arguments`` reads ``help``,
    ``group``, ``choices``, ``nargs``, ``aliases``)."""
    metadata = {"help": help, "group": group, **metadata}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def required_option(help: str, group: str, **metadata):
    return field(metadata={"help": help, "group": group, "required": True, **metadata})


@dataclass(kw_only=True)
class HubArguments:
    """Where and how a run pushes its model to the Hugging Face Hub."""

    push_to_hub: bool = option(False, "push the model to the Hub at the end", "hub")
    hub_model_id: str | None = option(None, "the Hub repo, e.g. my-org/moleblend-esol", "hub")
    hub_private_repo: bool = option(False, "create the repo private (if it is new)", "hub")
    hub_revision: str | None = option(None, "branch to push to (created from main if missing)", "hub")
    hub_token: str | None = option(None, "default: the usual places (HF_TOKEN, hf auth login)", "hub")

    def check_hub(self) -> None:
        if self.push_to_hub and not self.hub_model_id:
            raise InputError("--push_to_hub needs --hub_model_id")


class SavedResult:
    """A run's typed result saved as JSON in its output folder (``RESULTS_NAME``): ``save`` and ``load`` for the
    dataclasses ``FinetuneResult`` and ``PretrainResult`` (the field ``output_dir`` is where it was loaded from,
    not saved)."""

    RESULTS_NAME = "results.json"

    def save(self, folder: str | Path) -> Path:
        data = {k: v for k, v in asdict(self).items() if k != "output_dir"}
        return write_json_atomic(Path(folder) / self.RESULTS_NAME, jsonable(data))

    @classmethod
    def load(cls, folder: str | Path):
        folder = Path(folder)
        data = json.loads((folder / cls.RESULTS_NAME).read_text())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__}, output_dir=folder)


def build_featurizer(
    model_name_or_path: str | None,
    conformer: str,
    max_atoms: int,
    num_workers: int | None,
    revision: str | None = None,
    conformer_fallback: str | None = None,
) -> MoleBlendFeaturizer:
    """The featurizer a run uses: the one saved with the starting model (its settings are what the model was
    trained with), else a new one; ``conformer``, ``num_workers`` and a given ``conformer_fallback`` always
    apply."""
    workers = default_num_workers() if num_workers is None else num_workers
    forced = {"conformer": conformer, "num_workers": workers}
    if conformer_fallback is not None:
        forced["conformer_fallback"] = conformer_fallback
    if model_name_or_path:
        try:
            saved = load_featurizer(model_name_or_path, revision)
            return MoleBlendFeaturizer(**{**saved.to_dict(), **forced})
        except OSError:
            logger.info("no featurizer saved with %s: using the default one", model_name_or_path)
    return MoleBlendFeaturizer(max_atoms=max_atoms, seed=0, **forced)


def parse_config_overrides(text: str | None) -> dict:
    """ "a=1,b=0.5,c=true,d=text" -> {"a": 1, "b": 0.5, "c": True, "d": "text"}."""
    overrides = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--config_overrides: expected key=value, got {item!r}")
        try:
            overrides[key.strip()] = json.loads(value.strip().lower() if value.strip() in ("True", "False") else value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value.strip()
    return overrides


def optimizer_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices and embeddings only: never on biases, norms and other vectors."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def hardware_description(device: torch.device | None = None, num_processes: int = 1) -> str:
    """E.g. "1 x CPU (2 cores, 2 threads per process), torch 2.13.0, Linux-6.1"."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads per process)"
    return f"{num_processes} x {name}, torch {torch.__version__}, {platform.platform(terse=True)}"


def jsonable(value):
    """``value`` with numpy scalars as Python numbers, NaN as None, paths as text, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def set_quiet(quiet: bool) -> None:
    """Quiet means quiet: no progress bars (datasets, transformers, ours) and warnings only from the libraries."""
    if not quiet:
        return
    import datasets
    import transformers

    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("modeling_moleblend").setLevel(logging.WARNING)
