"""RDKit 2D descriptors as a molecule-level pretraining target (the descriptor head of ``MoleBlendForPretraining``).

Why: no term of the paper's loss reads the graph token's final state, so nothing in pretraining asks it to
summarise the molecule; a descriptor-pretrained foundation model (CheMeleon) transfers well. So, beside the
relation heads, the graph token can regress RDKit's 2D descriptors (``rdkit.Chem.Descriptors._descList``, 217 in
RDKit 2026.09), standardised:

* ``calculate_descriptors``: ``[molecules, descriptors]`` float64, NaN where RDKit cannot compute a value (or the
  SMILES does not parse); ``num_workers`` processes for large corpora (about 10 ms per drug-like molecule).
* ``DescriptorScaler``: signed ``log1p`` (tames heavy tails such as ``Ipc`` ~1e6 or ``BertzCT`` ~1e3; monotone and
  nearly linear near 0), then centre and scale fitted on the training rows, clipped to +-``clip``; descriptors that
  are constant on the training rows are dropped. Missing values stay NaN and are not scored.
* ``cached_descriptors``: one ``.npy`` per (molecules, RDKit version) next to the featurized cache, written
  atomically, so runs sharing a corpus compute it once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..tokenization.descriptors_moleblend import descriptor_names, descriptor_values, is_count_feature

logger = logging.getLogger(__name__)
STATISTICS_NAME = "descriptor_statistics.json"


def _names() -> tuple[str, ...]:
    return tuple(descriptor_names())


def _row(smiles: str) -> list[float]:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None:
        return [math.nan] * len(_names())
    return descriptor_values(mol, _names()).tolist()


def calculate_descriptors(smiles: Sequence[str], num_workers: int = 1, progress: bool | None = None) -> np.ndarray:
    """``[len(smiles), len(descriptor_names())]`` float64; a row of NaN for a SMILES that does not parse, NaN
    (never inf) where one descriptor fails. ``num_workers`` > 1 computes in that many processes (same result)."""
    from tqdm.auto import tqdm

    smiles = list(smiles)
    bar = dict(total=len(smiles), desc="descriptors", disable=progress is False or len(smiles) < 1000)
    if num_workers > 1 and len(smiles) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(num_workers) as pool:
            rows = list(tqdm(pool.imap(_row, smiles, chunksize=64), **bar))
    else:
        rows = [_row(s) for s in tqdm(smiles, **bar)]
    values = np.asarray(rows, dtype=np.float64).reshape(len(smiles), len(_names()))
    values[~np.isfinite(values)] = np.nan
    return values


def cached_descriptors(
    smiles: Sequence[str], cache_dir: str | Path, num_workers: int = 1, progress: bool | None = None
) -> np.ndarray:
    """``calculate_descriptors`` through a file in ``cache_dir`` keyed by the SMILES and the RDKit version."""
    import rdkit

    smiles = list(smiles)
    digest = hashlib.sha256("\n".join(smiles).encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"descriptors-{rdkit.__version__}-{digest}.npy"
    if path.exists():
        values = np.load(path)
        if values.shape == (len(smiles), len(_names())):
            return values
        logger.warning("%s has shape %s: recomputing", path, values.shape)
    values = calculate_descriptors(smiles, num_workers=num_workers, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(temporary, values)
    os.replace(temporary, path)
    return values


def signed_log1p(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


@dataclass
class DescriptorScaler:
    """Which descriptors are targets, and how they are standardised (saved as ``descriptor_statistics.json``).
    Targets are named, not numbered: another RDKit release may list its descriptors in another order."""

    names: list[str]
    center: list[float]
    scale: list[float]
    clip: float = 5.0

    @classmethod
    def fit(cls, values: np.ndarray, names: Sequence[str] | None = None, clip: float = 5.0) -> DescriptorScaler:
        """From the training rows' raw values ``[molecules, all descriptors]``: drop the columns that are constant
        (or missing everywhere), centre and scale the rest after ``signed_log1p``. Fingerprint counts
        (``MorganCount2_<bit>``) keep their own scale, ``log1p(count)`` (centre 0, scale 1): standardising a bit
        that few training molecules have would blow it up to the clip."""
        names = list(names or descriptor_names())
        transformed = signed_log1p(values)
        with np.errstate(all="ignore"):
            center = np.nanmean(transformed, axis=0)
            scale = np.nanstd(transformed, axis=0)
        keep = [i for i in range(transformed.shape[1]) if np.isfinite(scale[i]) and scale[i] > 1e-6]
        counts = [i for i, name in enumerate(names) if is_count_feature(name)]
        center[counts], scale[counts] = 0.0, 1.0
        if not keep:
            raise ValueError("every descriptor is constant on these molecules: nothing to regress")
        return cls(
            names=[names[i] for i in keep],
            center=[float(center[i]) for i in keep],
            scale=[float(scale[i]) for i in keep],
            clip=clip,
        )

    def transform(self, values: np.ndarray, names: Sequence[str] | None = None) -> np.ndarray:
        """Raw ``[molecules, all descriptors]`` (columns ``names``, default ``descriptor_names()``) -> standardised
        ``[molecules, len(self.names)]`` float32 (NaN kept).

        Raises:
            ValueError: a target descriptor is not among ``names`` (e.g. an RDKit release without it).
        """
        column = {name: i for i, name in enumerate(names or descriptor_names())}
        missing = [name for name in self.names if name not in column]
        if missing:
            raise ValueError(f"descriptors {missing[:5]} of the statistics are not computed by this RDKit release")
        transformed = signed_log1p(values[:, [column[name] for name in self.names]])
        standardised = (transformed - np.asarray(self.center)) / np.asarray(self.scale)
        return np.clip(standardised, -self.clip, self.clip).astype(np.float32)

    def save(self, folder: str | Path) -> Path:
        from ..files import write_json_atomic

        return write_json_atomic(Path(folder) / STATISTICS_NAME, asdict(self))

    @classmethod
    def load(cls, folder: str | Path) -> DescriptorScaler:
        return cls(**json.loads((Path(folder) / STATISTICS_NAME).read_text()))


__all__ = ["DescriptorScaler", "cached_descriptors", "calculate_descriptors", "descriptor_names", "signed_log1p"]
