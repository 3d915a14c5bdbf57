#!/usr/bin/env python
"""Predict molecular properties with finetuned MoleBlend models: CSV or SDF in, CSV out (one row per input row).

    python scripts/predict.py --model_name_or_path out/model --input new.csv --output predictions.csv
    python scripts/predict.py --model_name_or_path out/seeds/seed_0/model out/seeds/seed_1/model \\
        out/seeds/seed_2/model --input new.sdf --output predictions.csv      # mean and spread over seeds

Regression predictions are in the label's real units; classification predictions are probabilities. With
several models, each task gets the mean, the standard deviation over models and every model's value. A
molecule that cannot be featurized keeps its row, with empty predictions and the reason in the `error` column.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch

from modeling_moleblend import MoleBlendFeaturizer, MoleBlendForPropertyPrediction
from modeling_moleblend.inference import predict_properties
from modeling_moleblend.molecule_data import featurize_rows


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_name_or_path", nargs="+", required=True, help="one or more finetuned folders / Hub ids")
    p.add_argument("--revision", default=None, help="Hub revision for every model")
    p.add_argument("--input", required=True, type=Path, help="CSV (.csv/.csv.gz) or SDF (.sdf/.sdf.gz)")
    p.add_argument("--smiles_column", default="smiles")
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument(
        "--conformer",
        default=None,
        choices=["auto", "input", "generate", "none"],
        help="override the saved featurizer's conformer policy",
    )
    p.add_argument("--num_workers", type=int, default=None, help="conformer workers (default: the saved value)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    models = [
        MoleBlendForPropertyPrediction.from_pretrained(path, revision=args.revision).to(device).eval()
        for path in args.model_name_or_path
    ]
    tasks = [models[0].config.id2label[i] for i in range(models[0].config.num_labels)]
    for path, model in zip(args.model_name_or_path[1:], models[1:]):
        other = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if other != tasks:
            raise SystemExit(f"{path} predicts {other}, but {args.model_name_or_path[0]} predicts {tasks}")
    featurizer = MoleBlendFeaturizer.from_pretrained(args.model_name_or_path[0], revision=args.revision)
    table, result, errors = featurize_rows(args.input, featurizer, args.smiles_column, args.conformer, args.num_workers)
    values = predict_properties(models, result.features, args.batch_size) if result.features else None
    position = {row: k for k, row in enumerate(result.input_indices)}

    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["row", "smiles"]
        for task in tasks:
            header.append(task)
            if len(models) > 1:
                header += [f"{task}_std"] + [f"{task}_model{m}" for m in range(len(models))]
        writer.writerow(header + ["error"])
        for row in range(len(table)):
            line = [row, table.smiles[row] or ""]
            k = position.get(row)
            for t in range(len(tasks)):
                if k is None:
                    line += [""] * (1 + (len(models) + 1 if len(models) > 1 else 0))
                    continue
                per_model = values[:, k, t]
                line.append(f"{per_model.mean():.6g}")
                if len(models) > 1:
                    line += [f"{per_model.std():.6g}"] + [f"{v:.6g}" for v in per_model]
            writer.writerow(line + [errors.get(row, "")])
    print(
        f"{len(table)} rows -> {args.output}: {len(result.features)} predicted, {len(errors)} with an error "
        f"(empty prediction, reason in the 'error' column); {len(models)} model(s), tasks {tasks}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
