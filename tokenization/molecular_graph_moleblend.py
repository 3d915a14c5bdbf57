"""Molecule -> graph relations: atom features, shortest paths, bonds along shortest paths, 3D coordinates.

Pure functions on RDKit molecules, used by ``MoleBlendFeaturizer``. Index conventions (shared with the model):

* every id that feeds an embedding table is 1-based, **0 means padding / none**;
* ``spd`` holds the real bond count of the shortest path (0 on the diagonal) and ``SPD_UNREACHABLE`` (-1)
  for pairs in different fragments (salts, mixtures); padded pairs hold -1 too and are marked by the mask.
"""

from __future__ import annotations

import numpy as np

try:  # kept optional at import time so that a Hub export can be inspected without RDKit
    from rdkit import Chem
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

# The 3 OGB-style bond features: type, stereo, conjugated (each with an "other" bucket where it can overflow).
BOND_FEATURE_NAMES = ("bond_type", "bond_stereo", "is_conjugated")
BOND_FEATURE_SIZES = (5, 7, 2)
BOND_FEATURE_OFFSETS = tuple(int(x) for x in np.cumsum((0,) + BOND_FEATURE_SIZES[:-1]))
BOND_VOCAB_SIZE = 1 + sum(BOND_FEATURE_SIZES)

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


def atom_feature_values(mol) -> np.ndarray:
    """The 9 raw (0-based) atom feature indices, ``[atoms, 9]`` int16. Dummy atoms (``*``, query atoms,
    atomic number 0) land in the atomic-number "other" bucket (118); the featurizer rejects them.

    This loop is the featurizer's hot path: buckets are inlined and atoms fetched by index (about 2x faster
    than iterating ``mol.GetAtoms()``).
    """
    rows = []
    atom_at = mol.GetAtomWithIdx
    for index in range(mol.GetNumAtoms()):
        atom = atom_at(index)
        z = atom.GetAtomicNum()
        degree = atom.GetTotalDegree()
        charge = atom.GetFormalCharge() + 5
        hydrogens = atom.GetTotalNumHs(includeNeighbors=True)
        radicals = atom.GetNumRadicalElectrons()
        rows.append(
            (
                z - 1 if 1 <= z <= 118 else 118,
                _CHIRALITY.get(atom.GetChiralTag(), 4),
                degree if degree <= 10 else 11,
                charge if 0 <= charge <= 10 else 11,
                hydrogens if hydrogens <= 8 else 9,
                radicals if radicals <= 4 else 5,
                _HYBRIDIZATION.get(atom.GetHybridization(), 5),
                atom.GetIsAromatic(),
                atom.IsInRing(),
            )
        )
    return np.array(rows, dtype=np.int16).reshape(-1, len(ATOM_FEATURE_SIZES))


def bond_feature_values(mol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Begin atoms ``[bonds]``, end atoms ``[bonds]`` and raw bond features ``[bonds, 3]`` (int16)."""
    begin, end, rows = [], [], []
    bond_at = mol.GetBondWithIdx
    for index in range(mol.GetNumBonds()):
        bond = bond_at(index)
        begin.append(bond.GetBeginAtomIdx())
        end.append(bond.GetEndAtomIdx())
        bond_type = _BOND_TYPE.get(bond.GetBondType(), 4)
        # only double bonds carry E/Z stereo; skipping the enum call on the others saves a third of the loop
        stereo = _BOND_STEREO.get(bond.GetStereo(), 6) if bond_type == 1 else 0
        rows.append((bond_type, stereo, bond.GetIsConjugated()))
    features = np.array(rows, dtype=np.int16).reshape(-1, len(BOND_FEATURE_SIZES))
    return np.array(begin, dtype=np.int64), np.array(end, dtype=np.int64), features


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
    step goes to the neighbour with the lowest ``atom_rank`` (default: the atom index). With RDKit's canonical
    ranks the chosen paths, and so the bond features along them, do not depend on the input's atom order. This
    is the compact form of Graphormer's ``[N, N, max_dist, F]`` int64 tensor: 10 bytes per pair instead of 480.
    """
    n = spd.shape[0]
    num_bonds = len(begin)
    if num_bonds > MAX_BONDS:
        raise ValueError(f"{num_bonds} bonds > {MAX_BONDS}: int16 path_bonds cannot index them")
    path = np.zeros((n, n, max_hops), dtype=np.int16)
    if num_bonds == 0 or max_hops == 0:
        return path
    # Directed edges u -> v sorted by (u, v); edge e is a first step towards j when spd[v, j] == spd[u, j] - 1.
    source = np.concatenate([begin, end])
    target = np.concatenate([end, begin])
    bond_id = np.concatenate([np.arange(1, num_bonds + 1)] * 2)
    order = np.lexsort((target if atom_rank is None else atom_rank[target], source))
    source, target, bond_id = source[order], target[order], bond_id[order]
    num_edges = len(source)
    is_step = spd[target] == (spd[source] - 1)  # [edges, atoms]; unreachable pairs never match
    candidate = np.where(is_step, np.arange(num_edges)[:, None], num_edges)
    group_starts = np.flatnonzero(np.concatenate(([True], source[1:] != source[:-1])))
    next_edge = np.full((n, n), num_edges, dtype=np.int64)  # num_edges = "no step" sentinel
    next_edge[source[group_starts]] = np.minimum.reduceat(candidate, group_starts, axis=0)
    bond_of_edge = np.append(bond_id, 0).astype(np.int16)
    target_of_edge = np.append(target, 0)
    current = np.repeat(np.arange(n)[:, None], n, axis=1)
    columns = np.arange(n)[None, :]
    for hop in range(max_hops):
        edge = next_edge[current, columns]
        stepped = edge != num_edges
        if not stepped.any():
            break
        path[:, :, hop] = bond_of_edge[edge]
        current = np.where(stepped, target_of_edge[edge], current)
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
    atom_values = atom_feature_values(mol)
    begin, end, bond_values = bond_feature_values(mol)
    spd = shortest_path_matrix(mol)
    return {
        "atom_ids": (atom_values + np.asarray(ATOM_FEATURE_OFFSETS, dtype=np.int16) + 1).astype(np.int16),
        "degree": graph_degree(mol.GetNumAtoms(), begin, end),
        "spd": spd,
        "bond_features": (bond_values + np.asarray(BOND_FEATURE_OFFSETS, dtype=np.int16) + 1).astype(np.int16),
        "path_bonds": shortest_path_bonds(spd, begin, end, max_hops, canonical_ranks(mol)),
    }
