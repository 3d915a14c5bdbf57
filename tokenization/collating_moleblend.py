"""Pads featurized molecules into one batch for ``MoleBlendModel``.

Batch keys (``B`` molecules, ``N`` padded atoms, ``E`` = 1 + the largest bond count, ``H`` = max hops):

| key | shape | dtype | padding | meaning |
|---|---|---|---|---|
| ``atom_ids`` | [B, N, 9] | int64 | 0 | the 9 atom features as offset ids into one table |
| ``degree`` | [B, N] | int64 | 0 | graph neighbours (0..8) |
| ``atom_mask`` | [B, N] | bool | False | True for real atoms |
| ``spd`` | [B, N, N] | int16 | -1 | shortest-path bond count; -1 = unreachable or padding |
| ``path_bonds`` | [B, N, N, H] | int16 | 0 | 1-based row of ``bond_features`` for each hop of the path i -> j |
| ``bond_features`` | [B, E, 3] | int64 | 0 | bond type/stereo/conjugated offset ids; row 0 is all padding |
| ``coordinates`` | [B, N, 3] | float32 | 0.0 | angstrom; zeros where ``has_3d`` is False |
| ``has_3d`` | [B] | bool | - | the molecule has real 3D coordinates |
| ``num_atoms`` | [B] | int64 | - | real atom count |
| ``labels`` | [B, T] | float32 | - | only if every molecule carries labels; NaN = missing |

Narrow dtypes keep the O(N^2) tensors small; the model casts them to int64 where it embeds them.
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

from .molecular_graph_moleblend import SPD_UNREACHABLE

# Padding value of every per-atom / per-pair key.
PAD_VALUES = {
    "atom_ids": 0,
    "degree": 0,
    "spd": SPD_UNREACHABLE,
    "path_bonds": 0,
    "bond_features": 0,
    "coordinates": 0.0,
}


def labels_to_float(values) -> np.ndarray:
    """Labels as a float32 vector: None, "" and non-finite text become NaN; a scalar becomes a 1-vector."""
    if values is None:
        return np.array([np.nan], dtype=np.float32)
    if np.ndim(values) == 0:
        values = [values]
    return np.array([np.nan if v is None else v for v in values], dtype=np.float32)


class MoleBlendCollator:
    """Pads featurized molecules (dicts from ``MoleBlendFeaturizer.featurize``, or rows of a ``datasets``
    table holding the same keys) to the batch's largest molecule.

    Args:
        pad_to_multiple_of: if set, the atom axis is padded so that atoms + the graph token is a multiple of it
            (8 lets the CUDA memory-efficient SDPA kernel take the attention bias without copying).
        return_tensors: "pt" (default) or "np".

    Padding never changes a real molecule's values: every real entry is copied unchanged, padded entries get
    the values in ``PAD_VALUES`` and ``atom_mask`` marks them. Keys other than the ones above are ignored.
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

        atom_ids = np.zeros((batch, n, 9), dtype=np.int64)
        degree = np.zeros((batch, n), dtype=np.int64)
        atom_mask = np.zeros((batch, n), dtype=bool)
        spd = np.full((batch, n, n), PAD_VALUES["spd"], dtype=np.int16)
        path_bonds = np.zeros((batch, n, n, max_hops), dtype=np.int16)
        bond_features = np.zeros((batch, e, 3), dtype=np.int64)
        coordinates = np.zeros((batch, n, 3), dtype=np.float32)
        has_3d = np.zeros(batch, dtype=bool)
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

        data = {
            "atom_ids": atom_ids,
            "degree": degree,
            "atom_mask": atom_mask,
            "spd": spd,
            "path_bonds": path_bonds,
            "bond_features": bond_features,
            "coordinates": coordinates,
            "has_3d": has_3d,
            "num_atoms": np.asarray(counts, dtype=np.int64),
        }
        with_labels = ["labels" in f for f in features]
        if any(with_labels):
            if not all(with_labels):
                missing = [i for i, present in enumerate(with_labels) if not present]
                raise ValueError(f"molecules {missing[:10]} of the batch have no 'labels' while others do")
            rows = [labels_to_float(f["labels"]) for f in features]
            if len({len(r) for r in rows}) != 1:
                raise ValueError(f"molecules carry different numbers of labels: {sorted({len(r) for r in rows})}")
            data["labels"] = np.stack(rows)
        if self.return_tensors == "pt":
            data = {key: torch.from_numpy(value) for key, value in data.items()}
        return BatchFeature(data)
