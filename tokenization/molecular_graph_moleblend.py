"""Molecule -> graph relations: atom features, shortest paths, bonds along shortest paths, 3D coordinates.

Pure functions on RDKit molecules, used by ``MoleBlendFeaturizer``. Index conventions (shared with the model):

* every id that feeds an embedding table is 1-based, **0 means padding / none**;
* ``spd`` holds the real bond count of the shortest path (0 on the diagonal) and ``SPD_UNREACHABLE`` (-1)
  for pairs in different fragments (salts, mixtures); padded pairs hold -1 too and are marked by the mask.
"""

from __future__ import annotations

from itertools import repeat

import numpy as np

try:  # kept optional at import time so that a Hub export can be inspected without RDKit
    from rdkit import Chem
    from rdkit.Chem import rdqueries
except ImportError:  # pragma: no cover - RDKit is a hard requirement of the featurizer itself
    Chem = None

SPD_UNREACHABLE = -1
MAX_HOPS = 5
# path_bonds stores 1-based bond rows as int16 (its fixed dtype in a featurized cache): more bonds would wrap.
MAX_BONDS = int(np.iinfo(np.int16).max)
UNREACHABLE_DISTANCE = 1e7  # RDKit's GetDistanceMatrix writes 1e8 for unconnected pairs

# The 9 OGB-style atom features. Each vocabulary ends with an "other" bucket, so nothing can overflow.
ATOM_FEATURE_NAMES = (
    "atomic_number",  # 1..118 -> 0..117, other 118
    "chirality",  # unspecified, CW, CCW, other-tag, other
    "degree",  # total degree (incl. implicit H) 0..10, other
    "formal_charge",  # -5..5, other
    "num_hydrogens",  # total H count 0..8, other
    "radical_electrons",  # 0..4, other
    "hybridization",  # SP, SP2, SP3, SP3D, SP3D2, other
    "is_aromatic",  # 0, 1
    "is_in_ring",  # 0, 1
)
ATOM_FEATURE_SIZES = (119, 5, 12, 12, 10, 6, 6, 2, 2)
# atom_ids[:, f] = 1 + ATOM_FEATURE_OFFSETS[f] + value: one shared embedding table, row 0 = padding.
ATOM_FEATURE_OFFSETS = tuple(int(x) for x in np.cumsum((0,) + ATOM_FEATURE_SIZES[:-1]))
ATOM_VOCAB_SIZE = 1 + sum(ATOM_FEATURE_SIZES)
_ATOM_ID_SHIFT = np.asarray(ATOM_FEATURE_OFFSETS, dtype=np.int16) + 1

# The 3 OGB-style bond features: type, stereo, conjugated (each with an "other" bucket where it can overflow).
BOND_FEATURE_NAMES = ("bond_type", "bond_stereo", "is_conjugated")
BOND_FEATURE_SIZES = (5, 7, 2)
BOND_FEATURE_OFFSETS = tuple(int(x) for x in np.cumsum((0,) + BOND_FEATURE_SIZES[:-1]))
BOND_VOCAB_SIZE = 1 + sum(BOND_FEATURE_SIZES)
_BOND_ID_SHIFT = np.asarray(BOND_FEATURE_OFFSETS, dtype=np.int16) + 1

# Graph-neighbour count used by the separate degree embedding (0..MAX_DEGREE, larger values clipped).
MAX_DEGREE = 8

if Chem is not None:
    _CHIRALITY = {
        Chem.ChiralType.CHI_UNSPECIFIED: 0,
        Chem.ChiralType.CHI_TETRAHEDRAL_CW: 1,
        Chem.ChiralType.CHI_TETRAHEDRAL_CCW: 2,
        Chem.ChiralType.CHI_OTHER: 3,
    }
    _HYBRIDIZATION = {
        Chem.HybridizationType.SP: 0,
        Chem.HybridizationType.SP2: 1,
        Chem.HybridizationType.SP3: 2,
        Chem.HybridizationType.SP3D: 3,
        Chem.HybridizationType.SP3D2: 4,
    }
    _BOND_TYPE = {
        Chem.BondType.SINGLE: 0,
        Chem.BondType.DOUBLE: 1,
        Chem.BondType.TRIPLE: 2,
        Chem.BondType.AROMATIC: 3,
    }
    _BOND_STEREO = {
        Chem.BondStereo.STEREONONE: 0,
        Chem.BondStereo.STEREOZ: 1,
        Chem.BondStereo.STEREOE: 2,
        Chem.BondStereo.STEREOCIS: 3,
        Chem.BondStereo.STEREOTRANS: 4,
        Chem.BondStereo.STEREOANY: 5,
    }


def _one_atom_query(query_atom: Chem.QueryAtom) -> Chem.Mol:
    """A one-atom query molecule: ``mol.GetSubstructMatches`` of it lists the matching atoms in one C++ call."""
    query = Chem.RWMol()
    query.AddAtom(query_atom)
    return query.GetMol()


