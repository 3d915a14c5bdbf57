"""MoleBlendFeaturizer: exact relations on small known molecules, SDF input, hydrogens, conformers, errors."""

from __future__ import annotations

import gzip
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from modeling_moleblend import (
    ConformerError,
    ConformerTimeoutError,
    EmptyMoleculeError,
    InvalidLabelError,
    InvalidMoleculeError,
    MoleBlendFeaturizer,
    MoleculeError,
    MoleculeTooLargeError,
    UnsupportedAtomError,
)
from modeling_moleblend.tokenization import (
    STORAGE_DTYPES,
    MissingLabelTagError,
    SdfRecord,
    check_label_tags,
    conformers_moleblend,
    feature_extraction_moleblend,
    parse_label,
    read_sdf_records,
)
from modeling_moleblend.tokenization.collating_moleblend import labels_to_float
from modeling_moleblend.tokenization.molecular_graph_moleblend import (
    ATOM_FEATURE_OFFSETS,
    BOND_FEATURE_OFFSETS,
    MAX_BONDS,
    SPD_UNREACHABLE,
    atom_feature_values,
    bond_feature_values,
    canonical_ranks,
    graph_degree,
    molecule_relations,
    shortest_path_bonds,
    shortest_path_matrix,
)

ATOM_OFFSETS = np.asarray(ATOM_FEATURE_OFFSETS)
BOND_OFFSETS = np.asarray(BOND_FEATURE_OFFSETS)


def featurize_one(smiles_or_mol, **settings) -> dict:
    settings.setdefault("conformer", "none")
    result = MoleBlendFeaturizer(**settings).featurize([smiles_or_mol])
    assert result.report.skipped == []
    return result.features[0]


def raw_atoms(features: dict) -> np.ndarray:
    """Back from offset ids to the 9 raw feature values."""
    return features["atom_ids"] - ATOM_OFFSETS - 1


def raw_bonds(features: dict) -> np.ndarray:
    return features["bond_features"] - BOND_OFFSETS - 1


# ---------------------------------------------------------------- exact values on known molecules


def test_ethanol_exact():
    f = featurize_one("CCO")
    # atomic number-1, chirality, total degree, charge (index of -5..5), H count, radicals, hybridization, arom, ring
    np.testing.assert_array_equal(
        raw_atoms(f),
        [
            [5, 0, 4, 5, 3, 0, 2, 0, 0],  # CH3: sp3, 3 H, degree 4
            [5, 0, 4, 5, 2, 0, 2, 0, 0],  # CH2
            [7, 0, 2, 5, 1, 0, 2, 0, 0],  # OH
        ],
    )
    assert f["atom_ids"][0].tolist() == [6, 120, 129, 142, 152, 159, 167, 171, 173]  # the shared-table ids
    np.testing.assert_array_equal(f["degree"], [1, 2, 1])
    np.testing.assert_array_equal(f["spd"], [[0, 1, 2], [1, 0, 1], [2, 1, 0]])
    np.testing.assert_array_equal(raw_bonds(f), [[0, 0, 0], [0, 0, 0]])  # single, no stereo, not conjugated
    # bonds: #1 = C0-C1, #2 = C1-O2. The path 0 -> 2 is bond 1 then bond 2; 2 -> 0 the reverse.
    np.testing.assert_array_equal(f["path_bonds"][0, 2], [1, 2, 0, 0, 0])
    np.testing.assert_array_equal(f["path_bonds"][2, 0], [2, 1, 0, 0, 0])
    np.testing.assert_array_equal(f["path_bonds"][1, 1], [0, 0, 0, 0, 0])
    assert f["num_atoms"] == 3 and not f["has_3d"]
    assert f["spd"].dtype == np.int16 and f["path_bonds"].dtype == np.int16


def test_benzene_exact():
    f = featurize_one("c1ccccc1")
    ring = np.array([[min(abs(i - j), 6 - abs(i - j)) for j in range(6)] for i in range(6)])
    np.testing.assert_array_equal(f["spd"], ring)
    np.testing.assert_array_equal(f["degree"], [2] * 6)
    assert (raw_atoms(f)[:, 6] == 1).all()  # SP2
    assert (raw_atoms(f)[:, 7] == 1).all() and (raw_atoms(f)[:, 8] == 1).all()  # aromatic, in ring
    np.testing.assert_array_equal(raw_bonds(f), [[3, 0, 1]] * 6)  # aromatic, no stereo, conjugated
    # 0 -> 3 has two shortest paths (either way round the ring); 0 -> 4 has one, via atom 5
    assert f["path_bonds"][0, 3].tolist() in ([1, 2, 3, 0, 0], [6, 5, 4, 0, 0])
    np.testing.assert_array_equal(f["path_bonds"][0, 4], [6, 5, 0, 0, 0])  # bonds 5-0 (#6), 4-5 (#5)


def bond_features_along_paths(f: dict) -> np.ndarray:
    """[atoms, atoms, hops, 3] raw bond features of the chosen paths (0 rows where there is no hop)."""
    padded = np.concatenate([np.zeros((1, 3), np.int16), f["bond_features"]])
    return padded[f["path_bonds"]]


@pytest.mark.parametrize("smiles", ["C1=CCCCC1", "O=C1CCC(N)CC1C=C", "CC(=O)Nc1ccc(O)cc1"])
def test_relations_do_not_depend_on_atom_order(smiles):
    """Tied shortest paths with different bonds (cyclohexene 0 -> 3) are chosen by canonical rank, so every
    relation of a renumbered molecule is the renumbered relation of the original."""
    mol = Chem.MolFromSmiles(smiles)
    order = list(np.random.default_rng(0).permutation(mol.GetNumAtoms()))
    a, b = featurize_one(mol), featurize_one(Chem.RenumberAtoms(mol, [int(i) for i in order]))
    np.testing.assert_array_equal(b["atom_ids"], a["atom_ids"][order])
    np.testing.assert_array_equal(b["spd"], a["spd"][np.ix_(order, order)])
    np.testing.assert_array_equal(bond_features_along_paths(b), bond_features_along_paths(a)[np.ix_(order, order)])


