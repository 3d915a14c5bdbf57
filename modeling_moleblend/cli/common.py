"""What every subcommand shares: options built from the training dataclasses, the model/input options of the
inference commands, and the help formatter (description and examples kept as written, defaults shown)."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path

from ..tokenization import CONFORMER_POLICIES

METAVARS = {int: "N", float: "X", Path: "PATH"}
GROUP_ORDER = ("experiment", "data", "input", "model", "featurizer", "training", "output", "run", "export", "hub")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written (examples line by line), and every option's default (when it has one)."""

    def __init__(self, prog: str, **kwargs):
        super().__init__(prog, max_help_position=34, width=kwargs.pop("width", 110), **kwargs)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if action.required or any(default is v for v in (None, False, argparse.SUPPRESS)) or "%(default)" in text:
            return text
        if isinstance(default, (list, tuple)):
            default = " ".join(map(str, default))
        return f"{text} (default: {default})"


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One ``--name`` option per field of the dataclass ``cls`` (but those in ``skip``), grouped by the field's
    ``metadata["group"]``: ``bool`` fields are flags, ``list`` fields take several values, ``choices`` and
    ``aliases`` from the metadata, and a field without a default is required."""
    hints = typing.get_type_hints(cls)
    groups: dict[str, argparse._ArgumentGroup] = {}
    fields = sorted(dataclasses.fields(cls), key=lambda f: _group_rank(f.metadata.get("group") or "options"))
    for item in (f for f in fields if f.name not in skip):
        meta = item.metadata
        group_name = meta.get("group") or "options"
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(group_name)
        group = groups[group_name]
        flags = [f"--{item.name}", *meta.get("aliases", ())]
        kind, optional = _unwrap(hints[item.name])
        kwargs: dict = {"help": meta.get("help", ""), "dest": item.name}
        if meta.get("required"):
            kwargs["required"] = True
        elif item.default is not dataclasses.MISSING:
            kwargs["default"] = item.default
        else:
            kwargs["default"] = item.default_factory()
        if kind is bool and item.default is True:
            kwargs["action"] = argparse.BooleanOptionalAction  # --pruning / --no-pruning
        elif kind is bool:
            kwargs["action"] = "store_true"
            kwargs.pop("default", None)
        elif typing.get_origin(kind) is list:
            (element,) = typing.get_args(kind)
            kwargs["type"] = element
            kwargs["nargs"] = meta.get("nargs", "+")
        else:
            kwargs["type"] = kind
        if "choices" in meta:
            kwargs["choices"] = list(meta["choices"])
        elif kind is not bool:
            element = kwargs.get("type", kind)
            kwargs["metavar"] = meta.get("metavar") or METAVARS.get(element, "TEXT")
        group.add_argument(*flags, **kwargs)


def _group_rank(name: str) -> int:
    return GROUP_ORDER.index(name) if name in GROUP_ORDER else len(GROUP_ORDER)


def _unwrap(hint) -> tuple[type, bool]:
    """``X | None`` -> (X, True); ``X`` -> (X, False)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0], True
    return hint, False


def dataclass_from_namespace(cls: type, namespace: argparse.Namespace):
    """``cls(**the namespace's values of cls's fields)``."""
    return cls(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls)})


def add_inference_arguments(parser: argparse.ArgumentParser, several_models: bool) -> None:
    """The model, input and featurizer options of ``predict`` and ``encode``."""
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model_name_or_path",
        required=True,
        nargs="+" if several_models else None,
        help="a finetune output folder (every seed's model: an ensemble), a model folder or a Hub id"
        + (" (several: one ensemble)" if several_models else ""),
    )
    model.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    model.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    model.add_argument("--batch_size", type=int, default=64, help="molecules per batch")
    data = parser.add_argument_group("input")
    data.add_argument("--input", required=True, type=Path, help="CSV/TSV/SMI (optionally .gz), SDF (.sdf, .sdf.gz)")
    data.add_argument("--smiles_column", default="smiles", help="SMILES column of a table")
    data.add_argument(
        "--conformer", default=None, choices=CONFORMER_POLICIES, help="override the saved featurizer's policy"
    )
    data.add_argument("--num_workers", type=int, default=None, help="conformer workers (default: the saved value)")
    data.add_argument("--quiet", action="store_true", help="no progress bars")
