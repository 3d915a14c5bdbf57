#!/usr/bin/env python
"""Turn the QM9 files of the qm9pack package (DFT geometries) into an SDF with 3D coordinates and targets in eV.

    pip download --no-deps qm9pack==1.0.3 -d qm9 && unzip -q qm9/qm9pack-1.0.3-py3-none-any.whl -d qm9
    python scripts/prepare_qm9.py --qm9_dir qm9/qm9pack/data --num_molecules 5000 --output qm9_5k.sdf.gz

Each molecule is built from its DFT coordinates (hydrogens included) and its bonds are perceived with RDKit's
rdDetermineBonds (neutral charge). A molecule is kept only when the perceived graph matches QM9's own SMILES
(connectivity and bond orders, stereo ignored); every dropped molecule is counted by reason in the printed
summary. Tags written: gap_eV, homo_eV, lumo_eV (from hartree, 1 Eh = 27.211386 eV), qm9_index, smiles, and with
--all_targets the 12 targets of the QM9 benchmark in its usual units: mu_D (debye), alpha_a03 (bohr^3),
homo_meV, lumo_meV, gap_meV, r2_a02 (bohr^2), zpve_meV, u0_meV, u_meV, h_meV, g_meV (atomization energies: the
total energy minus QM9's isolated-atom references, B3LYP/6-31G(2df,p), so the MAE equals that of the total
energy) and cv_cal_mol_K. The sample is drawn with a fixed seed, so the same arguments give the same file.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

HARTREE_TO_EV = 27.211386
TARGETS = {"gap_eV": "HOMO_LUMO_gap_au", "homo_eV": "HOMO_au", "lumo_eV": "LUMO_au"}
HARTREE_TO_MEV = 1000 * HARTREE_TO_EV
# QM9's isolated-atom energies (hartree) at 0 K (U0) and 298 K (U, H, G): the dataset's atomref table
ATOM_REFERENCES = {
    "InternalEnergy_0K_au": {"H": -0.500273, "C": -37.846772, "N": -54.583861, "O": -75.064579, "F": -99.718730},
    "InternalEnergy_298K_au": {"H": -0.498857, "C": -37.845355, "N": -54.582445, "O": -75.063162, "F": -99.717314},
    "Enthalphy_298K_au": {"H": -0.497912, "C": -37.844411, "N": -54.581501, "O": -75.062219, "F": -99.716370},
    "GibbsFreeEnergy_298K_au": {"H": -0.510927, "C": -37.861317, "N": -54.598897, "O": -75.079532, "F": -99.733544},
}
# tag -> (column, factor); energies in meV
ALL_TARGETS = {
    "mu_D": ("Dipole_debye", 1.0),
    "alpha_a03": ("Polarizability_bohr3", 1.0),
    "homo_meV": ("HOMO_au", HARTREE_TO_MEV),
    "lumo_meV": ("LUMO_au", HARTREE_TO_MEV),
    "gap_meV": ("HOMO_LUMO_gap_au", HARTREE_TO_MEV),
    "r2_a02": ("R2_bohr2", 1.0),
    "zpve_meV": ("ZPVE_au", HARTREE_TO_MEV),
    "u0_meV": ("InternalEnergy_0K_au", HARTREE_TO_MEV),
    "u_meV": ("InternalEnergy_298K_au", HARTREE_TO_MEV),
    "h_meV": ("Enthalphy_298K_au", HARTREE_TO_MEV),
    "g_meV": ("GibbsFreeEnergy_298K_au", HARTREE_TO_MEV),
    "cv_cal_mol_K": ("Heatcapacity_Cv_cal_mol_K", 1.0),
}


def target_value(row: dict, column: str, factor: float, elements: list[str]) -> float:
    """One target in its benchmark unit; an energy with atom references becomes an atomization energy."""
    value = float(row[column])
    if column in ATOM_REFERENCES:
        value -= sum(ATOM_REFERENCES[column][symbol] for symbol in elements)
    return value * factor


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qm9_dir", required=True, type=Path, help="folder with qm9_part{1,2,3}.csv")
    p.add_argument("--num_molecules", type=int, default=5000, help="sample size (0 = all 133,885)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--all_targets", action="store_true", help="also write the 12 benchmark targets")
    p.add_argument("--output", required=True, type=Path, help=".sdf or .sdf.gz")
    return p.parse_args(argv)


def read_rows(folder: Path) -> list[dict]:
    csv.field_size_limit(10**8)
    rows = []
    for part in sorted(folder.glob("qm9_part*.csv")):
        with open(part, newline="") as handle:
            rows.extend(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"no qm9_part*.csv in {folder}")
    return rows


def molecule_from_row(row: dict):
    """(mol, None) or (None, reason)."""
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds
    from rdkit.Geometry import Point3D

    elements = re.findall(r"[A-Z][a-z]?", row["Elements"])
    xyz_text = re.sub(r"(\d)\.(?=[,\]])", r"\1.0", row["XYZ_Ang"])  # numbers written like "1." are not JSON
    coordinates = np.asarray(json.loads(xyz_text), dtype=np.float64)
    if len(elements) != len(coordinates):
        return None, "element and coordinate counts differ"
    editable = Chem.RWMol()
    for symbol in elements:
        editable.AddAtom(Chem.Atom(symbol))
    conformer = Chem.Conformer(len(elements))
    for i, (x, y, z) in enumerate(coordinates):
        conformer.SetAtomPosition(i, Point3D(x, y, z))
    mol = editable.GetMol()
    mol.AddConformer(conformer, assignId=True)
    try:
        rdDetermineBonds.DetermineBonds(mol, charge=0)
        Chem.SanitizeMol(mol)
    except Exception as error:  # RDKit raises several types here
        return None, f"bond perception failed ({type(error).__name__})"
    reference = Chem.MolFromSmiles(row["SMILES"])
    if reference is None:
        return None, "QM9 SMILES does not parse"
    perceived = Chem.MolToSmiles(Chem.RemoveHs(mol), isomericSmiles=False)
    if perceived != Chem.MolToSmiles(reference, isomericSmiles=False):
        return None, "perceived bonds differ from the QM9 SMILES"
    return mol, None


def main(argv=None) -> int:
    from rdkit import Chem, rdBase

    args = parse_args(argv)
    rows = read_rows(args.qm9_dir)
    order = np.random.default_rng(args.seed).permutation(len(rows))
    wanted = args.num_molecules or len(rows)
    dropped: Counter = Counter()
    kept = 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    handle = gzip.open(args.output, "wt") if args.output.name.endswith(".gz") else open(args.output, "w")
    with handle, rdBase.BlockLogs():
        writer = Chem.SDWriter(handle)
        for index in order:
            if kept == wanted:
                break
            row = rows[index]
            mol, reason = molecule_from_row(row)
            if mol is None:
                dropped[reason] += 1
                continue
            mol.SetProp("_Name", row["XYZ_file"].strip('"'))
            mol.SetProp("qm9_index", str(row["Index"]))
            mol.SetProp("smiles", row["SMILES"])
            for tag, column in TARGETS.items():
                mol.SetProp(tag, f"{float(row[column]) * HARTREE_TO_EV:.6f}")
            if args.all_targets:
                elements = re.findall(r"[A-Z][a-z]?", row["Elements"])
                for tag, (column, factor) in ALL_TARGETS.items():
                    mol.SetProp(tag, f"{target_value(row, column, factor, elements):.6f}")
            writer.write(mol)
            kept += 1
        writer.close()
    examined = kept + sum(dropped.values())
    print(f"{kept} molecules written to {args.output} ({examined} examined, seed {args.seed})")
    for reason, count in dropped.most_common():
        print(f"  dropped {count}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
