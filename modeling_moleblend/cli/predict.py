"""``moleblend predict``: property predictions for every row of a molecule file, in row order."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..data import read_molecule_table
from ..evaluation.predictions import check_output_path, prediction_columns, write_table
from ..evaluation.uncertainty import Calibration, calibrated_probabilities, spread
from ..inference import featurize_rows, load_featurizer, load_property_models, predict_properties, task_names
from ..training.common import set_quiet
from .common import add_inference_arguments

NAME = "predict"
HELP = "predict properties for a CSV/SDF/SMI file with finetuned models (an ensemble: mean and spread)"
DESCRIPTION = """\
Predict molecular properties with finetuned MoleBlend models: one output row per input row, in input order, with
every input column kept (ids, names, SDF titles and tags). Per task T: T_pred (regression, real units) or T_prob
(classification, a probability) is the mean over the models; with several models (a finetune output folder holds
one per seed) also T_pred_std / T_prob_std (sample standard deviation over models) and each model's value. A row
whose molecule cannot be featurized keeps its place, with empty predictions and the reason in the `error` column.
Given a finetune output folder, its calibration (fitted on that run's validation split) applies: T_prob is the
ensemble's temperature-scaled probability, and regression gets a 90% interval, T_pred_lo90 and T_pred_hi90.

examples:
  moleblend predict --model_name_or_path out/ --input new.csv --output predictions.csv
  moleblend predict --model_name_or_path out/model --input new.sdf.gz --output predictions.parquet
  moleblend predict --model_name_or_path me/moleblend-esol --revision v1 --input new.smi --output p.csv.gz
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_inference_arguments(parser, several_models=True)
    parser.add_argument("--output", required=True, type=Path, help=".csv, .csv.gz or .parquet")
    parser.add_argument(
        "--mc_dropout", type=int, default=0, metavar="N",
        help="N stochastic passes per model with dropout on (MC dropout); the spread covers them all",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    set_quiet(args.quiet)
    output = check_output_path(args.output)
    table = read_molecule_table(args.input, args.smiles_column)  # the input is checked before models load
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    models, paths = load_property_models(args.model_name_or_path, args.revision, device)
    featurizer = load_featurizer(paths[0], args.revision)
    result, errors = featurize_rows(
        table, featurizer, args.conformer, args.num_workers, progress=False if args.quiet else None
    )
    config = models[0].config
    tasks = task_names(config)
    passes = max(args.mc_dropout, 1)
    logits = np.full((len(models) * passes, len(table), len(tasks)), np.nan)
    if result.features:
        logits[:, result.input_indices] = predict_properties(
            models, result.features, args.batch_size, probabilities=False, progress=not args.quiet,
            mc_samples=args.mc_dropout,
        )  # fmt: skip
    calibration = Calibration.load(args.model_name_or_path[0]) if len(args.model_name_or_path) == 1 else None
    center, interval = None, None
    if config.problem_type == "multi_label_classification":
        values = 1 / (1 + np.exp(-logits))
        if calibration is not None and args.mc_dropout == 0:  # the run's ensemble, calibrated on its validation
            center = calibrated_probabilities(logits.mean(axis=0), calibration)
    else:
        values = logits
        if calibration is not None and args.mc_dropout == 0 and len(models) > 1:
            scale = np.array([np.nan if v is None else v for v in calibration.interval_scale])
            mean, std = values.mean(axis=0), spread(values)
            interval = (mean - scale * std, mean + scale * std, calibration.coverage)
    members = [_member_name(path, m) for m, path in enumerate(paths)] if args.mc_dropout == 0 else None
    columns = {"row": list(range(len(table))), **table.columns}
    columns.setdefault(args.smiles_column, [s or "" for s in table.smiles])
    write_table(
        output, prediction_columns(columns, values, tasks, config.problem_type, members, errors, center, interval)
    )
    print(
        f"{len(table)} rows -> {output}: {len(result.features)} predicted, {len(errors)} with an error "
        f"(empty prediction, reason in the 'error' column); {len(models)} model(s), tasks {tasks}"
    )
    return 0


def _member_name(path: str, index: int) -> str:
    """``seed0`` for ``.../seeds/seed_0/model``, else ``model0``."""
    parent = Path(path).parent.name
    return parent.replace("_", "") if parent.startswith("seed_") else f"model{index}"
