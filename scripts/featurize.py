#!/usr/bin/env python
"""Featurize a CSV (SMILES column) or an SDF file with MoleBlendFeaturizer and report what happened.

    python scripts/featurize.py                                   # the embedded ESOL sample, 3D generated
    python scripts/featurize.py --input my.csv --smiles_column smi --label_columns y1 y2 --conformer none
    python scripts/featurize.py --input poses.sdf --conformer input --errors skip

Prints a summary (molecules/s, atoms, 3D, every skipped input with its reason) and writes
``OUTPUT_DIR/featurize_report.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np
from modeling_moleblend.tokenization.conformers_moleblend import default_num_workers

from modeling_moleblend import MoleBlendFeaturizer

BAD_INPUT_EXAMPLES = ["c1ccccc1C(=O", "N(C)(C)(C)(C)C", "", "*CC(=O)O", "C" * 40]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=None, help="CSV or .sdf/.sdf.gz (default: embedded ESOL)")
    parser.add_argument("--smiles_column", default="smiles", help="SMILES column of a CSV input (default: smiles)")
    parser.add_argument("--label_columns", nargs="*", default=None, help="CSV columns / SDF tags read as labels")
    parser.add_argument("--conformer", default="auto", choices=["auto", "input", "generate", "none"])
    parser.add_argument("--num_workers", type=int, default=None, help="conformer workers (default: all cores)")
    parser.add_argument("--errors", default="skip", choices=["raise", "skip"], help="default: skip and report")
    parser.add_argument("--max_atoms", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_mmff", action="store_true", help="keep raw ETKDG geometries (faster)")
    parser.add_argument("--conformer_timeout", type=float, default=60.0, help="seconds per molecule")
    parser.add_argument("--limit", type=int, default=None, help="only the first N molecules")
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/featurize"))
    parser.add_argument("--no_bad_input_demo", action="store_true", help="skip the bad-input report example")
    return parser.parse_args(argv)


def read_csv(path, smiles_column: str, label_columns: list[str] | None, limit: int | None):
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))[:limit]
    if rows and smiles_column not in rows[0]:
        raise SystemExit(f"{path}: no column {smiles_column!r}; columns are {list(rows[0])}")
    smiles = [row[smiles_column] for row in rows]
    labels = [[row.get(c) for c in label_columns] for row in rows] if label_columns else None
    return smiles, labels


def main(argv=None) -> int:
    args = parse_args(argv)
    workers = default_num_workers() if args.num_workers is None else args.num_workers
    featurizer = MoleBlendFeaturizer(
        conformer=args.conformer,
        max_atoms=args.max_atoms,
        errors=args.errors,
        num_workers=workers,
        seed=args.seed,
        mmff=not args.no_mmff,
        conformer_timeout=args.conformer_timeout,
    )
    if args.input is None:
        source = "embedded ESOL sample (Delaney 2004, via MoleculeNet)"
        with resources.as_file(resources.files("modeling_moleblend").joinpath("data/esol.csv")) as path:
            molecules, labels = read_csv(path, "smiles", args.label_columns or ["logS"], args.limit)
            label_columns = args.label_columns or ["logS"]
    elif args.input.name.lower().endswith((".sdf", ".sdf.gz")):
        source, molecules, labels, label_columns = str(args.input), args.input, None, args.label_columns
    else:
        source = str(args.input)
        molecules, labels = read_csv(args.input, args.smiles_column, args.label_columns, args.limit)
        label_columns = args.label_columns

    print(f"Featurizing {source}: conformer={args.conformer}, {workers} conformer worker(s), errors={args.errors}")
    started = time.perf_counter()
    if labels is not None:
        result = featurizer.featurize(molecules, labels=labels, label_columns=label_columns, progress=True)
    else:
        result = featurizer.featurize(molecules, label_columns=label_columns, progress=True)
    seconds = time.perf_counter() - started
    report = result.report
    atoms = np.array([int(f["num_atoms"]) for f in result.features]) if result.features else np.zeros(1)
    with_3d = sum(bool(f["has_3d"]) for f in result.features)
    print()
    print(report.summary())
    print(
        f"  {report.num_inputs / seconds:,.0f} molecules/s overall; atoms per molecule mean {atoms.mean():.1f}, "
        f"max {atoms.max()}; {with_3d} with 3D coordinates"
    )

    summary = {
        "source": source,
        "settings": featurizer.to_dict(),
        "seconds": seconds,
        "molecules_per_second": report.num_inputs / seconds,
        "num_inputs": report.num_inputs,
        "num_featurized": report.num_featurized,
        "num_skipped": len(report.skipped),
        "num_with_3d": with_3d,
        "atoms_mean": float(atoms.mean()),
        "atoms_max": int(atoms.max()),
        "report": report.to_dict(),
    }
    if not args.no_bad_input_demo:
        print("\nHow bad input is reported (errors='skip'; with errors='raise' the first one raises):")
        bad = MoleBlendFeaturizer(conformer="none", errors="skip", max_atoms=32).featurize(["CCO"] + BAD_INPUT_EXAMPLES)
        print(bad.report.summary())
        summary["bad_input_example"] = bad.report.to_dict()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    out = args.output_dir / "featurize_report.json"
    out.write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nReport written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