def _atom_queries() -> tuple[Chem.Mol, Chem.Mol]:
    """The two one-atom queries of ``atom_feature_values``.

    * exceptional atoms, read one by one: a charge, radicals, a chiral tag, a hybridization other than SP2/SP3,
      or aromatic but not SP2 (rare: stereocentres, ions, nitriles, ...);
    * non-aromatic SP2 atoms. Every other atom is SP2 if aromatic, else SP3.
    """
    sp2, sp3 = int(Chem.HybridizationType.SP2), int(Chem.HybridizationType.SP3)
    either, both = Chem.CompositeQueryType.COMPOSITE_OR, Chem.CompositeQueryType.COMPOSITE_AND
    exceptional = rdqueries.FormalChargeEqualsQueryAtom(0, negate=True)
    exceptional.ExpandQuery(rdqueries.NumRadicalElectronsEqualsQueryAtom(0, negate=True), either)
    exceptional.ExpandQuery(rdqueries.HasChiralTagQueryAtom(), either)
    other_hybridization = rdqueries.HybridizationEqualsQueryAtom(sp2, negate=True)
    other_hybridization.ExpandQuery(rdqueries.HybridizationEqualsQueryAtom(sp3, negate=True), both)
    exceptional.ExpandQuery(other_hybridization, either)
    aromatic_not_sp2 = rdqueries.IsAromaticQueryAtom()
    aromatic_not_sp2.ExpandQuery(rdqueries.HybridizationEqualsQueryAtom(sp2, negate=True), both)
    exceptional.ExpandQuery(aromatic_not_sp2, either)
    aliphatic_sp2 = rdqueries.HybridizationEqualsQueryAtom(sp2)
    aliphatic_sp2.ExpandQuery(rdqueries.IsAromaticQueryAtom(negate=True), both)
    return _one_atom_query(exceptional), _one_atom_query(aliphatic_sp2)


if Chem is not None:
    _ATOM, _BOND = Chem.Atom, Chem.Bond
    _EXCEPTIONAL_ATOMS, _ALIPHATIC_SP2_ATOMS = _atom_queries()


def _matching_atoms(mol, query) -> np.ndarray:
    """Indices ``[matches]`` of the atoms matching a one-atom query molecule."""
    matches = mol.GetSubstructMatches(query, uniquify=False, maxMatches=max(mol.GetNumAtoms(), 1))
    return np.array(matches, dtype=np.intp).reshape(-1)


def atom_feature_values(mol, begin: np.ndarray | None = None, end: np.ndarray | None = None) -> np.ndarray:
    """The 9 raw (0-based) atom feature indices, ``[atoms, 9]`` int16. Dummy atoms (``*``, query atoms,
    atomic number 0) land in the atomic-number "other" bucket (118); the featurizer rejects them.

    ``begin`` / ``end`` ``[bonds]`` are the bond atoms (from ``bond_feature_values``; read here when None). This
    is the featurizer's hot path, and each RDKit call from Python costs more than the C++ work behind it, so
    RDKit is asked per atom only for the atomic number, the H count and aromaticity (one ``map`` each). Ring
    membership comes from ``RingInfo``; the total degree and the H count including H neighbours from the bond
    list (RDKit: ``GetTotalDegree() = GetDegree() + GetTotalNumHs()``); the hybridization from one substructure
    query for non-aromatic SP2 atoms; charge, radicals, chiral tag and unusual hybridizations from one query for
    the few exceptional atoms, which alone are read one by one. Equal to the plain per-atom loop, value for value.
    """
    n = mol.GetNumAtoms()
    values = np.zeros((n, len(ATOM_FEATURE_SIZES)), dtype=np.int16)
    if n == 0:
        return values
    if begin is None or end is None:
        begin, end, _ = bond_feature_values(mol)
    atoms = list(map(mol.GetAtomWithIdx, range(n)))
    z = np.fromiter(map(_ATOM.GetAtomicNum, atoms), dtype=np.int64, count=n)
    own_hydrogens = np.fromiter(map(_ATOM.GetTotalNumHs, atoms), dtype=np.int64, count=n)  # without H neighbours
    aromatic = np.fromiter(map(_ATOM.GetIsAromatic, atoms), dtype=np.bool_, count=n)
    atoms[0].IsInRing()  # RDKit's IsInRing initialises missing ring info; RingInfo itself would raise
    ring_count = np.fromiter(map(mol.GetRingInfo().NumAtomRings, range(n)), dtype=np.int64, count=n)
    ends = np.concatenate([begin, end])
    degree = np.bincount(ends, minlength=n) + own_hydrogens
    hydrogens = own_hydrogens + np.bincount(ends[z[np.concatenate([end, begin])] == 1], minlength=n)
    values[:, 0] = (z - 1) % 119  # atomic number 1..118 -> 0..117, 0 (dummy) -> 118
    values[:, 2] = np.minimum(degree, 11)
    values[:, 3] = 5  # formal charge 0
    values[:, 4] = np.minimum(hydrogens, 9)
    values[:, 6] = np.where(aromatic, 1, 2)  # SP2 / SP3
    values[_matching_atoms(mol, _ALIPHATIC_SP2_ATOMS), 6] = 1
    values[:, 7] = aromatic
    values[:, 8] = ring_count > 0
    for index in _matching_atoms(mol, _EXCEPTIONAL_ATOMS).tolist():
        atom = atoms[index]
        charge = atom.GetFormalCharge() + 5
        radicals = atom.GetNumRadicalElectrons()
        values[index, 1] = _CHIRALITY.get(atom.GetChiralTag(), 4)
        values[index, 3] = charge if 0 <= charge <= 10 else 11
        values[index, 5] = radicals if radicals <= 4 else 5
        values[index, 6] = _HYBRIDIZATION.get(atom.GetHybridization(), 5)
    return values


