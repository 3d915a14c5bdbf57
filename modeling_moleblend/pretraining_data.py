"""Data pieces of the pretraining script (``scripts/pretrain.py``): corpus reading, the seeded train/validation
split, the length-bucketed batch sampler, padding statistics, checkpoint discovery and the loss-curve figure.

They live here, not in the script, so that they can be unit-tested and reused (e.g. by a custom training loop).
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Sampler

from .molecule_data import MoleculeTable, read_molecule_table

LOSS_COMPONENTS = ("loss", "spd_loss", "edge_loss", "distance_loss", "denoise_loss")
CHECKPOINT_PATTERN = re.compile(r"^(step|epoch)_(\d+)$")
TRAINER_STATE_NAME = "trainer_state.json"


# ---------------------------------------------------------------------------------------------------------- corpus


def read_pretraining_corpus(path: str | Path, smiles_column: str = "smiles") -> MoleculeTable:
    """A pretraining corpus without labels: an SDF (``.sdf``/``.sdf.gz``, its 3D coordinates are used), a CSV
    (``.csv``/``.csv.gz``, ``smiles_column``), a SMILES file (``.smi``/``.smi.gz``: the first whitespace-separated
    field of each line; a header line naming ``smiles_column`` is skipped) or a ``datasets`` folder."""
    path = Path(path)
    if not path.name.lower().endswith((".smi", ".smi.gz")):
        return read_molecule_table(path, smiles_column)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    smiles: list[str | None] = []
    with opener(path, "rt") as handle:
        for number, line in enumerate(handle):
            fields = line.split()
            if not fields:
                continue
            if number == 0 and fields[0].lower() in (smiles_column.lower(), "smiles"):
                continue  # a header line
            smiles.append(fields[0])
    if not smiles:
        raise ValueError(f"{path}: no SMILES")
    return MoleculeTable(str(path), smiles, None, [])


def split_train_validation(num_molecules: int, validation_percentage: float, seed: int) -> tuple[np.ndarray, ...]:
    """Seeded random split of ``range(num_molecules)`` into (train, validation) index arrays, each sorted.

    The validation set holds ``round(n * percentage / 100)`` molecules, at least one when the percentage is
    positive, and never all of them."""
    if not 0 <= validation_percentage < 100:
        raise ValueError(f"validation_split_percentage must be in [0, 100), got {validation_percentage}")
    order = np.random.default_rng(seed).permutation(num_molecules)
    size = round(num_molecules * validation_percentage / 100)
    if validation_percentage > 0:
        size = min(max(size, 1), num_molecules - 1)
    return np.sort(order[size:]), np.sort(order[:size])


# ---------------------------------------------------------------------------------------------------------- batches


class LengthBucketedBatchSampler(Sampler[list[int]]):
    """Batches of molecules of similar size, in a random order that depends only on ``(seed, epoch)``.

    Each epoch: shuffle all molecules, cut the order into megabatches of ``batch_size * megabatch_batches``
    molecules, sort each megabatch by atom count (largest first), cut it into batches, shuffle the batches. The
    batch holding the largest molecule goes first (an out-of-memory error shows up at once, not hours in) and a
    smaller last batch stays last (so that ``accelerate``'s ``BatchSamplerShard`` can shard the batches across
    processes: process ``r`` gets batches ``r, r + P, ...``, each molecule once per epoch except the few
    re-used to give every process the same number of batches).

    Randomness comes from a numpy generator seeded with ``(seed, epoch)``: the torch global RNG is not touched,
    so that a resumed run sees the same batches and the same model randomness as an uninterrupted one. Call
    ``set_epoch`` before each epoch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        megabatch_batches: int = 50,
        drop_last: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if megabatch_batches < 1:
            raise ValueError(f"megabatch_batches must be >= 1, got {megabatch_batches}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size  # read by accelerate when it shards the batches
        self.seed = seed
        self.megabatch_batches = megabatch_batches
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        count = len(self.lengths) / self.batch_size
        return math.floor(count) if self.drop_last else math.ceil(count)

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """The epoch's batches (lists of dataset indices), in order."""
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch])
        order = rng.permutation(len(self.lengths))
        megabatch = self.batch_size * self.megabatch_batches
        full, partial = [], []
        for start in range(0, len(order), megabatch):
            pool = order[start : start + megabatch]
            pool = pool[np.argsort(-self.lengths[pool], kind="stable")]  # ties keep the random order
            for first in range(0, len(pool), self.batch_size):
                batch = pool[first : first + self.batch_size].tolist()
                (full if len(batch) == self.batch_size else partial).append(batch)
        full = [full[i] for i in rng.permutation(len(full))]
        if full:
            largest = max(range(len(full)), key=lambda i: self.lengths[full[i]].max())
            full.insert(0, full.pop(largest))
        return full if self.drop_last else full + partial

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()


