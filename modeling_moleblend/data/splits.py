"""Dataset splits for finetuning under the MoleculeNet protocol.

The default is the deterministic Bemis-Murcko scaffold split (deepchem / MoleculeNet convention, 8:1:1): molecules
that share a scaffold always land in the same split, so the test set holds chemotypes the model never saw.

    from modeling_moleblend.data.splits import make_split
    split = make_split("scaffold", smiles)          # {"train": [...], "validation": [...], "test": [...]}

Every function returns sorted lists of row indices into the input, one list per name in ``SPLIT_NAMES``; together
they cover every index exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem.Scaffolds import MurckoScaffold

SPLIT_NAMES = ("train", "validation", "test")

# Cut-offs such as (0.7 + 0.2) * 10 = 8.999999999999998 must compare as 9: sizes are integers, so a tolerance far
# below 1 only absorbs floating-point error.
_CUTOFF_TOLERANCE = 1e-6

_COLUMN_ALIASES = {
    "train": "train",
    "training": "train",
    "valid": "validation",
    "validation": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}


def murcko_scaffold(smiles: str, include_chirality: bool = False) -> str:
    """Bemis-Murcko scaffold of one molecule, as canonical SMILES.

    Rings plus the linkers between them are kept; side chains are removed (atoms double-bonded to a ring, such as a
    ring ketone's oxygen, stay, as in RDKit). Acyclic molecules have no scaffold and return ``""``, so they all
    share one group in ``scaffold_split``.

    Raises:
        ValueError: ``smiles`` is not a string, is empty, or RDKit cannot parse it.
    """
    if not isinstance(smiles, str) or not smiles.strip():
        raise ValueError(f"Invalid SMILES {smiles!r}: expected a non-empty string")
    with rdBase.BlockLogs():  # keep RDKit's parse errors off stderr; we raise our own
        mol = Chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        raise ValueError(f"Invalid SMILES {smiles!r}: RDKit could not parse it")
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=include_chirality)


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3:
        raise ValueError(f"fractions must have 3 entries (train, validation, test), got {fractions!r}")
    if any(not math.isfinite(f) or f < 0 for f in values):
        raise ValueError(f"fractions must be finite and non-negative, got {fractions!r}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {sum(values)})")
    return values  # type: ignore[return-value]


SCAFFOLD_TIE_ORDERS = ("deepchem", "ascending")


def scaffold_groups(smiles: Sequence[str], include_chirality: bool = False, ties: str = "deepchem") -> list[list[int]]:
    """Indices grouped by Murcko scaffold, in scaffold-split order.

    Order: largest group first. Groups of equal size: ``ties="deepchem"`` (default, the MoleculeNet convention of
    deepchem's ScaffoldSplitter, which sorts by (size, first index) descending) puts the group with the larger
    first index first; ``ties="ascending"`` the smaller first index first. The choice decides which singleton
    scaffolds land in test: on the BBBP copy used here "ascending" leaves only positives in validation and test.

    Raises:
        ValueError: a SMILES is invalid (the message names its index).
    """
    groups: dict[str, list[int]] = {}
    for index, smi in enumerate(smiles):
        try:
            scaffold = murcko_scaffold(smi, include_chirality=include_chirality)
        except ValueError as error:
            raise ValueError(f"Row {index}: {error}") from None
        groups.setdefault(scaffold, []).append(index)
    if ties not in SCAFFOLD_TIE_ORDERS:
        raise ValueError(f"ties must be one of {SCAFFOLD_TIE_ORDERS}, got {ties!r}")
    if ties == "deepchem":
        return sorted(groups.values(), key=lambda group: (len(group), group[0]), reverse=True)
    return sorted(groups.values(), key=lambda group: (-len(group), group[0]))


def scaffold_split(
    smiles: Sequence[str], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), ties: str = "deepchem"
) -> dict[str, list[int]]:
    """Deterministic Bemis-Murcko scaffold split (deepchem / MoleculeNet convention).

    Scaffold groups (see ``scaffold_groups``: largest first, ties by first index) are assigned whole, one at a time:
    to train if train would stay <= ``fractions[0] * n``; otherwise to validation if train + validation would stay
    <= ``(fractions[0] + fractions[1]) * n``; otherwise to test. Each group is checked on its own, so a small group
    that still fits may go to train after a larger one went to validation (as in deepchem's ``ScaffoldSplitter``).
    No randomness: the same SMILES give the same split.

    Args:
        smiles: n SMILES strings.
        fractions: (train, validation, test), non-negative, summing to 1.
        ties: order of equal-size scaffold groups, see ``scaffold_groups``.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``: sorted indices, disjoint, covering ``range(n)``.

    Raises:
        ValueError: invalid fractions, or an invalid SMILES (named with its index).
    """
    frac_train, frac_valid, _ = _check_fractions(fractions)
    n = len(smiles)
    train_cutoff = frac_train * n + _CUTOFF_TOLERANCE
    valid_cutoff = (frac_train + frac_valid) * n + _CUTOFF_TOLERANCE
    split: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    for group in scaffold_groups(smiles, ties=ties):
        if len(split["train"]) + len(group) <= train_cutoff:
            split["train"].extend(group)
        elif len(split["train"]) + len(split["validation"]) + len(group) <= valid_cutoff:
            split["validation"].extend(group)
        else:
            split["test"].extend(group)
    return {name: sorted(indices) for name, indices in split.items()}


def random_split(
    num: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[int]]:
    """Seeded random split of ``range(num)``.

    A ``numpy.random.default_rng(seed)`` permutation; the first ``floor(fractions[0] * num)`` go to train, the next
    ``floor((fractions[0] + fractions[1]) * num) - n_train`` to validation, the rest to test.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``: sorted indices, disjoint, covering ``range(num)``.
    """
    frac_train, frac_valid, _ = _check_fractions(fractions)
    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    permutation = np.random.default_rng(seed).permutation(num)
    train_end = int(math.floor(frac_train * num + _CUTOFF_TOLERANCE))
    valid_end = int(math.floor((frac_train + frac_valid) * num + _CUTOFF_TOLERANCE))
    parts = (permutation[:train_end], permutation[train_end:valid_end], permutation[valid_end:])
    return {name: sorted(int(i) for i in part) for name, part in zip(SPLIT_NAMES, parts)}


def column_split(values: Sequence[str], allow_no_validation: bool = False) -> dict[str, list[int]]:
    """Split from a user-given column, one value per row.

    Accepted values (case-insensitive, surrounding spaces ignored): ``train``/``training``;
    ``valid``/``validation``/``val``/``dev``; ``test``. Test may be empty; train may not; validation may be empty
    only with ``allow_no_validation`` (then carve it out of train: ``carve_validation``).

    Raises:
        ValueError: an unknown value (the message names the row index and the value), or an empty train or
        validation split.
    """
    split: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    for index, value in enumerate(values):
        name = _COLUMN_ALIASES.get(value.strip().lower()) if isinstance(value, str) else None
        if name is None:
            raise ValueError(
                f"Row {index}: unknown split value {value!r}; expected one of 'train', 'valid'/'validation'/'val'/"
                "'dev', 'test' (case-insensitive)"
            )
        split[name].append(index)
    for name in ("train",) if allow_no_validation else ("train", "validation"):
        if not split[name]:
            raise ValueError(f"The split column assigns no rows to {name!r}; train and validation must be non-empty")
    return split


def carve_validation(
    split: dict[str, list[int]],
    smiles: Sequence[str],
    fraction: float,
    kind: str = "scaffold",
    seed: int = 0,
    scaffold_ties: str = "deepchem",
) -> dict[str, list[int]]:
    """Move ``fraction`` of the train rows to validation: whole scaffold sets (deterministic, the way the scaffold
    split fills its validation set) or a seeded random share. Test is untouched."""
    train = list(split["train"])
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be in (0, 1), got {fraction}")
    if kind == "scaffold":
        inner = scaffold_split([smiles[i] for i in train], (1 - fraction, fraction, 0.0), ties=scaffold_ties)
        keep, carved = inner["train"], inner["validation"] + inner["test"]
    elif kind == "random":
        order = np.random.default_rng(seed).permutation(len(train))
        size = max(1, round(fraction * len(train)))
        carved, keep = order[:size].tolist(), order[size:].tolist()
    else:
        raise ValueError(f"unknown carve kind {kind!r}; expected 'scaffold' or 'random'")
    return {
        "train": sorted(train[i] for i in keep),
        "validation": sorted(train[i] for i in carved),
        "test": list(split["test"]),
    }


def make_split(
    kind: str,
    smiles: Sequence[str],
    seed: int = 0,
    column_values: Sequence[str] | None = None,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    scaffold_ties: str = "deepchem",
) -> dict[str, list[int]]:
    """Split ``smiles`` by ``kind``: ``"scaffold"`` (default protocol), ``"random"`` or ``"column"``.

    ``seed`` is used by ``"random"`` only (the scaffold split is deterministic); ``column_values`` (one per SMILES)
    by ``"column"`` only; ``fractions`` are validated for every kind and used by ``"scaffold"`` and ``"random"``.

    Raises:
        ValueError: unknown kind, invalid fractions, or missing / mismatched ``column_values``.
    """
    fractions = _check_fractions(fractions)
    if kind == "scaffold":
        return scaffold_split(smiles, fractions, ties=scaffold_ties)
    if kind == "random":
        return random_split(len(smiles), fractions, seed=seed)
    if kind == "column":
        if column_values is None:
            raise ValueError('make_split("column", ...) needs column_values (one split name per SMILES)')
        if len(column_values) != len(smiles):
            raise ValueError(f"column_values has {len(column_values)} entries but there are {len(smiles)} SMILES")
        return column_split(column_values)
    raise ValueError(f"Unknown split kind {kind!r}; expected 'scaffold', 'random' or 'column'")
