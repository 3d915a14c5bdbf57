"""Pads featurized molecules into one batch for ``MoleBlendModel``.

The batch keys, their shapes, dtypes and padding values are defined once, in ``batch_layout_moleblend.py``
(``BATCH_LAYOUT``; the table is in its docstring and in docs/featurizer.md): this module allocates every key from
it. Labels go through ``labels_moleblend.parse_label``, the featurizer's own missing-value rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

from transformers import BatchFeature

from .batch_layout_moleblend import BATCH_LAYOUT, LAYOUT_BY_NAME, PAD_VALUES
from .labels_moleblend import labels_to_float

__all__ = ["PAD_VALUES", "MoleBlendCollator", "labels_to_float"]


def _allocate(name: str, sizes: dict[str, int]) -> np.ndarray:
    """The batch array of key ``name``, filled with its padding value (zeros for per-molecule keys)."""
    key = LAYOUT_BY_NAME[name]
    shape = tuple(sizes[d] if isinstance(d, str) else d for d in key.dims)
    fill = key.pad_value if key.pad_value is not None else 0
    return np.full(shape, fill, dtype=key.dtype)


class MoleBlendCollator:
    """Pads featurized molecules (dicts from ``MoleBlendFeaturizer.featurize``, or rows of a ``datasets``
    table holding the same keys) to the batch's largest molecule.

    Args:
        pad_to_multiple_of: if set, the atom axis is padded so that atoms + the graph token is a multiple of it
            (8 lets the CUDA memory-efficient SDPA kernel take the attention bias without copying).
        return_tensors: "pt" (default) or "np".

    Padding never changes a real molecule's values: every real entry is copied unchanged, padded entries get
    the values in ``PAD_VALUES`` and ``atom_mask`` marks them. Keys outside ``BATCH_LAYOUT`` (e.g. a table's
    ``row`` or ``smiles``) are ignored; ``labels`` (if any row has them, every row must) become ``[B, T]`` float32
    through ``parse_label`` (None, "", "NA", "nan" -> NaN; other text is an ``InvalidLabelError``). Pretraining
    rows may carry ``descriptors`` (standardised RDKit descriptors, NaN = missing): they become ``[B, D]`` float32;
    a featurizer with ``molecule_descriptors`` adds the raw values, ``[B, F]`` float64.
    """

    def __init__(self, pad_to_multiple_of: int | None = None, return_tensors: str = "pt"):
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be a positive integer, got {pad_to_multiple_of}")
        if return_tensors not in ("pt", "np"):
            raise ValueError(f"return_tensors must be 'pt' or 'np', got {return_tensors!r}")
        self.pad_to_multiple_of = pad_to_multiple_of
        self.return_tensors = return_tensors

    def padded_atom_count(self, max_atoms: int) -> int:
        if not self.pad_to_multiple_of:
            return max_atoms
        return math.ceil((max_atoms + 1) / self.pad_to_multiple_of) * self.pad_to_multiple_of - 1

    def __call__(self, features: Sequence[Mapping]) -> BatchFeature:
        if len(features) == 0:
            raise ValueError("MoleBlendCollator got an empty list of molecules")
        counts = [int(np.asarray(f["num_atoms"])) for f in features]
        bond_counts = [np.asarray(f["bond_features"]).size // 3 for f in features]
        first_paths = np.asarray(features[0]["path_bonds"])
        max_hops = first_paths.size // max(counts[0] ** 2, 1) if counts[0] > 0 else 0
        batch, n, e = len(features), self.padded_atom_count(max(counts)), 1 + max(bond_counts)

        sizes = {"B": batch, "N": n, "E": e, "H": max_hops}
        data = {key.name: _allocate(key.name, sizes) for key in BATCH_LAYOUT if key.name != "labels"}
        atom_ids, degree, atom_mask, spd = data["atom_ids"], data["degree"], data["atom_mask"], data["spd"]
        path_bonds, bond_features, coordinates = data["path_bonds"], data["bond_features"], data["coordinates"]
        has_3d = data["has_3d"]
        for b, (feature, k, num_bonds) in enumerate(zip(features, counts, bond_counts)):
            atom_ids[b, :k] = np.asarray(feature["atom_ids"]).reshape(k, 9)
            degree[b, :k] = np.asarray(feature["degree"]).reshape(k)
            atom_mask[b, :k] = True
            spd[b, :k, :k] = np.asarray(feature["spd"]).reshape(k, k)
            path_bonds[b, :k, :k] = np.asarray(feature["path_bonds"]).reshape(k, k, max_hops)
            bond_features[b, 1 : 1 + num_bonds] = np.asarray(feature["bond_features"]).reshape(num_bonds, 3)
            has_3d[b] = bool(np.asarray(feature.get("has_3d", False)))
            if has_3d[b]:
                coordinates[b, :k] = np.asarray(feature["coordinates"], dtype=np.float32).reshape(k, 3)

        data["num_atoms"][:] = counts
        with_labels = ["labels" in f for f in features]
        if any(with_labels):
            if not all(with_labels):
                missing = [i for i, present in enumerate(with_labels) if not present]
                raise ValueError(f"molecules {missing[:10]} of the batch have no 'labels' while others do")
            rows = [labels_to_float(f["labels"], b, _describe(f, b)) for b, f in enumerate(features)]
            if len({len(r) for r in rows}) != 1:
                raise ValueError(f"molecules carry different numbers of labels: {sorted({len(r) for r in rows})}")
            data["labels"] = np.stack(rows)
        if "molecule_descriptors" in features[0]:  # raw RDKit values: float64 (Ipc passes 1e38 on large molecules)
            data["molecule_descriptors"] = np.stack(
                [np.asarray(f["molecule_descriptors"], dtype=np.float64) for f in features]
            )
        if "descriptors" in features[0]:
            data["descriptors"] = np.stack([np.asarray(f["descriptors"], dtype=np.float32) for f in features])
        if self.return_tensors == "pt":
            data = {key: torch.from_numpy(value) for key, value in data.items()}
        return BatchFeature(data)


def _describe(feature: Mapping, row: int) -> str:
    """A molecule in an error message: its SMILES when the row carries one (a cached table's rows do)."""
    smiles = feature.get("smiles")
    return str(smiles) if smiles else f"batch row {row}"
