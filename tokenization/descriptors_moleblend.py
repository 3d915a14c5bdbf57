"""RDKit 2D descriptors of one molecule: the optional molecule-level input of ``MoleBlendForPropertyPrediction``
(``MoleBlendFeaturizer(molecule_descriptors=[names])`` adds them to every molecule as ``molecule_descriptors``)
and the targets of the pretraining descriptor head.

Raw values, float64, in the order of the names asked for; NaN where RDKit cannot compute one (never inf). The
model standardises them with statistics fitted on its training rows (``config.molecule_feature_*``).
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


def descriptor_names() -> list[str]:
    """RDKit's 2D descriptor names, in ``Descriptors._descList`` order (217 in RDKit 2026.09)."""
    return list(_functions())


def unknown_descriptors(names: Sequence[str]) -> list[str]:
    """The names this RDKit release does not compute."""
    known = _functions()
    return [name for name in names if name not in known]


def descriptor_values(mol, names: Sequence[str]) -> np.ndarray:
    """``[len(names)]`` float64 of one RDKit molecule; NaN where a descriptor fails or is not finite."""
    functions = _functions()
    values = np.empty(len(names), dtype=np.float64)
    for k, name in enumerate(names):
        try:
            values[k] = float(functions[name](mol))
        except Exception:  # RDKit descriptors raise many types on odd molecules
            values[k] = math.nan
    values[~np.isfinite(values)] = math.nan
    return values