def test_salt_two_fragments_unreachable():
    f = featurize_one("[Na+].[Cl-]")
    np.testing.assert_array_equal(f["spd"], [[0, SPD_UNREACHABLE], [SPD_UNREACHABLE, 0]])
    assert f["path_bonds"].shape == (2, 2, 5) and not f["path_bonds"].any()
    assert f["bond_features"].shape == (0, 3)
    np.testing.assert_array_equal(raw_atoms(f)[:, 0], [10, 16])  # Na, Cl
    np.testing.assert_array_equal(raw_atoms(f)[:, 3], [6, 4])  # charge +1, -1
    np.testing.assert_array_equal(f["degree"], [0, 0])


def test_stereo_double_bond():
    trans, cis = featurize_one("F/C=C/F"), featurize_one("F/C=C\\F")
    assert raw_bonds(trans)[1, :2].tolist() == [1, 2]  # double, STEREOE
    assert raw_bonds(cis)[1, :2].tolist() == [1, 1]  # double, STEREOZ
    np.testing.assert_array_equal(trans["spd"], cis["spd"])


def test_chirality_and_other_buckets():
    f = featurize_one("C[C@H](N)O.[U+7]")
    assert raw_atoms(f)[1, 1] in (1, 2)  # tetrahedral CW / CCW
    assert raw_atoms(f)[4, 0] == 91  # uranium: atomic number 92
    assert raw_atoms(f)[4, 3] == 11  # charge +7 falls in the "other" bucket


def test_hops_capped_at_five():
    f = featurize_one("CCCCCCCC")
    assert f["spd"][0, 7] == 7
    np.testing.assert_array_equal(f["path_bonds"][0, 7], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(f["path_bonds"][7, 0], [7, 6, 5, 4, 3])


def test_path_bonds_walk_shortest_paths_on_real_molecules(esol_smiles):
    for smiles in esol_smiles[:40]:
        mol = Chem.MolFromSmiles(smiles)
        f = featurize_one(mol)
        bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
        n = mol.GetNumAtoms()
        for i in range(n):
            for j in range(n):
                hops = f["path_bonds"][i, j]
                distance = f["spd"][i, j]
                assert (hops != 0).sum() == (min(distance, 5) if distance > 0 else 0)
                at = i
                for bond in hops[hops != 0]:
                    a, b = bonds[bond - 1]
                    assert at in (a, b), (smiles, i, j)
                    at = b if at == a else a
                if 0 < distance <= 5:
                    assert at == j


# ---------------------------------------------------------------- vectorised relations == the reference loops

# The per-atom / per-bond loops that molecule_relations used before it was vectorised, kept verbatim (up to names) as
# the reference: the vectorised functions must give identical arrays (dtype, shape, values, tie-breaking).
_REFERENCE_CHIRALITY = {
    Chem.ChiralType.CHI_UNSPECIFIED: 0,
    Chem.ChiralType.CHI_TETRAHEDRAL_CW: 1,
    Chem.ChiralType.CHI_TETRAHEDRAL_CCW: 2,
    Chem.ChiralType.CHI_OTHER: 3,
}
_REFERENCE_HYBRIDIZATION = {
    Chem.HybridizationType.SP: 0,
    Chem.HybridizationType.SP2: 1,
    Chem.HybridizationType.SP3: 2,
    Chem.HybridizationType.SP3D: 3,
    Chem.HybridizationType.SP3D2: 4,
}
_REFERENCE_BOND_TYPE = {
    Chem.BondType.SINGLE: 0,
    Chem.BondType.DOUBLE: 1,
    Chem.BondType.TRIPLE: 2,
    Chem.BondType.AROMATIC: 3,
}
_REFERENCE_BOND_STEREO = {
    Chem.BondStereo.STEREONONE: 0,
    Chem.BondStereo.STEREOZ: 1,
    Chem.BondStereo.STEREOE: 2,
    Chem.BondStereo.STEREOCIS: 3,
    Chem.BondStereo.STEREOTRANS: 4,
    Chem.BondStereo.STEREOANY: 5,
}


def _reference_atom_feature_values(mol) -> np.ndarray:
    """[atoms, 9] int16 raw atom features, one Python loop over the atoms (the pre-vectorisation code)."""
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
                _REFERENCE_CHIRALITY.get(atom.GetChiralTag(), 4),
                degree if degree <= 10 else 11,
                charge if 0 <= charge <= 10 else 11,
                hydrogens if hydrogens <= 8 else 9,
                radicals if radicals <= 4 else 5,
                _REFERENCE_HYBRIDIZATION.get(atom.GetHybridization(), 5),
                atom.GetIsAromatic(),
                atom.IsInRing(),
            )
        )
    return np.array(rows, dtype=np.int16).reshape(-1, len(ATOM_FEATURE_OFFSETS))


