#!/usr/bin/env python
"""Run `moleblend finetune` on several data sets and collect one table (run by hand; hours on a CPU).

    python scripts/benchmark_finetune.py --data_dir path/to/moleculenet_csvs --output_dir outputs/moleculenet
    python scripts/benchmark_finetune.py --runs qm9_gap=qm9_3k.sdf.gz:gap_eV --split random \\
        --input_modality 2d 3d 2d3d --output_dir outputs/qm9

Each run is a separate finetune.py process with the same protocol (split, seeds, epochs); the table (Markdown)
goes to OUTPUT_DIR/benchmark.md and the numbers to OUTPUT_DIR/benchmark.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

MOLECULENET = {
    "esol": ("esol.csv", "logS"),
    "freesolv": ("freesolv.csv", "hydration_free_energy"),
    "lipophilicity": ("lipophilicity.csv", "logD"),
    "bbbp": ("bbbp.csv", "p_np"),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", type=Path, default=None, help="folder with the MoleculeNet CSVs")
    p.add_argument("--datasets", nargs="+", default=list(MOLECULENET), choices=list(MOLECULENET))
    p.add_argument("--runs", nargs="*", default=[], help="extra NAME=FILE:LABEL[,LABEL] runs (CSV or SDF)")
    p.add_argument("--input_modality", nargs="+", default=["2d"], help="one run per modality")
    p.add_argument("--split", default="scaffold")
    p.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    p.add_argument("--epochs", default="50")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="passed on to finetune.py")
    p.add_argument("--output_dir", type=Path, required=True)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    runs = []
    if args.data_dir:
        runs += [
            (name, args.data_dir / file, [label])
            for name, (file, label) in MOLECULENET.items()
            if name in args.datasets
        ]
    for spec in args.runs:
        name, rest = spec.split("=", 1)
        file, labels = rest.rsplit(":", 1)
        runs.append((name, Path(file), labels.split(",")))
    table = []
    for name, file, labels in runs:
        for modality in args.input_modality:
            out = args.output_dir / f"{name}_{modality}"
            command = [
                sys.executable,
                str(Path(__file__).parent / "finetune.py"),
                "--train_file",
                str(file),
                "--label_columns",
                *labels,
                "--split",
                args.split,
                "--seeds",
                *args.seeds,
                "--num_train_epochs",
                args.epochs,
                "--input_modality",
                modality,
                "--output_dir",
                str(out),
                "--overwrite_output_dir",
                "--quiet",
                *args.extra,
            ]
            started = time.perf_counter()
            completed = subprocess.run(command, capture_output=True, text=True)
            (args.output_dir / f"{name}_{modality}.log").write_text(completed.stdout + completed.stderr)
            if completed.returncode != 0:
                print(f"{name} ({modality}) failed: see {args.output_dir / f'{name}_{modality}.log'}")
                continue
            results = json.loads((out / "results.json").read_text())
            row = {
                "name": name,
                "modality": modality,
                "wall_s": time.perf_counter() - started,
                "molecules": results["data"]["num_featurized"],
                "split": results["data"]["split"]["sizes"],
                "test": results["aggregate"]["test"],
                "baseline_test": results["aggregate"].get("baseline_test"),
            }
            table.append(row)
            print(_line(row), flush=True)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "benchmark.json").write_text(json.dumps(table, indent=2))
    lines = [
        "| data | modality | molecules | metric | MoleBlend (test) | RF on Morgan FP (test) | wall time |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_markdown(row) for row in table]
    (args.output_dir / "benchmark.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _metric(row) -> str:
    return "roc_auc" if "roc_auc" in row["test"] else ("mae" if row["name"].startswith("qm9") else "rmse")


def _fmt(stats) -> str:
    return f"{stats['mean']:.3f} +- {stats['std']:.3f}" if stats else "-"


def _line(row) -> str:
    metric = _metric(row)
    baseline = (row["baseline_test"] or {}).get(metric)
    return (
        f"{row['name']} ({row['modality']}): {metric} {_fmt(row['test'][metric])} vs RF {_fmt(baseline)}; "
        f"{row['wall_s']:.0f} s"
    )


def _markdown(row) -> str:
    metric = _metric(row)
    baseline = (row["baseline_test"] or {}).get(metric)
    return (
        f"| {row['name']} | {row['modality']} | {row['molecules']} | {metric} | {_fmt(row['test'][metric])} | "
        f"{_fmt(baseline)} | {row['wall_s'] / 60:.1f} min |"
    )


if __name__ == "__main__":
    sys.exit(main())
