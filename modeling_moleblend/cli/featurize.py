"""``moleblend featurize``: molecules in, the model's relation tensors out (a ``datasets`` folder) with a report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..data import featurize_table, read_molecule_table
from ..tokenization import CONFORMER_POLICIES, MoleBlendFeaturizer
from ..tokenization.conformers_moleblend import default_num_workers
from ..training.common import set_quiet

NAME = "featurize"
HELP = "featurize molecules (2D relations, 3D from the file or generated) into a datasets folder, with a report"
DESCRIPTION = """\
Featurize a molecule file with MoleBlendFeaturizer: every row is read, every molecule that can be featurized is
written to OUTPUT_DIR/features (a datasets folder: datasets.load_from_disk; one row per molecule with its input
`row`, flattened arrays in the layout MoleBlendCollator pads), and every skipped input is listed with its reason
in OUTPUT_DIR/featurization_report.json (molecules/s, atoms, 3D).

examples:
  moleblend featurize --input my.csv --smiles_column smiles --label_columns y --conformer none --output_dir feats/
  moleblend featurize --input poses.sdf.gz --conformer input --output_dir feats/
"""
BAD_INPUT_EXAMPLES = ["c1ccccc1C(=O", "N(C)(C)(C)(C)C", "", "*CC(=O)O", "C" * 40]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("input")
    data.add_argument("--input", required=True, type=Path, help="CSV/TSV/SMI (optionally .gz), SDF (.sdf, .sdf.gz)")
    data.add_argument("--smiles_column", default="smiles", help="SMILES column of a table")
    data.add_argument("--label_columns", nargs="*", default=None, help="columns / SDF tags stored as labels")
    options = parser.add_argument_group("featurizer")
    options.add_argument("--conformer", default="auto", choices=CONFORMER_POLICIES, help="3D source")
    options.add_argument("--num_workers", type=int, default=None, help="conformer workers (default: all cores)")
    options.add_argument("--max_atoms", type=int, default=512, help="heavy atoms; larger molecules are skipped")
    options.add_argument("--seed", type=int, default=0, help="conformer-generation seed")
    options.add_argument("--no_mmff", action="store_true", help="keep raw ETKDG geometries (faster)")
    options.add_argument("--conformer_timeout", type=float, default=60.0, help="seconds per molecule")
    out = parser.add_argument_group("output")
    out.add_argument("--output_dir", required=True, type=Path, help="features/ and featurization_report.json")
    out.add_argument("--bad_input_demo", action="store_true", help="also show how bad inputs are reported")
    out.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    set_quiet(args.quiet)
    table = read_molecule_table(args.input, args.smiles_column, args.label_columns)
    workers = default_num_workers() if args.num_workers is None else args.num_workers
    featurizer = MoleBlendFeaturizer(
        conformer=args.conformer,
        max_atoms=args.max_atoms,
        num_workers=workers,
        seed=args.seed,
        mmff=not args.no_mmff,
        conformer_timeout=args.conformer_timeout,
    )
    if not args.quiet:
        print(f"Featurizing {args.input} ({len(table)} rows): conformer={args.conformer}, {workers} worker(s)")
    dataset, report = featurize_table(table, featurizer, progress=False if args.quiet else None)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    dataset.save_to_disk(str(args.output_dir / "features"))
    atoms = np.asarray(dataset["num_atoms"]) if len(dataset) else np.zeros(1, dtype=int)
    with_3d = int(np.sum(dataset["has_3d"])) if len(dataset) else 0
    seconds = max(report.seconds, 1e-9)
    summary = {
        "source": str(args.input),
        "settings": featurizer.to_dict(),
        "seconds": report.seconds,
        "molecules_per_second": report.num_inputs / seconds,
        "num_inputs": report.num_inputs,
        "num_featurized": report.num_featurized,
        "num_skipped": len(report.skipped),
        "num_with_3d": with_3d,
        "atoms_mean": float(atoms.mean()),
        "atoms_max": int(atoms.max()),
        "label_values": table.label_maps,
        "report": report.to_dict(),
    }
    print(report.summary())
    print(
        f"  {summary['molecules_per_second']:,.0f} molecules/s; atoms per molecule mean {atoms.mean():.1f}, "
        f"max {atoms.max()}; {with_3d} with 3D coordinates"
    )
    if args.bad_input_demo:
        print("\nHow bad input is reported (errors='skip'; with errors='raise' the first one raises):")
        bad = MoleBlendFeaturizer(conformer="none", errors="skip", max_atoms=32).featurize(["CCO"] + BAD_INPUT_EXAMPLES)
        print(bad.report.summary())
        summary["bad_input_example"] = bad.report.to_dict()
    path = args.output_dir / "featurization_report.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    print(f"features: {args.output_dir / 'features'} (datasets.load_from_disk); report: {path}")
    return 0