def _reference_bond_feature_values(mol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Begin [bonds], end [bonds] int64 and [bonds, 3] int16 raw bond features, one loop over the bonds."""
    begin, end, rows = [], [], []
    bond_at = mol.GetBondWithIdx
    for index in range(mol.GetNumBonds()):
        bond = bond_at(index)
        begin.append(bond.GetBeginAtomIdx())
        end.append(bond.GetEndAtomIdx())
        bond_type = _REFERENCE_BOND_TYPE.get(bond.GetBondType(), 4)
        stereo = _REFERENCE_BOND_STEREO.get(bond.GetStereo(), 6) if bond_type == 1 else 0
        rows.append((bond_type, stereo, bond.GetIsConjugated()))
    features = np.array(rows, dtype=np.int16).reshape(-1, len(BOND_FEATURE_OFFSETS))
    return np.array(begin, dtype=np.int64), np.array(end, dtype=np.int64), features


def _reference_shortest_path_bonds(spd, begin, end, max_hops=5, atom_rank=None) -> np.ndarray:
    """[atoms, atoms, max_hops] int16: the reference walk (directed edges sorted by (source, rank of target), the
    first edge that shortens the distance to j taken at each step)."""
    n = spd.shape[0]
    num_bonds = len(begin)
    path = np.zeros((n, n, max_hops), dtype=np.int16)
    if num_bonds == 0 or max_hops == 0:
        return path
    source = np.concatenate([begin, end])
    target = np.concatenate([end, begin])
    bond_id = np.concatenate([np.arange(1, num_bonds + 1)] * 2)
    order = np.lexsort((target if atom_rank is None else atom_rank[target], source))
    source, target, bond_id = source[order], target[order], bond_id[order]
    num_edges = len(source)
    is_step = spd[target] == (spd[source] - 1)
    candidate = np.where(is_step, np.arange(num_edges)[:, None], num_edges)
    group_starts = np.flatnonzero(np.concatenate(([True], source[1:] != source[:-1])))
    next_edge = np.full((n, n), num_edges, dtype=np.int64)
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


def _reference_molecule_relations(mol, max_hops: int = 5) -> dict[str, np.ndarray]:
    atom_values = _reference_atom_feature_values(mol)
    begin, end, bond_values = _reference_bond_feature_values(mol)
    spd = shortest_path_matrix(mol)
    return {
        "atom_ids": (atom_values + np.asarray(ATOM_FEATURE_OFFSETS, dtype=np.int16) + 1).astype(np.int16),
        "degree": graph_degree(mol.GetNumAtoms(), begin, end),
        "spd": spd,
        "bond_features": (bond_values + np.asarray(BOND_FEATURE_OFFSETS, dtype=np.int16) + 1).astype(np.int16),
        "path_bonds": _reference_shortest_path_bonds(spd, begin, end, max_hops, canonical_ranks(mol)),
    }


_VARIED_SMILES_BY_KIND = {
    "salts, mixtures, single atoms": "[Na+].[Cl-] CC(=O)[O-].[Na+] c1ccccc1.CCO.O [NH4+].[O-]S(=O)(=O)[O-].[NH4+] C O",
    "fused, bridged, spiro, cage, 4/8-membered and macro rings": (
        "C1CC2CCC1CC2 c1ccc2ccccc2c1 c1ccc2c(c1)ccc1ccccc12 C1CCC2(CC1)CCCC2 C12C3C4C1C5C2C3C45 C1C2CC3CC1CC(C2)C3 "
        "C1CCC1 C1=CC=CC=CC=C1 C1CCCCCCCCCCCCCCCCCCCC1 c1ccccc1-c1ccccc1"
    ),
    "chains longer than 5 bonds": "CCCCCCCCCCCCCCCCCC OCCOCCOCCOCCOCCO CC(C)(C)CCCCCCC(C)(C)C",
    "E/Z, tetrahedral, ring stereo, square-planar / bipyramidal tags": (
        r"F/C=C/F F/C=C\F C/C=C/C=C/C C[C@H](N)C(=O)O C[C@@H]1CC[C@H](O)CC1 N[C@@H](Cc1ccccc1)C(=O)O "
        "C/C=C/[C@@H](C)Cl C[Pt@SP1](F)(Cl)Br S[As@TB1](F)(Cl)(Br)N C=C=C"
    ),
    "charges and radicals": (
        "C[N+](C)(C)C [O-][N+](=O)c1ccccc1 [Fe+3] [U+7] [C-]#[O+] [NH3+]CC([O-])=O [CH3] [O] C[CH2] [CH]C [C]"
    ),
    "aromatic heterocycles": (
        "c1ccncc1 c1cc[nH]c1 c1ccoc1 c1ccsc1 c1ncncn1 Cn1cnc2c1c(=O)n(C)c(=O)n2C c1ccc2[nH]ccc2c1 c1cc[se]c1 "
        "c1ccc2ncccc2c1 O=c1cc[nH]cc1"
    ),
    "hypervalent, high degree, triple, dative and quadruple bonds": (
        "F[S](F)(F)(F)(F)F FP(F)(F)(F)F O=S(=O)(O)O [Fe](C=O)(C=O)(C=O)(C=O)C=O F[Si-2](F)(F)(F)(F)F CC#N C#CC#C "
        "[Cu]<-N C$C C(C)(C)(C)C"
    ),
    "hydrogens, isotopes, dummy atoms": "[2H]C([2H])([2H])O [H][H] [3H]O [H]C([H])([H])[H] *CC [*:1]c1ccccc1 [13CH4]",
}
VARIED_SMILES = [smiles for group in _VARIED_SMILES_BY_KIND.values() for smiles in group.split()]


def _odd_molecules() -> list:
    """Molecules no SMILES gives: unusual bond types (zero, ionic, dative, 1.5, hydrogen, quintuple, unspecified),
    radicals, chiral tags and hybridizations set by hand."""
    mols = []
    for bond_type in (
        Chem.BondType.ZERO,
        Chem.BondType.IONIC,
        Chem.BondType.DATIVEONE,
        Chem.BondType.ONEANDAHALF,
        Chem.BondType.HYDROGEN,
        Chem.BondType.QUINTUPLE,
        Chem.BondType.UNSPECIFIED,
    ):
        mol = Chem.RWMol(Chem.MolFromSmiles("CC(=O)N"))
        mol.GetBondWithIdx(1).SetBondType(bond_type)
        mol.UpdatePropertyCache(strict=False)
        mols.append(mol.GetMol())
    mol = Chem.RWMol(Chem.MolFromSmiles("CC=CCO"))
    mol.GetAtomWithIdx(0).SetNumRadicalElectrons(7)
    mol.GetAtomWithIdx(1).SetChiralTag(Chem.ChiralType.CHI_OCTAHEDRAL)
    mol.GetAtomWithIdx(2).SetHybridization(Chem.HybridizationType.SP3D)
    mol.GetAtomWithIdx(3).SetHybridization(Chem.HybridizationType.S)
    mol.GetAtomWithIdx(4).SetFormalCharge(-9)
    mol.GetBondWithIdx(1).SetStereo(Chem.BondStereo.STEREOATROPCW)
    mols.append(mol.GetMol())
    aromatic_sp3 = Chem.RWMol(Chem.MolFromSmiles("c1ccccc1"))
    aromatic_sp3.GetAtomWithIdx(0).SetHybridization(Chem.HybridizationType.SP3)
    mols.append(aromatic_sp3.GetMol())
    return mols


def _renumbered(mol, rng) -> Chem.Mol:
    """The molecule with its atoms (and so its bonds) in a random order, sanitized as the featurizer does."""
    renumbered = Chem.RenumberAtoms(mol, [int(i) for i in rng.permutation(mol.GetNumAtoms())])
    Chem.SanitizeMol(renumbered)
    return renumbered


def _assert_same_relations(expected: dict, actual: dict, what: str) -> None:
    assert list(actual) == list(expected), what
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype and actual[key].shape == value.shape, (what, key)
        np.testing.assert_array_equal(actual[key], value, err_msg=f"{what}: {key}")


def test_vectorised_relations_equal_the_reference(esol_smiles):
    """ESOL, hand-picked hard cases, their explicit-H forms and random atom orders: every relation array equals the
    pre-vectorisation loops, tie-breaking among equally short paths included."""
    rng = np.random.default_rng(0)
    mols = [Chem.MolFromSmiles(smiles) for smiles in esol_smiles + VARIED_SMILES]
    assert all(mol is not None for mol in mols)
    mols += [Chem.AddHs(mol) for mol in mols[::25]] + [Chem.AddHs(Chem.MolFromSmiles(s)) for s in VARIED_SMILES]
    mols += [_renumbered(mol, rng) for mol in mols]
    mols += _odd_molecules()
    tied = 0
    for index, mol in enumerate(mols):
        what = f"molecule {index}: {Chem.MolToSmiles(mol)}"
        expected = _reference_molecule_relations(mol)
        _assert_same_relations(expected, molecule_relations(mol), what)
        tied += bool(
            (
                expected["path_bonds"]
                != _reference_shortest_path_bonds(expected["spd"], *_reference_bond_feature_values(mol)[:2])
            ).any()
        )
    assert len(mols) > 2500 and tied > 500  # thousands of molecules, the canonical-rank tie-breaking exercised


def test_vectorised_relations_of_real_fragments_and_hop_caps(esol_smiles):
    """Other max_hops (0..7) and multi-fragment inputs built from ESOL pairs."""
    for first, second in zip(esol_smiles[:60:3], esol_smiles[1:61:3]):
        mol = Chem.MolFromSmiles(f"{first}.{second}")
        for max_hops in (0, 1, 3, 7):
            expected = _reference_molecule_relations(mol, max_hops)
            _assert_same_relations(expected, molecule_relations(mol, max_hops), f"{first}.{second} hops={max_hops}")


def test_vectorised_walk_equals_the_reference_with_any_ranks(esol_smiles):
    """shortest_path_bonds with no ranks (atom index), tied ranks and arbitrary ranks: the same first steps."""
    rng = np.random.default_rng(1)
    for smiles in esol_smiles[:150]:
        mol = Chem.MolFromSmiles(smiles)
        spd = shortest_path_matrix(mol)
        begin, end, _ = bond_feature_values(mol)
        n = mol.GetNumAtoms()
        for rank in (None, np.zeros(n, np.int64), rng.integers(0, 3, n), rng.integers(-1000, 1000, n)):
            expected = _reference_shortest_path_bonds(spd, begin, end, 5, rank)
            actual = shortest_path_bonds(spd, begin, end, 5, rank)
            assert actual.dtype == np.int16 and actual.shape == expected.shape
            np.testing.assert_array_equal(actual, expected, err_msg=smiles)


def test_vectorised_atom_and_bond_values_equal_the_reference(esol_smiles):
    """The public per-molecule helpers on their own (atom_feature_values reads the bonds itself when not given)."""
    for smiles in esol_smiles[::10] + VARIED_SMILES:
        mol = Chem.MolFromSmiles(smiles)
        expected_atoms = _reference_atom_feature_values(mol)
        np.testing.assert_array_equal(atom_feature_values(mol), expected_atoms, err_msg=smiles)
        assert atom_feature_values(mol).dtype == np.int16
        for expected, actual in zip(_reference_bond_feature_values(mol), bond_feature_values(mol)):
            assert actual.dtype == expected.dtype and actual.shape == expected.shape
            np.testing.assert_array_equal(actual, expected, err_msg=smiles)


# ---------------------------------------------------------------- hydrogens


def test_explicit_hydrogens_removed_without_moving_heavy_atoms(tmp_path):
    mol = Chem.AddHs(Chem.MolFromSmiles("OCC(=O)N"))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    path = tmp_path / "with_h.sdf"
    with Chem.SDWriter(str(path)) as writer:
        writer.write(mol)
    f = MoleBlendFeaturizer(conformer="input").featurize(path).features[0]
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    assert f["num_atoms"] == len(heavy) == 5
    expected = Chem.MolFromMolFile(str(path), removeHs=False).GetConformer().GetPositions()[heavy]
    np.testing.assert_array_equal(f["coordinates"], expected.astype(np.float32))
    assert f["has_3d"]


def test_deuterium_is_an_atom_and_keep_hydrogens():
    assert featurize_one("[2H]C(Cl)(Cl)Cl")["num_atoms"] == 5
    assert featurize_one("CCO")["num_atoms"] == 3
    with_h = featurize_one("CCO", keep_hydrogens=True)
    assert with_h["num_atoms"] == 9
    assert with_h["degree"][:3].tolist() == [4, 4, 2]


# ---------------------------------------------------------------- SDF input


def write_sdf(path: Path, mols, v3000: bool = False) -> None:
    writer = Chem.SDWriter(str(path))
    writer.SetForceV3000(v3000)
    for mol in mols:
        writer.write(mol)
    writer.close()


@pytest.fixture
def labelled_mols():
    mols = []
    for i, (smiles, value) in enumerate([("CCO", "1.5"), ("c1ccccc1O", "NA"), ("CC(=O)N", None), ("CCN", "")]):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=1)
        mol.SetProp("_Name", f"mol{i}")
        if value is not None:
            mol.SetProp("logS", value)
        mol.SetProp("name", f"compound {i}")
        mols.append(mol)
    return mols


@pytest.mark.parametrize("v3000", [False, True])
@pytest.mark.parametrize("gz", [False, True])
def test_sdf_properties_labels_and_coordinates(tmp_path, labelled_mols, v3000, gz):
    path = tmp_path / "set.sdf"
    write_sdf(path, labelled_mols, v3000)
    if gz:
        with open(path, "rb") as src, gzip.open(tmp_path / "set.sdf.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        path = tmp_path / "set.sdf.gz"
    featurizer = MoleBlendFeaturizer(conformer="input")
    batch = featurizer(path, label_columns=["logS"])
    labels = batch["labels"][:, 0].tolist()
    assert labels[0] == 1.5 and all(math.isnan(v) for v in labels[1:])  # NA, missing and empty are NaN, never 0
    assert batch.properties["name"] == [f"compound {i}" for i in range(4)]
    assert batch.properties["logS"] == ["1.5", "NA", None, ""]
    assert batch.input_indices == [0, 1, 2, 3]
    assert bool(batch["has_3d"].all())
    # coordinates pass through unchanged (float32 of the file's values)
    for row, mol in enumerate(labelled_mols):
        heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
        expected = mol.GetConformer().GetPositions()[heavy].astype(np.float32)
        n = len(heavy)
        np.testing.assert_allclose(batch["coordinates"][row, :n].numpy(), expected, atol=1e-4)  # 4 decimals in SDF


def test_sdf_non_numeric_label_names_record_and_tag(tmp_path, labelled_mols):
    labelled_mols[2].SetProp("logS", "insoluble")
    path = tmp_path / "set.sdf"
    write_sdf(path, labelled_mols)
    with pytest.raises(InvalidLabelError) as error:
        MoleBlendFeaturizer(conformer="input").featurize(path, label_columns=["logS"])
    message = str(error.value)
    assert "input 2" in message and "record 2" in message and "'logS'" in message and "insoluble" in message


def test_sdf_corrupt_record_in_the_middle(tmp_path, labelled_mols):
    path = tmp_path / "set.sdf"
    write_sdf(path, labelled_mols)
    records = path.read_text().split("$$$$\n")
    corrupt = "broken\n  junk\n\n  3  2  0  0  0  0  0  0  0  0999 V2000\n    0.0 0.0\nM  END\n> <logS>\n7\n\n"
    path.write_text("$$$$\n".join(records[:2] + [corrupt] + records[2:]))
    result = MoleBlendFeaturizer(conformer="input", errors="skip").featurize(path, label_columns=["logS"])
    assert result.input_indices == [0, 1, 3, 4]
    assert len(result.features) == 4
    [skipped] = result.report.skipped
    assert skipped.index == 2 and "broken" in skipped.input_text and "Atom line too short" in skipped.reason
    with pytest.raises(InvalidMoleculeError, match=r"input 2 .*record 2 .*'broken'.*corrupt"):
        MoleBlendFeaturizer(conformer="input").featurize(path)


def test_2d_sdf_is_not_3d(tmp_path):
    mol = Chem.MolFromSmiles("c1ccccc1CC(=O)O")
    AllChem.Compute2DCoords(mol)
    path = tmp_path / "flat.sdf"
    write_sdf(path, [mol])
    flat = MoleBlendFeaturizer(conformer="none").featurize(path).features[0]
    assert not flat["has_3d"] and not flat["coordinates"].any()
    with pytest.raises(ConformerError, match="no 3D coordinates"):
        MoleBlendFeaturizer(conformer="input").featurize(path)
    generated = MoleBlendFeaturizer(conformer="auto", num_workers=0).featurize(path).features[0]
    assert generated["has_3d"] and np.abs(generated["coordinates"][:, 2]).max() > 0.1


def test_mol_inputs_with_and_without_conformer():
    mol = Chem.AddHs(Chem.MolFromSmiles("CC(=O)O"))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    bare = Chem.MolFromSmiles("CCN")
    result = MoleBlendFeaturizer(conformer="auto", num_workers=0).featurize([mol, bare])
    with_input, generated = result.features
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    np.testing.assert_array_equal(
        with_input["coordinates"], mol.GetConformer().GetPositions()[heavy].astype(np.float32)
    )
    assert generated["has_3d"]


def write_with_corrupt_record(path: Path, mols) -> None:
    """``mols`` as an SDF with a corrupt record (title 'broken') inserted as record 2."""
    write_sdf(path, mols)
    records = path.read_text().split("$$$$\n")
    corrupt = "broken\n  junk\n\n  3  2  0  0  0  0  0  0  0  0999 V2000\n    0.0 0.0\nM  END\n> <logS>\n7\n\n"
    path.write_text("$$$$\n".join(records[:2] + [corrupt] + records[2:]))


@pytest.mark.parametrize("v3000", [False, True])
def test_read_sdf_records_fields_and_errors(tmp_path, labelled_mols, v3000):
    path = tmp_path / "set.sdf"
    write_sdf(path, labelled_mols, v3000)
    if not v3000:
        write_with_corrupt_record(path, labelled_mols)
    records = list(read_sdf_records(path, parse=True))
    titles = ["mol0", "mol1", "mol2", "mol3"] if v3000 else ["mol0", "mol1", "broken", "mol2", "mol3"]
    assert [r.title for r in records] == titles and [r.index for r in records] == list(range(len(titles)))
    assert records[0].line == 1 and records[0].source == "set.sdf" and all(r.line > 1 for r in records[1:])
    assert records[0].properties == {"logS": "1.5", "name": "compound 0"}
    assert records[0].block.startswith("mol0\n") and "$$$$" not in records[0].block
    good = [r for r in records if r.title != "broken"]
    assert all(r.error is None and r.mol.GetNumAtoms() == labelled_mols[i].GetNumAtoms() for i, r in enumerate(good))
    assert good[0].mol.GetNumAtoms() == 9  # hydrogens kept as in the file
    if not v3000:
        broken = records[2]
        assert broken.mol is None and "Atom line too short" in broken.error and broken.properties == {"logS": "7"}
        assert broken.describe() == f"set.sdf record 2 (from line {broken.line}, title 'broken')"
    lazy = list(read_sdf_records(path))
    assert all(r.mol is None and r.error is None for r in lazy)
    assert [r.properties for r in lazy] == [r.properties for r in records]
    with pytest.raises(FileNotFoundError, match="SDF file not found"):
        read_sdf_records(tmp_path / "missing.sdf")  # checked at the call, not at the first record
    (tmp_path / "set.csv").write_text("smiles\nCCO\n")
    with pytest.raises(ValueError, match="expected a .sdf or .sdf.gz file, got 'set.csv'"):
        read_sdf_records(tmp_path / "set.csv")


def test_featurizing_sdf_records_matches_the_path_and_parses_once(tmp_path, labelled_mols, monkeypatch):
    path = tmp_path / "set.sdf"
    write_with_corrupt_record(path, labelled_mols)
    featurizer = MoleBlendFeaturizer(conformer="input", errors="skip")
    from_path = featurizer.featurize(path, label_columns=["logS"])
    records = list(read_sdf_records(path, parse=True))

    def no_second_parse(block):
        raise AssertionError("a parsed record was parsed again")

    monkeypatch.setattr(feature_extraction_moleblend, "parse_sdf_block", no_second_parse)
    from_records = featurizer.featurize(records, label_columns=["logS"])
    chunks = list(featurizer.featurize_chunks(records, chunk_size=2, label_columns=["logS"]))
    monkeypatch.undo()
    unparsed = list(read_sdf_records(path))
    from_unparsed = featurizer.featurize(unparsed, label_columns=["logS"])
    assert all(r.mol is None for r in unparsed)  # the caller's records are left as they were
    assert [c.input_indices for c in chunks] == [[0, 1], [3], [4]]
    for result in (from_records, from_unparsed):
        assert result.input_indices == from_path.input_indices == [0, 1, 3, 4]
        assert result.properties == from_path.properties
        assert result.report.skipped == from_path.report.skipped
        for a, b in zip(result.features, from_path.features):
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])
    [skipped] = from_records.report.skipped
    assert skipped.index == 2 and "Atom line too short" in skipped.reason
    assert skipped.input_text == f"set.sdf record 2 (from line {records[2].line}, title 'broken')"
    assert math.isnan(from_records.features[1]["labels"][0]) and from_records.features[0]["labels"][0] == 1.5
    with pytest.raises(InvalidMoleculeError, match=r"input 2 .*record 2 .*'broken'.*corrupt or unsanitizable"):
        MoleBlendFeaturizer(conformer="input").featurize(records)
    bare = SdfRecord(7, "bare", records[0].block, {"logS": "x"})  # no file behind it
    with pytest.raises(InvalidLabelError, match=r"input 0 \(\"SDF record 7 \(title 'bare'\)\"\).*'logS' = 'x'"):
        featurizer.featurize([bare], label_columns=["logS"], errors="raise")


def test_label_tag_in_no_record_is_an_error(tmp_path, labelled_mols):
    for mol in labelled_mols:
        mol.SetProp("pIC50", "6.1")
    path = tmp_path / "set.sdf"
    write_sdf(path, labelled_mols)
    with pytest.raises(MissingLabelTagError) as error:
        MoleBlendFeaturizer(conformer="input").featurize(path, label_columns=["pic50"])
    assert isinstance(error.value, ValueError)
    assert str(error.value) == (
        f"{path}: label tag 'pic50' (did you mean 'pIC50'?) not found in any record; "
        "the tags present are: 'logS', 'name', 'pIC50'"
    )
    assert error.value.missing == ["pic50"] and error.value.suggestions == {"pic50": "pIC50"}
    records = list(read_sdf_records(path))
    with pytest.raises(MissingLabelTagError, match=r"^SDF records: label tags 'pic50' \(did you mean 'pIC50'\?\), 'y'"):
        MoleBlendFeaturizer(conformer="input")(records, label_columns=["pic50", "y"])
    # a tag that some records lack is fine: NaN there (record 2 has no logS)
    labels = MoleBlendFeaturizer(conformer="input").featurize(path, label_columns=["logS", "pIC50"]).features
    assert [f["labels"][1] for f in labels] == pytest.approx([6.1] * 4)
    with pytest.raises(MissingLabelTagError, match="^the input molecules: label tag 'y' .*present are: none$"):
        MoleBlendFeaturizer(conformer="none").featurize(["CCO"], label_columns=["y"])  # SMILES carry no tags
    # labels given directly name their columns: nothing to check against properties
    given = MoleBlendFeaturizer(conformer="none").featurize(["CCO"], labels=[[1.0]], label_columns=["pic50"])
    assert given.features[0]["labels"].tolist() == [1.0]


def test_check_label_tags_messages():
    check_label_tags({"a": None, "b": None}, ["b", "a"], "t.csv")  # dict keys, any order: fine
    with pytest.raises(MissingLabelTagError) as error:
        check_label_tags(["LogS", "logs_err", "name"], ["logs", "solubility"], "t.csv")
    assert str(error.value) == (
        "t.csv: label tags 'logs' (did you mean 'LogS'?), 'solubility' not found in any record; "
        "the tags present are: 'LogS', 'logs_err', 'name'"
    )
    with pytest.raises(MissingLabelTagError, match=r"'pic5O' \(did you mean 'pIC50'\?\)"):
        check_label_tags(["pIC50"], ["pic5O"], "x.sdf")  # no case-insensitive match: the closest tag
    with pytest.raises(MissingLabelTagError, match="the tags present are: none$"):
        check_label_tags([], ["y"], "SDF records")
    with pytest.raises(MissingLabelTagError, match=r"'t29', \.\.\. \(10 more\)$"):
        check_label_tags([f"t{i:02d}" for i in range(40)], ["y"], "wide.sdf")


def test_one_label_parser_for_featurizer_and_collator():
    assert feature_extraction_moleblend.parse_label is parse_label
    for missing in (None, "", "NA", " nan ", "N/A", "null", float("nan")):
        assert math.isnan(parse_label(missing, 0, "CCO", "y"))
    assert parse_label(" 1.5 ", 0, "CCO", "y") == 1.5 and parse_label(np.int64(3), 0, "CCO", "y") == 3.0
    with pytest.raises(InvalidLabelError, match=r"input 4 \('CCO'\): invalid label: label 'y' = 'high' is not"):
        parse_label("high", 4, "CCO", "y")
    values = labels_to_float([None, "", "NA", "nan", "2.5", 3])
    assert values.dtype == np.float32 and np.isnan(values[:4]).all() and values[4:].tolist() == [2.5, 3.0]
    assert labels_to_float(None).shape == (1,) and math.isnan(labels_to_float(None)[0])
    assert labels_to_float(np.array([1, 0], dtype=np.int8)).tolist() == [1.0, 0.0]
    with pytest.raises(InvalidLabelError, match=r"input 1 \('CCN'\).*'label 1' = 'high'"):
        labels_to_float([1.0, "high"], 1, "CCN")


# ---------------------------------------------------------------- conformers


def test_generated_conformers_are_reproducible():
    smiles = ["CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CC", "C1CCCCC1O"]
    one = MoleBlendFeaturizer(conformer="generate", num_workers=0, seed=5).featurize(smiles)
    two = MoleBlendFeaturizer(conformer="generate", num_workers=2, seed=5).featurize(list(reversed(smiles)))
    for a, b in zip(one.features, reversed(two.features)):
        np.testing.assert_array_equal(a["coordinates"], b["coordinates"])
    other_seed = MoleBlendFeaturizer(conformer="generate", num_workers=0, seed=6).featurize(smiles[:1])
    assert not np.array_equal(other_seed.features[0]["coordinates"], one.features[0]["coordinates"])


def test_generate_replaces_input_coordinates():
    mol = Chem.AddHs(Chem.MolFromSmiles("CCCO"))
    AllChem.EmbedMolecule(mol, randomSeed=11)
    given = MoleBlendFeaturizer(conformer="input").featurize([mol]).features[0]["coordinates"]
    regenerated = MoleBlendFeaturizer(conformer="generate", num_workers=0).featurize([mol]).features[0]
    assert regenerated["has_3d"] and not np.array_equal(given, regenerated["coordinates"])


def _sleep_on_ethanol(mol, settings):
    if Chem.MolToSmiles(mol) == "CCO":
        time.sleep(60)
    return conformers_moleblend.embed_conformer.__wrapped__(mol, settings)


def _die_on_ethanol(mol, settings):
    if Chem.MolToSmiles(mol) == "CCO":
        os._exit(3)  # a hard crash, as a segfault inside RDKit would be
    return conformers_moleblend.embed_conformer.__wrapped__(mol, settings)


def _fail_on_ethanol(mol, settings):
    if Chem.MolToSmiles(mol) == "CCO":
        return conformers_moleblend.ConformerResult(error="ETKDGv3 embedding failed after 4 attempts")
    return conformers_moleblend.embed_conformer.__wrapped__(mol, settings)


def patch_embed(monkeypatch, replacement):
    original = conformers_moleblend.embed_conformer
    replacement.__wrapped__ = original
    monkeypatch.setattr(conformers_moleblend, "embed_conformer", replacement)


def test_conformer_timeout_kills_the_worker_and_goes_on(monkeypatch):
    patch_embed(monkeypatch, _sleep_on_ethanol)
    featurizer = MoleBlendFeaturizer(conformer="generate", num_workers=2, conformer_timeout=1, errors="skip")
    started = time.monotonic()
    result = featurizer.featurize(["CCN", "CCO", "CCC", "CC=O"])
    assert time.monotonic() - started < 15
    assert result.input_indices == [0, 2, 3]
    [skipped] = result.report.skipped
    assert skipped.index == 1 and skipped.error_type == "ConformerTimeoutError" and "1 s" in skipped.reason
    with pytest.raises(ConformerTimeoutError, match=r"input 1 \('CCO'\): conformer time-out"):
        featurizer.featurize(["CCN", "CCO"], errors="raise")


def test_dead_worker_fails_only_its_molecule(monkeypatch):
    patch_embed(monkeypatch, _die_on_ethanol)
    result = MoleBlendFeaturizer(conformer="generate", num_workers=2, errors="skip").featurize(["CCN", "CCO", "CCC"])
    assert result.input_indices == [0, 2]
    assert all(f["has_3d"] for f in result.features)
    assert "worker died (exit code 3)" in result.report.skipped[0].reason


def test_conformer_failure_raise_skip_and_2d_fallback(monkeypatch):
    patch_embed(monkeypatch, _fail_on_ethanol)
    with pytest.raises(ConformerError, match=r"input 1 \('CCO'\): conformer failure: ETKDGv3 embedding failed"):
        MoleBlendFeaturizer(conformer="generate", num_workers=0).featurize(["CCN", "CCO"])
    kept = MoleBlendFeaturizer(conformer="generate", num_workers=0, conformer_fallback="2d").featurize(["CCN", "CCO"])
    assert kept.input_indices == [0, 1]
    assert kept.features[0]["has_3d"] and not kept.features[1]["has_3d"]
    assert [item.index for item in kept.report.without_3d] == [1]


def test_single_atom_gets_a_conformer():
    result = conformers_moleblend.embed_conformer(Chem.MolFromSmiles("C"), conformers_moleblend.ConformerSettings())
    assert result.error is None and result.coordinates.shape == (1, 3)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "smiles, error_type, reason",
    [
        ("C1CC", InvalidMoleculeError, "unclosed ring"),
        ("N(C)(C)(C)(C)C", InvalidMoleculeError, "valence"),
        ("", EmptyMoleculeError, "no atoms"),
        ("*CC", UnsupportedAtomError, "dummy"),
        ("CC[Se]C", UnsupportedAtomError, "'Se'"),
        ("CCCCCCCC", MoleculeTooLargeError, "8 heavy atoms > max_atoms=6"),
    ],
)
def test_bad_inputs_raise_with_index_text_and_reason(smiles, error_type, reason):
    featurizer = MoleBlendFeaturizer(conformer="none", max_atoms=6, allowed_elements=["C", "N", "O"])
    with pytest.raises(error_type) as error:
        featurizer.featurize(["CCO", smiles])
    assert isinstance(error.value, ValueError) and isinstance(error.value, MoleculeError)
    assert f"input 1 ({smiles!r})" in str(error.value) and reason in str(error.value)
    assert error.value.index == 1 and error.value.input_text == smiles


def test_skip_reports_every_bad_input():
    featurizer = MoleBlendFeaturizer(conformer="none", errors="skip", max_atoms=6)
    inputs = ["CCO", "C1CC", "", "*C", None, "CCCCCCCC", "c1ccccc1"]
    batch = featurizer(inputs)
    assert batch.input_indices == [0, 6]
    assert batch["num_atoms"].tolist() == [3, 6]
    report = batch.report
    assert report.num_inputs == 7 and report.num_featurized == 2
    assert [(s.index, s.error_type) for s in report.skipped] == [
        (1, "InvalidMoleculeError"),
        (2, "EmptyMoleculeError"),
        (3, "UnsupportedAtomError"),
        (4, "InvalidMoleculeError"),
        (5, "MoleculeTooLargeError"),
    ]
    assert "5 skipped" in report.summary()


def test_long_input_is_truncated_in_messages():
    long_bad = "C" * 300 + "1"
    with pytest.raises(InvalidMoleculeError) as error:
        MoleBlendFeaturizer(conformer="none", max_atoms=1000).featurize([long_bad])
    assert len(error.value.input_text) <= 80 and error.value.input_text.endswith("...")


@pytest.mark.parametrize(
    "given, shown",
    [("   ", "'   '"), ("\t", "'\\t'"), ("C1CC\tx", "'C1CC\\tx'"), ("C1CC\n", "'C1CC\\n'")],
)
def test_inputs_are_named_as_given(given, shown):
    """Blanks, tabs and newlines are kept: the message shows the input's repr, never a cleaned-up text."""
    featurizer = MoleBlendFeaturizer(conformer="none")
    with pytest.raises(InvalidMoleculeError) as error:
        featurizer.featurize(["CCO", given])
    assert error.value.input_text == given and str(error.value).startswith(f"input 1 ({shown}): invalid molecule")
    report = featurizer.featurize(["CCO", given], errors="skip").report
    assert report.skipped[0].input_text == given and f"input 1 ({shown}): " in report.summary()
    long_tabs = "\t".join(["C1CC"] * 40)
    with pytest.raises(InvalidMoleculeError) as error:
        featurizer.featurize([long_tabs])
    assert error.value.input_text == long_tabs[:77] + "..." and repr(long_tabs[:77] + "...") in str(error.value)


def test_more_bonds_than_int16_path_bonds_can_index(monkeypatch):
    """``path_bonds`` is int16 in the cache: a molecule with more bonds than it can index is rejected, and why."""
    assert MAX_BONDS == np.iinfo(STORAGE_DTYPES["path_bonds"]).max == 32767
    monkeypatch.setattr(feature_extraction_moleblend, "MAX_BONDS", 2)
    featurizer = MoleBlendFeaturizer(conformer="none")
    assert featurizer.featurize(["CCC"]).features[0]["num_atoms"] == 3  # 2 bonds: at the limit
    with pytest.raises(MoleculeTooLargeError) as error:
        featurizer.featurize(["CCC", "CCCC"])
    assert str(error.value) == (
        "input 1 ('CCCC'): molecule too large: 3 bonds > 2: path_bonds holds 1-based bond rows as int16 "
        "(the featurized cache's fixed dtype)"
    )
    skipped = featurizer.featurize(["CCCC", "CC"], errors="skip")
    assert skipped.input_indices == [1] and skipped.report.skipped[0].error_type == "MoleculeTooLargeError"
    many = np.zeros(MAX_BONDS + 1, dtype=np.int64)
    with pytest.raises(ValueError, match="32768 bonds > 32767: int16 path_bonds"):
        shortest_path_bonds(np.zeros((2, 2), np.int16), many, many + 1)


def test_sdf_path_given_as_str_gets_a_hint():
    with pytest.raises(InvalidMoleculeError, match="pathlib.Path"):
        MoleBlendFeaturizer(conformer="none").featurize(["molecules.sdf"])


def test_empty_and_wrong_inputs():
    featurizer = MoleBlendFeaturizer(conformer="none")
    with pytest.raises(ValueError, match="no molecules given"):
        featurizer.featurize([])
    with pytest.raises(TypeError, match="molecules must be"):
        featurizer.featurize(42)
    with pytest.raises(ValueError, match="no molecule could be featurized"):
        featurizer(["C1CC"], errors="skip")
    with pytest.raises(ValueError, match="conformer must be one of"):
        MoleBlendFeaturizer(conformer="sometimes")
    with pytest.raises(TypeError, match="unknown featurizer settings"):
        featurizer.featurize(["C"], conformers="none")


def test_chunks_count_from_the_start_and_merge_to_featurize():
    featurizer = MoleBlendFeaturizer(conformer="none", errors="skip")
    inputs = ["CCO", "C1CC", "c1ccccc1", "CCN", "*C", "O"]
    chunks = list(featurizer.featurize_chunks(inputs, chunk_size=2))
    assert [c.input_indices for c in chunks] == [[0], [2, 3], [5]]
    assert [[s.index for s in c.report.skipped] for c in chunks] == [[1], [], [4]]
    assert [c.report.num_inputs for c in chunks] == [2, 2, 2]
    whole = featurizer.featurize(inputs)
    assert whole.input_indices == [0, 2, 3, 5] and whole.report.num_inputs == 6
    for a, b in zip(whole.features, [f for c in chunks for f in c.features]):
        np.testing.assert_array_equal(a["path_bonds"], b["path_bonds"])


def test_results_do_not_depend_on_input_order():
    smiles = ["CC(=O)Nc1ccc(O)cc1", "[Na+].[Cl-]", "C1CC1"]
    featurizer = MoleBlendFeaturizer(conformer="none")
    forward = featurizer.featurize(smiles).features
    backward = featurizer.featurize(list(reversed(smiles))).features
    for a, b in zip(forward, reversed(backward)):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