def bond_feature_values(mol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Begin atoms ``[bonds]``, end atoms ``[bonds]`` (int64) and raw bond features ``[bonds, 3]`` (int16).

    One ``map`` per RDKit getter over the bonds; the stereo enum is read for double bonds only.
    """
    bonds = list(map(mol.GetBondWithIdx, range(mol.GetNumBonds())))
    num_bonds = len(bonds)
    begin = np.fromiter(map(_BOND.GetBeginAtomIdx, bonds), dtype=np.int64, count=num_bonds)
    end = np.fromiter(map(_BOND.GetEndAtomIdx, bonds), dtype=np.int64, count=num_bonds)
    features = np.zeros((num_bonds, len(BOND_FEATURE_SIZES)), dtype=np.int16)
    if num_bonds == 0:
        return begin, end, features
    bond_type = np.fromiter(map(_BOND_TYPE.get, map(_BOND.GetBondType, bonds), repeat(4)), np.int16, num_bonds)
    features[:, 0] = bond_type
    for index in np.flatnonzero(bond_type == 1).tolist():  # only double bonds carry E/Z stereo
        features[index, 1] = _BOND_STEREO.get(bonds[index].GetStereo(), 6)
    features[:, 2] = np.fromiter(map(_BOND.GetIsConjugated, bonds), dtype=np.bool_, count=num_bonds)
    return begin, end, features


def shortest_path_matrix(mol) -> np.ndarray:
    """All-pairs bond counts ``[atoms, atoms]`` int16 (RDKit C++); ``SPD_UNREACHABLE`` across fragments."""
    distances = Chem.GetDistanceMatrix(mol)
    spd = distances.astype(np.int16)
    if distances.max() >= UNREACHABLE_DISTANCE:  # only multi-fragment inputs pay for the mask
        spd[distances >= UNREACHABLE_DISTANCE] = SPD_UNREACHABLE
    return spd


def shortest_path_bonds(
    spd: np.ndarray,
    begin: np.ndarray,
    end: np.ndarray,
    max_hops: int = MAX_HOPS,
    atom_rank: np.ndarray | None = None,
) -> np.ndarray:
    """The first ``max_hops`` bonds along one shortest path i -> j, ``[atoms, atoms, max_hops]`` int16.

    Values are 1-based bond indices (row ``k - 1`` of the bond list), 0 where the path has ended or does not
    exist; int16 indexes at most ``MAX_BONDS`` bonds (more is a ``ValueError``). Among equally short paths, each
    step goes to the neighbour with the lowest ``atom_rank`` (default: the atom index; equal ranks: the lower
    directed edge, bonds in order then reversed). With RDKit's canonical ranks the chosen paths, and so the bond
    features along them, do not depend on the input's atom order. This is the compact form of Graphormer's
    ``[N, N, max_dist, F]`` int64 tensor: 10 bytes per pair instead of 480.

    ``spd`` ``[atoms, atoms]`` must be symmetric (an undirected graph), ``begin`` / ``end`` ``[bonds]`` are the
    bond atoms, ``atom_rank`` ``[atoms]``. Vectorised: each atom's neighbours in rank order ``[atoms, max_degree +
    1]`` (the last slot = "stay"), one ``[j, u, slot]`` test of ``spd[j, neighbour] == spd[j, u] - 1`` and an argmax
    give the next atom and bond from every u towards every j, then ``min(max_hops, diameter)`` gathers walk them.
    (``scipy.sparse.csgraph`` predecessors break ties by search order, not by rank, and its call overhead alone
    exceeds RDKit's distance matrix on drug-sized molecules, so neither is used here.)
    """
    n = spd.shape[0]
    num_bonds = len(begin)
    if num_bonds > MAX_BONDS:
        raise ValueError(f"{num_bonds} bonds > {MAX_BONDS}: int16 path_bonds cannot index them")
    path = np.zeros((n, n, max_hops), dtype=np.int16)
    hops = min(max_hops, int(spd.max())) if n else 0
    if num_bonds == 0 or hops <= 0:
        return path
    # Directed edges u -> v sorted by (u, rank of v): slot k of row u is u's k-th preferred first step.
    source = np.concatenate([begin, end])
    target = np.concatenate([end, begin])
    bond_id = np.concatenate([np.arange(1, num_bonds + 1, dtype=np.int16)] * 2)
    order = np.lexsort((target if atom_rank is None else np.asarray(atom_rank)[target], source))
    source, target, bond_id = source[order], target[order], bond_id[order]
    counts = np.bincount(source, minlength=n)
    slot = np.arange(len(source)) - (np.cumsum(counts) - counts)[source]  # position among the edges of u
    width = int(counts.max())
    rows = np.arange(n)
    # Slots past an atom's degree hold the atom itself (spd[u, j] == spd[u, j] - 1 never holds), and the last slot
    # is "no step": stay on u with bond 0, forced true so that argmax finds the first real step or that one.
    neighbour = np.empty((n, width + 1), dtype=np.int64)
    neighbour[:] = rows[:, None]
    neighbour[source, slot] = target
    neighbour_bond = np.zeros((n, width + 1), dtype=np.int16)
    neighbour_bond[source, slot] = bond_id
    # is_step[j, u, k]: spd[j, neighbour[u, k]] == spd[j, u] - 1 (spd is symmetric), slots last for the argmax
    is_step = np.take(spd, neighbour, axis=1) == (spd - 1)[:, :, None]  # unreachable pairs never match
    is_step[:, :, width] = True
    chosen = (rows * (width + 1))[:, None] + is_step.argmax(axis=-1).T  # [u, j] -> flat (u, first step slot)
    next_pair = (neighbour.ravel().take(chosen) * n + rows).ravel()  # flat (u, j) -> flat (next atom, j)
    next_bond = neighbour_bond.ravel().take(chosen).ravel()
    visited = np.empty((n * n, hops), dtype=np.int64)  # [flat (i, j), hop] -> flat (atom left at that hop, j)
    visited[:, 0] = np.arange(n * n)  # starting at u = i
    for hop in range(1, hops):
        visited[:, hop] = next_pair.take(visited[:, hop - 1])
    path[:, :, :hops] = next_bond.take(visited).reshape(n, n, hops)
    return path


def canonical_ranks(mol) -> np.ndarray:
    """RDKit's canonical atom ranks (ties broken), used to choose among equally short paths."""
    return np.asarray(Chem.CanonicalRankAtoms(mol, breakTies=True), dtype=np.int64)


def graph_degree(num_atoms: int, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Graph neighbours per atom ``[atoms]`` int16, clipped to ``MAX_DEGREE``."""
    degree = np.bincount(np.concatenate([begin, end]), minlength=num_atoms)
    return np.minimum(degree, MAX_DEGREE).astype(np.int16)


def conformer_coordinates(mol) -> np.ndarray | None:
    """The first conformer's coordinates ``[atoms, 3]`` float32, or None when the molecule has no real 3D.

    A conformer whose z coordinates are all zero (a 2D depiction, e.g. a 2D SDF) is not 3D.
    """
    if mol.GetNumConformers() == 0:
        return None
    positions = mol.GetConformer().GetPositions()
    if positions.shape[0] == 0 or not np.any(np.abs(positions[:, 2]) > 1e-4):
        return None
    return positions.astype(np.float32)


def molecule_relations(mol, max_hops: int = MAX_HOPS) -> dict[str, np.ndarray]:
    """The graph relations of one (already cleaned) molecule, unpadded, as compact numpy arrays.

    Returns ``atom_ids`` [N, 9] int16 (offset ids, 0 = pad), ``degree`` [N] int16, ``spd`` [N, N] int16,
    ``bond_features`` [E, 3] int16 (offset ids, 0 = pad), ``path_bonds`` [N, N, max_hops] int16.
    """
    begin, end, bond_ids = bond_feature_values(mol)
    atom_ids = atom_feature_values(mol, begin, end)
    atom_ids += _ATOM_ID_SHIFT  # raw values -> offset ids, in place (both int16)
    bond_ids += _BOND_ID_SHIFT
    spd = shortest_path_matrix(mol)
    return {
        "atom_ids": atom_ids,
        "degree": graph_degree(mol.GetNumAtoms(), begin, end),
        "spd": spd,
        "bond_features": bond_ids,
        "path_bonds": shortest_path_bonds(spd, begin, end, max_hops, canonical_ranks(mol)),
    }
