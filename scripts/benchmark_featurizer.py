#!/usr/bin/env python
"""Featurizer throughput and peak memory, each phase in its own process (so peak RSS is per phase).

    python scripts/benchmark_featurizer.py                                  # embedded ESOL
    python scripts/benchmark_featurizer.py --input lipophilicity.csv --num_2d 4200 --num_3d 300
    python scripts/benchmark_featurizer.py --input moses_train.csv.gz --smiles_column SMILES

Phases:
  floor     RDKit parse + Chem.GetDistanceMatrix only (the lower bound of any 2D featurizer)
  wrappers  floor + the Python objects of every atom and bond (list(mol.GetAtoms()), list(mol.GetBonds())),
            no getter called: the lower bound of any featurizer that reads atoms and bonds from Python
  2d        MoleBlendFeaturizer(conformer="none").featurize, first pass and repeated pass, then collation
  3d_rdkit  raw RDKit: AddHs + ETKDGv3(seed) [+ MMFF] per molecule, in this process
  3d_w1     MoleBlendFeaturizer(conformer="generate", num_workers=1) on the same molecules
  3d_wall   the same with one worker per core
  sdf       the generated conformers written to an SDF, read back with conformer="input"
Numbers are printed as a table and written to --output (JSON). This machine is noisy: compare ratios measured
in one run, not across runs (--repeat N interleaves N runs of the phases and takes each phase's best).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = ("floor", "wrappers", "2d", "3d_rdkit", "3d_w1", "3d_wall", "sdf")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=None, help="CSV or CSV.gz with SMILES (default: ESOL)")
    parser.add_argument("--smiles_column", default="smiles")
    parser.add_argument("--num_2d", type=int, default=5000, help="molecules for the 2D phases")
    parser.add_argument("--num_3d", type=int, default=200, help="molecules for the 3D phases")
    parser.add_argument("--no_mmff", action="store_true", help="ETKDG only (default: ETKDG + MMFF)")
    parser.add_argument("--phases", nargs="*", default=list(PHASES), choices=PHASES)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the phases this many times, interleaved; ratios use each phase's best",
    )
    parser.add_argument("--output", type=Path, default=Path("outputs/benchmark_featurizer.json"))
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)  # internal: run one phase
    parser.add_argument("--sdf", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def read_smiles(path: Path | None, column: str, limit: int) -> list[str]:
    from modeling_moleblend.data import ESOL, read_molecule_table

    smiles = [s or "" for s in read_molecule_table(path or ESOL, column).smiles[:limit]]
    if len(smiles) < limit:  # small sets are repeated so that timings are long enough to be stable
        smiles = (smiles * (limit // max(len(smiles), 1) + 1))[:limit]
    return smiles


def peak_rss_mb() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": round(own, 1), "peak_rss_children_mb": round(children, 1)}


def run_phase(args) -> dict:
    from rdkit import Chem, rdBase

    from modeling_moleblend import MoleBlendCollator, MoleBlendFeaturizer
    from modeling_moleblend.tokenization.conformers_moleblend import default_num_workers

    baseline = peak_rss_mb()["peak_rss_mb"]
    mmff = not args.no_mmff
    out: dict = {"phase": args.phase, "rss_after_imports_mb": baseline}
    if args.phase in ("floor", "wrappers", "2d"):
        smiles = read_smiles(args.input, args.smiles_column, args.num_2d)
        out["molecules"] = len(smiles)
        if args.phase in ("floor", "wrappers"):
            wrappers, unparsed = args.phase == "wrappers", 0
            with rdBase.BlockLogs():
                started = time.perf_counter()
                for s in smiles:
                    mol = Chem.MolFromSmiles(s)
                    if mol is None:  # counted, as the 2d phase's featurizer skips and reports them
                        unparsed += 1
                        continue
                    Chem.GetDistanceMatrix(mol)
                    if wrappers:
                        list(mol.GetAtoms())
                        list(mol.GetBonds())
                out["molecules_per_s"] = len(smiles) / (time.perf_counter() - started)
            out["skipped"] = unparsed
        else:
            featurizer = MoleBlendFeaturizer(conformer="none", errors="skip")
            started = time.perf_counter()
            result = featurizer.featurize(smiles, progress=False)
            out["molecules_per_s"] = len(smiles) / (time.perf_counter() - started)
            started = time.perf_counter()
            featurizer.featurize(smiles, progress=False)
            out["molecules_per_s_second_pass"] = len(smiles) / (time.perf_counter() - started)
            out["skipped"] = len(result.report.skipped)
            out["mean_atoms"] = sum(int(f["num_atoms"]) for f in result.features) / len(result.features)
            collator = MoleBlendCollator(pad_to_multiple_of=8)
            started = time.perf_counter()
            for start in range(0, len(result.features), 64):
                collator(result.features[start : start + 64])
            out["collate_molecules_per_s"] = len(result.features) / (time.perf_counter() - started)
    elif args.phase == "sdf":
        featurizer = MoleBlendFeaturizer(conformer="input", errors="skip")
        started = time.perf_counter()
        result = featurizer.featurize(args.sdf, progress=False)
        out["molecules"] = result.report.num_inputs
        out["molecules_per_s"] = result.report.num_inputs / (time.perf_counter() - started)
        out["with_3d"] = sum(bool(f["has_3d"]) for f in result.features)
    else:
        smiles = read_smiles(args.input, args.smiles_column, args.num_3d)
        out["molecules"] = len(smiles)
        if args.phase == "3d_rdkit":
            from rdkit.Chem import AllChem, rdDistGeom

            failures = 0
            with rdBase.BlockLogs():
                started = time.perf_counter()
                for s in smiles:
                    mol = Chem.AddHs(Chem.MolFromSmiles(s))
                    params = rdDistGeom.ETKDGv3()
                    params.randomSeed = 0
                    if rdDistGeom.EmbedMolecule(mol, params) < 0:
                        failures += 1
                    elif mmff and AllChem.MMFFHasAllMoleculeParams(mol):
                        AllChem.MMFFOptimizeMolecule(mol, maxIters=1000)
                seconds = time.perf_counter() - started
            out["failures"] = failures
        else:
            workers = 1 if args.phase == "3d_w1" else default_num_workers()
            out["workers"] = workers
            featurizer = MoleBlendFeaturizer(conformer="generate", num_workers=workers, mmff=mmff, errors="skip")
            started = time.perf_counter()
            result = featurizer.featurize(smiles, progress=False)
            seconds = time.perf_counter() - started
            out["failures"] = len(result.report.skipped)
            if args.sdf is not None:  # keep the conformers for the SDF phase
                write_sdf(args.sdf, smiles, result)
        out["ms_per_molecule"] = 1000 * seconds / len(smiles)
        out["molecules_per_s"] = len(smiles) / seconds
    out.update(peak_rss_mb())
    return out


def write_sdf(path: Path, smiles: list[str], result) -> None:
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    writer = Chem.SDWriter(str(path))
    for index, features in zip(result.input_indices, result.features):
        mol = Chem.RemoveHs(Chem.MolFromSmiles(smiles[index]))
        conformer = Chem.Conformer(mol.GetNumAtoms())
        for atom, (x, y, z) in enumerate(features["coordinates"].tolist()):
            conformer.SetAtomPosition(atom, Point3D(x, y, z))
        mol.AddConformer(conformer, assignId=True)
        writer.write(mol)
    writer.close()


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.phase:
        print(json.dumps(run_phase(args)))
        return 0
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        sdf = Path(tmp) / "generated.sdf"
        for phase in [phase for _ in range(args.repeat) for phase in args.phases]:
            command = [sys.executable, __file__, "--phase", phase, "--smiles_column", args.smiles_column]
            command += ["--num_2d", str(args.num_2d), "--num_3d", str(args.num_3d), "--sdf", str(sdf)]
            command += ["--input", str(args.input)] if args.input else []
            command += ["--no_mmff"] if args.no_mmff else []
            if phase == "sdf" and not sdf.exists():
                print("sdf: skipped (needs the 3d_w1 or 3d_wall phase first)")
                continue
            completed = subprocess.run(command, capture_output=True, text=True)
            if completed.returncode != 0:
                print(completed.stderr[-2000:], file=sys.stderr)
                return completed.returncode
            results.append(json.loads(completed.stdout.strip().splitlines()[-1]))
            row = results[-1]
            extra = f"{row['ms_per_molecule']:.1f} ms/mol" if "ms_per_molecule" in row else ""
            if "molecules_per_s_second_pass" in row:
                second, collate = row["molecules_per_s_second_pass"], row["collate_molecules_per_s"]
                extra = f"second pass {second:,.0f}/s, collate {collate:,.0f}/s"
            print(
                f"{phase:9s} {row['molecules']:6d} mol {row['molecules_per_s']:9,.1f} mol/s  "
                f"peak RSS {row['peak_rss_mb']:7.1f} MB (after imports {row['rss_after_imports_mb']:.0f}, "
                f"children {row['peak_rss_children_mb']:.0f})  {extra}",
                flush=True,
            )
    by_phase = {}  # the fastest run of each phase (a noisy machine only ever slows a run down)
    for row in results:
        if row["phase"] not in by_phase or row["molecules_per_s"] > by_phase[row["phase"]]["molecules_per_s"]:
            by_phase[row["phase"]] = row
    ratios = {}
    if "floor" in by_phase and "2d" in by_phase:
        ratios["2d_vs_floor"] = by_phase["2d"]["molecules_per_s"] / by_phase["floor"]["molecules_per_s"]
        ratios["2d_second_pass_vs_floor"] = (
            by_phase["2d"]["molecules_per_s_second_pass"] / by_phase["floor"]["molecules_per_s"]
        )
    if "floor" in by_phase and "wrappers" in by_phase:
        ratios["wrappers_vs_floor"] = by_phase["wrappers"]["molecules_per_s"] / by_phase["floor"]["molecules_per_s"]
    if "wrappers" in by_phase and "2d" in by_phase:
        ratios["2d_vs_wrappers"] = by_phase["2d"]["molecules_per_s"] / by_phase["wrappers"]["molecules_per_s"]
    if "3d_rdkit" in by_phase and "3d_w1" in by_phase:
        ratios["3d_w1_time_vs_rdkit"] = by_phase["3d_w1"]["ms_per_molecule"] / by_phase["3d_rdkit"]["ms_per_molecule"]
    if "3d_w1" in by_phase and "3d_wall" in by_phase:
        ratios["3d_speedup_all_workers"] = by_phase["3d_w1"]["ms_per_molecule"] / by_phase["3d_wall"]["ms_per_molecule"]
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {"input": str(args.input or "ESOL"), "repeat": args.repeat, "phases": results, "ratios": ratios}, indent=2
        )
    )
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
