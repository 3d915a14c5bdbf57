"""RDKit 2D descriptors of one molecule: the optional molecule-level input of ``MoleBlendForPropertyPrediction``
(``MoleBlendFeaturizer(molecule_descriptors=[names])`` adds them to every molecule as ``molecule_descriptors``)
and the targets of the pretraining descriptor head.

Raw values, float64, in the order of the names asked for; NaN where RDKit cannot compute one (never inf). The
model standardises them with statistics fitted on its training rows (``config.molecule_feature_*``).

Beside RDKit's descriptors, the bits of a Morgan count fingerprint (radius 2, 2,048 bits: the fingerprint forest's
input, and chemprop's ``morgan_count``) are named ``MorganCount2_<bit>`` (``morgan_names()``); a fingerprint is
computed once per molecule whatever the number of its bits asked for.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np


@functools.cache
def _functions() -> dict:
    from rdkit.Chem import Descriptors

    return dict(Descriptors._descList)


MORGAN_PREFIX = "MorganCount2_"
MORGAN_RADIUS = 2
MORGAN_BITS = 2048


def morgan_names() -> list[str]:
    """The names of the Morgan count fingerprint's bits, ``MorganCount2_0`` .. ``MorganCount2_2047``."""
    return [f"{MORGAN_PREFIX}{bit}" for bit in range(MORGAN_BITS)]


def _morgan_bit(name: str) -> int | None:
    """The bit a ``MorganCount2_<bit>`` name asks for; None for any other name."""
    if not name.startswith(MORGAN_PREFIX):
        return None
    bit = name[len(MORGAN_PREFIX) :]
    return int(bit) if bit.isdigit() and int(bit) < MORGAN_BITS else None


def is_count_feature(name: str) -> bool:
    """Whether ``name`` is a fingerprint bit (a count, on its own scale) rather than an RDKit descriptor."""
    return _morgan_bit(name) is not None


@functools.cache
def _morgan_generator():
    from rdkit.Chem import rdFingerprintGenerator

    return rdFingerprintGenerator.GetMorganGenerator(radius=MORGAN_RADIUS, fpSize=MORGAN_BITS)


@functools.cache
def _plan(names: tuple[str, ...]) -> tuple[list[tuple[int, str]], np.ndarray, np.ndarray]:
    """Where the RDKit descriptors and where the fingerprint bits of ``names`` go: ``[(position, name)]``, the
    fingerprint positions and their bits."""
    descriptors, positions, bits = [], [], []
    for k, name in enumerate(names):
        bit = _morgan_bit(name)
        if bit is None:
            descriptors.append((k, name))
        else:
            positions.append(k)
            bits.append(bit)
    return descriptors, np.asarray(positions, dtype=np.int64), np.asarray(bits, dtype=np.int64)


def descriptor_names() -> list[str]:
    """RDKit's 2D descriptor names, in ``Descriptors._descList`` order (217 in RDKit 2026.09)."""
    return list(_functions())


def unknown_descriptors(names: Sequence[str]) -> list[str]:
    """The names this RDKit release does not compute."""
    known = _functions()
    return [name for name in names if name not in known and _morgan_bit(name) is None]


def descriptor_values(mol, names: Sequence[str]) -> np.ndarray:
    """``[len(names)]`` float64 of one RDKit molecule; NaN where a descriptor fails or is not finite."""
    functions = _functions()
    descriptors, positions, bits = _plan(tuple(names))
    values = np.empty(len(names), dtype=np.float64)
    for k, name in descriptors:
        try:
            values[k] = float(functions[name](mol))
        except Exception:  # RDKit descriptors raise many types on odd molecules
            values[k] = math.nan
    if len(positions):
        try:
            values[positions] = _morgan_generator().GetCountFingerprintAsNumPy(mol)[bits]
        except Exception:
            values[positions] = math.nan
    values[~np.isfinite(values)] = math.nan
    return values
