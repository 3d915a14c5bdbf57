"""The batch layout: every key a MoleBlend batch carries, defined once.

``MoleBlendCollator`` allocates and pads from it, ``MoleBlendFeaturizer.model_input_names`` and a featurized
table's cache (``FEATURE_COLUMNS``, ``STORAGE_DTYPES``) are read from it, and the model's own list of the inputs
each modality needs (``modeling_moleblend.MODALITY_INPUTS``, repeated there because a Hub export copies the model
file alone) is tested against ``inputs_needed``.

Dimensions: ``B`` molecules, ``N`` padded atoms, ``E`` = 1 + the largest bond count, ``H`` = max hops, ``T`` tasks.

| key | shape | dtype | padding | stored as | needed by | meaning |
|---|---|---|---|---|---|---|
| ``atom_ids`` | [B, N, 9] | int64 | 0 | int16 | 2d, 3d, 2d3d | the 9 atom features as offset ids into one table |
| ``degree`` | [B, N] | int64 | 0 | int16 | 2d, 2d3d | graph neighbours (0..8) |
| ``atom_mask`` | [B, N] | bool | False | - | - | True for real atoms (made by the collator) |
| ``spd`` | [B, N, N] | int16 | -1 | int16 | 2d, 2d3d | shortest-path bond count; -1 = unreachable or padding |
| ``path_bonds`` | [B, N, N, H] | int16 | 0 | int16 | 2d, 2d3d | 1-based row of ``bond_features`` per hop of i -> j |
| ``bond_features`` | [B, E, 3] | int64 | 0 | int16 | 2d, 2d3d | type/stereo/conjugated offset ids; row 0 = padding |
| ``coordinates`` | [B, N, 3] | float32 | 0.0 | float32 | 3d, 2d3d | angstrom; zeros where ``has_3d`` is False |
| ``has_3d`` | [B] | bool | - | bool | - | the molecule has real 3D coordinates |
| ``num_atoms`` | [B] | int64 | - | int64 | - | real atom count |
| ``labels`` | [B, T] | float32 | - | float32 | - | only if every molecule carries labels; NaN = missing |

(``layout_table()`` writes this table from ``BATCH_LAYOUT``; a test keeps the two, and docs/featurizer.md, equal.)
Narrow dtypes keep the O(N^2) tensors small; the model casts them to int64 where it embeds them. A cache stores
each molecule's arrays flattened in the "stored as" dtype; ``atom_mask`` is not stored (the collator derives it
from ``num_atoms``) and ``labels`` are attached per input row, not featurized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .molecular_graph_moleblend import SPD_UNREACHABLE

MODALITIES = ("2d", "3d", "2d3d")
_ALL, _WITH_2D, _WITH_3D = MODALITIES, ("2d", "2d3d"), ("3d", "2d3d")


@dataclass(frozen=True)
class BatchKey:
    """One key of a collated batch.

    Args:
        name: the key (and the model's ``forward`` argument).
        dims: the collated shape, symbolic (``"B"``, ``"N"``, ``"E"``, ``"H"``, ``"T"``) or fixed ints.
        dtype: the collated numpy dtype (``torch.from_numpy`` keeps it).
        pad_value: what padded entries hold; None for per-molecule keys, which are never padded.
        storage_dtype: the numpy dtype of the key in a featurized table cached on disk; None if not stored.
        stored: whether every cached molecule stores it (one of ``FEATURE_COLUMNS``).
        modalities: the ``input_modality`` values of the model that need the key (empty: optional everywhere).
        description: one line for the docs.
    """

    name: str
    dims: tuple[str | int, ...]
    dtype: str
    pad_value: int | float | bool | None
    storage_dtype: str | None
    stored: bool
    modalities: tuple[str, ...]
    description: str

    @property
    def shape(self) -> str:
        """The shape as the docs write it, e.g. ``"[B, N, N]"``."""
        return "[" + ", ".join(str(d) for d in self.dims) + "]"

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def torch_dtype(self):
        """The collated ``torch.dtype`` (needs torch)."""
        import torch

        return getattr(torch, self.dtype)


BATCH_LAYOUT: tuple[BatchKey, ...] = (
    BatchKey(
        "atom_ids", ("B", "N", 9), "int64", 0, "int16", True, _ALL,
        "the 9 atom features as offset ids into one table",
    ),
    BatchKey("degree", ("B", "N"), "int64", 0, "int16", True, _WITH_2D, "graph neighbours (0..8)"),
    BatchKey("atom_mask", ("B", "N"), "bool", False, None, False, (), "True for real atoms (made by the collator)"),
    BatchKey(
        "spd", ("B", "N", "N"), "int16", SPD_UNREACHABLE, "int16", True, _WITH_2D,
        "shortest-path bond count; -1 = unreachable or padding",
    ),
    BatchKey(
        "path_bonds", ("B", "N", "N", "H"), "int16", 0, "int16", True, _WITH_2D,
        "1-based row of ``bond_features`` per hop of i -> j",
    ),
    BatchKey(
        "bond_features", ("B", "E", 3), "int64", 0, "int16", True, _WITH_2D,
        "type/stereo/conjugated offset ids; row 0 = padding",
    ),
    BatchKey(
        "coordinates", ("B", "N", 3), "float32", 0.0, "float32", True, _WITH_3D,
        "angstrom; zeros where ``has_3d`` is False",
    ),
    BatchKey("has_3d", ("B",), "bool", None, "bool", True, (), "the molecule has real 3D coordinates"),
    BatchKey("num_atoms", ("B",), "int64", None, "int64", True, (), "real atom count"),
    BatchKey(
        "labels", ("B", "T"), "float32", None, "float32", False, (),
        "only if every molecule carries labels; NaN = missing",
    ),
)  # fmt: skip

LAYOUT_BY_NAME: dict[str, BatchKey] = {key.name: key for key in BATCH_LAYOUT}

# The per-molecule arrays a featurized table stores, in order (matrices flattened; the collator reshapes them).
FEATURE_COLUMNS: tuple[str, ...] = tuple(key.name for key in BATCH_LAYOUT if key.stored)
# numpy dtype of every key a cache stores (the FEATURE_COLUMNS and labels).
STORAGE_DTYPES: dict[str, str] = {key.name: key.storage_dtype for key in BATCH_LAYOUT if key.storage_dtype}
# The padding value of every stored per-atom / per-pair key.
PAD_VALUES: dict[str, int | float] = {
    key.name: key.pad_value for key in BATCH_LAYOUT if key.stored and key.pad_value is not None
}
# Every batch key the model's forward takes as an input (labels are the target, not an input).
MODEL_INPUT_NAMES: tuple[str, ...] = tuple(key.name for key in BATCH_LAYOUT if key.name != "labels")


def inputs_needed(modality: str) -> list[str]:
    """The batch keys a model with ``input_modality=modality`` cannot run without, in layout order."""
    if modality not in MODALITIES:
        raise ValueError(f"input_modality must be one of {MODALITIES}, got {modality!r}")
    return [key.name for key in BATCH_LAYOUT if modality in key.modalities]


def layout_table(code: str = "``") -> str:
    """The layout as a markdown table: with ``code="``"`` (reST literals) the one in this module's docstring, with
    ``code="`"`` the one in docs/featurizer.md."""
    lines = [
        "| key | shape | dtype | padding | stored as | needed by | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in BATCH_LAYOUT:
        padding = "-" if key.pad_value is None else str(key.pad_value)
        cells = (
            f"{code}{key.name}{code}",
            key.shape,
            key.dtype,
            padding,
            key.storage_dtype or "-",
            ", ".join(key.modalities) or "-",
            key.description.replace("``", code),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
