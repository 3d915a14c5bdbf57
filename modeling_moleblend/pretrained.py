"""Pretrained MoleBlend checkpoints shipped inside the package, loadable offline by name.

    from modeling_moleblend import pretrained_checkpoint
    folder = pretrained_checkpoint("small")          # a folder that from_pretrained takes
    model = MoleBlendForPropertyPrediction.from_pretrained(folder, num_labels=1, problem_type="regression")

On the command line the same checkpoints are ``builtin:NAME``: ``moleblend finetune --model_name_or_path
builtin:small ...``. Each folder holds the config, the safetensors weights, the featurizer settings and a model
card (corpus, budget, objective, the panel results it was judged by); ``available_checkpoints()`` lists them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUILTIN_PREFIX = "builtin:"
DEFAULT_CHECKPOINT = "small"


def _root() -> Path:
    return Path(str(resources.files("modeling_moleblend").joinpath("pretrained")))


def available_checkpoints() -> list[str]:
    """The names of the shipped checkpoints (folders holding a config and weights)."""
    root = _root()
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if (p / "config.json").is_file() and (p / "model.safetensors").is_file()
    )


def pretrained_checkpoint(name: str = DEFAULT_CHECKPOINT) -> Path:
    """The folder of the shipped checkpoint ``name`` ("builtin:" prefix allowed).

    Raises:
        FileNotFoundError: no such checkpoint (the message lists the shipped ones).
    """
    name = name.removeprefix(BUILTIN_PREFIX)
    folder = _root() / name
    if not ((folder / "config.json").is_file() and (folder / "model.safetensors").is_file()):
        shipped = ", ".join(available_checkpoints()) or "none"
        raise FileNotFoundError(f"no shipped MoleBlend checkpoint {name!r} (shipped: {shipped})")
    return folder
