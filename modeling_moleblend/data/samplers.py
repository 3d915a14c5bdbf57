"""Which molecules go into which batch: the seeded train/validation split of a pretraining corpus, the
length-bucketed batch sampler (molecules of similar size together, deterministic per seed and epoch, resumable)
and the padding statistics the pretraining log reports.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


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


class LengthBucketedSampler(Sampler[int]):
    """The molecules of ``LengthBucketedBatchSampler``'s batches, one after another, for a ``DataLoader`` (the
    ``Trainer``'s) that cuts them into batches of the same ``batch_size`` itself: full batches first, the one
    smaller batch last, so that the cuts fall where the batch sampler's do. ``set_epoch`` (the Trainer calls it)
    selects the epoch's order, so a resumed run sees the same batches.

    ``megabatch_batches=0`` follows transformers' ``LengthGroupedSampler``: megabatches of a quarter of the epoch,
    at most 50 batches."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, megabatch_batches: int = 0):
        if megabatch_batches == 0:
            megabatch_batches = min(max(len(lengths) // (batch_size * 4), 1), 50)
        self.batches = LengthBucketedBatchSampler(lengths, batch_size, seed, megabatch_batches)

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batches.lengths)

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches.batches():
            yield from batch


class SortedByLengthSampler(Sampler[int]):
    """Every molecule once, smallest first (ties in input order): the least padding for evaluation, where the
    order does not matter. The one smaller batch holds the largest molecules, the fewest rows at the widest
    padding."""

    def __init__(self, lengths: Sequence[int]):
        self.order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        yield from self.order.tolist()