def padding_counts(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``[real atoms, atom slots, real pairs, pair slots]`` of a collated batch (float64, on the batch's device).

    Atom slots are ``batch x padded atoms``; pairs are ordered atom pairs (``n^2`` real per molecule), the
    O(N^2) tensors whose padding costs the most."""
    num_atoms = batch["num_atoms"].to(torch.float64)
    size, padded = batch["atom_mask"].shape
    slots = float(size * padded)
    return torch.stack(
        [num_atoms.sum(), num_atoms.new_tensor(slots), (num_atoms**2).sum(), num_atoms.new_tensor(slots * padded)]
    )


# ---------------------------------------------------------------------------------------------------------- checkpoints


def checkpoint_completed_steps(folder: str | Path, updates_per_epoch: int | None = None) -> int | None:
    """Optimizer updates done when checkpoint ``folder`` was written: from its ``trainer_state.json``, else from
    its name (``step_N`` -> N; ``epoch_E`` -> (E + 1) * updates_per_epoch). None when neither says."""
    folder = Path(folder)
    state_file = folder / TRAINER_STATE_NAME
    if state_file.exists():
        return int(json.loads(state_file.read_text())["completed_steps"])
    match = CHECKPOINT_PATTERN.match(folder.name)
    if match is None:
        return None
    number = int(match.group(2))
    if match.group(1) == "step":
        return number
    return (number + 1) * updates_per_epoch if updates_per_epoch else None


def find_latest_checkpoint(output_dir: str | Path, updates_per_epoch: int | None = None) -> Path | None:
    """The ``step_N`` / ``epoch_E`` folder of ``output_dir`` with the most completed updates (numeric order, so
    ``step_10`` comes after ``step_9``), or None when there is none."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    candidates = []
    for folder in output_dir.iterdir():
        if folder.is_dir() and CHECKPOINT_PATTERN.match(folder.name):
            steps = checkpoint_completed_steps(folder, updates_per_epoch)
            if steps is not None:
                candidates.append((steps, folder.name.startswith("step_"), folder))
    return max(candidates, key=lambda item: item[:2])[2] if candidates else None


# ---------------------------------------------------------------------------------------------------------- logs


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_pretraining_curves(log: Sequence[Mapping], path: str | Path, title: str = "") -> Path:
    """One panel per loss component (total, SPD, edge, distance, denoise): training (line) and validation
    (markers) against the optimizer step. Drawn on an Agg canvas (no pyplot, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.2 * len(LOSS_COMPONENTS), 3.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(LOSS_COMPONENTS), squeeze=False)[0]
    for axis, name in zip(axes, LOSS_COMPONENTS):
        for prefix, style, label in (("train_", "-", "train"), ("eval_", "o-", "validation")):
            points = [
                (entry["step"], entry[prefix + name])
                for entry in log
                if entry.get(prefix + name) is not None and math.isfinite(entry[prefix + name])
            ]
            if points:
                steps, values = zip(*points)
                axis.plot(steps, values, style, label=label, markersize=3)
        axis.set_title(name.replace("_", " "))
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    axes[0].legend()
    if title:
        figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
