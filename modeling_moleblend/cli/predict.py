"""``moleblend predict``: property predictions for every row of a molecule file, in row order."""

from __future__ import annotations

import argparse
import itertools
import shutil
from pathlib import Path

import numpy as np
import torch

from ..data.tables import iter_molecule_tables
from ..evaluation.predictions import (
    TableWriter,
    check_output_path,
    concatenate_files,
    prediction_columns,
    write_table,
)
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
  accelerate launch --num_processes 4 -m modeling_moleblend.cli predict --model_name_or_path out/ \
      --input library.smi.gz --output library_predictions.parquet      # data-parallel, one output in row order
  (on CPU cores: accelerate launch --multi_gpu --num_processes 2 ...; --cpu alone starts one process)

The input is streamed in chunks (--chunk_size): memory stays that of one chunk, whatever the input's size.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_inference_arguments(parser, several_models=True)
    parser.add_argument("--output", required=True, type=Path, help=".csv, .csv.gz or .parquet")
    parser.add_argument(
        "--chunk_size", type=int, default=10_000, metavar="N",
        help="molecules read, featurized and written at a time (memory is bounded by one chunk)",
    )  # fmt: skip
    parser.add_argument(
        "--mc_dropout", type=int, default=0, metavar="N",
        help="N stochastic passes per model with dropout on (MC dropout); the spread covers them all",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Stream the input in chunks: featurize -> batch by size -> predict -> write in input order. Under
    ``accelerate launch`` each process takes every N-th chunk and writes it to a part file; the main process
    joins the parts in order."""
    from accelerate import PartialState
    from tqdm.auto import tqdm

    set_quiet(args.quiet)
    output = check_output_path(args.output)
    chunks = iter_molecule_tables(args.input, args.smiles_column, chunk_size=args.chunk_size)
    first = next(chunks)  # the input is checked before the models load
    state = PartialState(cpu=args.device == "cpu" or not torch.cuda.is_available())
    device = torch.device(args.device) if args.device else state.device
    models, paths = load_property_models(args.model_name_or_path, args.revision, device)
    featurizer = load_featurizer(paths[0], args.revision)
    calibration = Calibration.load(args.model_name_or_path[0]) if len(args.model_name_or_path) == 1 else None
    members = [_member_name(path, m) for m, path in enumerate(paths)] if args.mc_dropout == 0 else None
    parts_dir = output.with_name(f".{output.name}.parts") if state.num_processes > 1 else None
    if parts_dir is not None and state.is_main_process:
        shutil.rmtree(parts_dir, ignore_errors=True)
        parts_dir.mkdir(parents=True)
    state.wait_for_everyone()
    writer = TableWriter(output) if parts_dir is None else None
    rows = predicted = failed = 0
    bar = tqdm(desc="predicting", unit="mol", disable=args.quiet or not state.is_local_main_process)
    for number, table in enumerate(itertools.chain([first], chunks)):
        rows += len(table)
        if number % state.num_processes != state.process_index:
            continue
        columns, errors = _predict_chunk(table, models, featurizer, members, calibration, args)
        predicted, failed = predicted + len(table) - len(errors), failed + len(errors)
        if writer is not None:
            writer.write(columns)
        else:
            write_table(parts_dir / f"chunk_{number:07d}{_suffix(output)}", columns)
        bar.update(len(table))
    bar.close()
    if writer is not None:
        writer.close()
    state.wait_for_everyone()
    if parts_dir is not None and state.is_main_process:
        concatenate_files(sorted(parts_dir.iterdir()), output)
        shutil.rmtree(parts_dir, ignore_errors=True)
    if state.is_main_process:
        print(
            f"{rows} rows -> {output}: {predicted if parts_dir is None else rows - failed} predicted"
            + (f", {failed} with an error (empty prediction, reason in the 'error' column)" if parts_dir is None
               else " (errors: see the 'error' column)")
            + f"; {len(models)} model(s), tasks {task_names(models[0].config)}"
        )  # fmt: skip
    return 0


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".csv.gz" if name.endswith(".csv.gz") else path.suffix


def _predict_chunk(table, models, featurizer, members, calibration, args) -> tuple[dict, dict]:
    """One chunk's output columns (rows numbered from ``table.first_row``) and its errors."""
    result, errors = featurize_rows(table, featurizer, args.conformer, args.num_workers, progress=False)
    config = models[0].config
    tasks = task_names(config)
    passes = max(args.mc_dropout, 1)
    logits = np.full((len(models) * passes, len(table), len(tasks)), np.nan)
    if result.features:
        logits[:, result.input_indices] = predict_properties(
            models, result.features, args.batch_size, probabilities=False, mc_samples=args.mc_dropout
        )
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
    columns = {"row": list(range(table.first_row, table.first_row + len(table))), **table.columns}
    columns.setdefault(args.smiles_column, [s or "" for s in table.smiles])
    return prediction_columns(columns, values, tasks, config.problem_type, members, errors, center, interval), errors


def _member_name(path: str, index: int) -> str:
    """``seed0`` for ``.../seeds/seed_0/model``, else ``model0``."""
    parent = Path(path).parent.name
    return parent.replace("_", "") if parent.startswith("seed_") else f"model{index}"
