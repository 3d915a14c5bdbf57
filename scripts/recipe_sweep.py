#!/usr/bin/env python
"""Compare finetuning recipes on validation: one `moleblend finetune` per (data set, arm), the same split and seeds.

    python scripts/recipe_sweep.py --data_dir path/to/moleculenet_csvs --datasets bbbp lipophilicity \\
        --arm default= --arm mean="--readout mean" \\
        --arm concat_lr5e-4="--readout graph_token+mean --learning_rate 5e-4" \\
        --seeds 0 --epochs 30 --output_dir runs/recipe

Arms are NAME="extra finetune arguments". A run whose results.json exists is not redone (the sweep resumes).
Decisions are made on the validation column; test is printed beside it only to be reported. Writes
OUTPUT_DIR/sweep.json and OUTPUT_DIR/sweep.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmark_finetune import MOLECULENET  # noqa: E402  (the data sets' files and labels, one table)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", type=Path, required=True)
    p.add_argument("--datasets", nargs="+", default=list(MOLECULENET), choices=list(MOLECULENET))
    p.add_argument("--arm", action="append", default=[], help='NAME="extra finetune arguments" (repeat)')
    p.add_argument("--seeds", nargs="+", default=["0"])
    p.add_argument("--epochs", default="30")
    p.add_argument("--patience", default="8")
    p.add_argument("--output_dir", type=Path, required=True)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    arms = [spec.split("=", 1) for spec in args.arm] or [["default", ""]]
    rows = []
    for dataset in args.datasets:
        file, label = MOLECULENET[dataset]
        for name, extra in arms:
            out = args.output_dir / dataset / name
            if not (out / "results.json").is_file():
                command = [sys.executable, "-m", "modeling_moleblend.cli", "finetune", "--train_file"]
                command += [str(args.data_dir / file), "--label_columns", label, "--seeds", *args.seeds]
                command += ["--num_train_epochs", args.epochs, "--early_stopping_patience", args.patience]
                command += ["--baseline_estimators", "0", "--quiet", "--overwrite_output_dir"]
                command += ["--data_cache_dir", str(args.output_dir / "cache"), "--output_dir", str(out)]
                command += shlex.split(extra)
                started = time.perf_counter()
                completed = subprocess.run(command, capture_output=True, text=True)
                if completed.returncode != 0:
                    print(f"{dataset} {name}: failed\n{completed.stderr[-2000:]}", flush=True)
                    continue
                print(f"{dataset} {name}: {time.perf_counter() - started:.0f} s", flush=True)
            results = json.loads((out / "results.json").read_text())
            metric = results["data"].get("selection_metric", "rmse")
            aggregate = results["aggregate"]
            epochs = [r["best_epoch"] for r in results["per_seed"]]
            rows.append({
                "dataset": dataset, "arm": name, "extra": extra, "metric": metric, "best_epochs": epochs,
                "validation": aggregate["validation"][metric], "test": aggregate["test"][metric],
                "wall_time_s": results["wall_time_s"],
            })  # fmt: skip
            write_tables(args.output_dir, rows)
    return 0


def write_tables(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.json").write_text(json.dumps(rows, indent=2))
    lines = ["| data | arm | metric | validation | test | best epochs | wall (s) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        v, t = r["validation"], r["test"]
        lines.append(
            f"| {r['dataset']} | {r['arm']} | {r['metric']} | {v['mean']:.3f} +- {v['std']:.3f} | "
            f"{t['mean']:.3f} +- {t['std']:.3f} | {r['best_epochs']} | {r['wall_time_s']:.0f} |"
        )
    (folder / "sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-1:]), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
