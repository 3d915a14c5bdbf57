"""Prediction tables: one naming scheme for every file that holds predictions (``moleblend predict``'s output and
a finetuning run's ``predictions_test.csv``), written as CSV (``.csv``, ``.csv.gz``) or Parquet.

Per task ``T``: ``T_pred`` (regression, real units) or ``T_prob`` (classification, a probability) holds the mean
over models; with several models (an ensemble: a finetune run's seeds) also ``T_pred_std`` / ``T_prob_std`` (the
sample standard deviation over models, ddof=1) and one column per model, ``T_pred_seed0`` ... . The input's own
columns are kept as they are, so the prediction of ``logS`` never overwrites a ``logS`` column.
"""

from __future__ import annotations

import csv
import gzip
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..data.tables import InputError

logger = logging.getLogger(__name__)
OUTPUT_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def prediction_stem(task: str, problem_type: str | None) -> str:
    """``T_prob`` for a classification task (the column holds a probability), ``T_pred`` otherwise."""
    return f"{task}_prob" if problem_type and "classification" in problem_type else f"{task}_pred"


def check_output_path(path: str | Path) -> Path:
    """``path`` if its suffix is one this module writes, else an ``InputError`` (checked before any work)."""
    path = Path(path)
    if not path.name.lower().endswith(OUTPUT_SUFFIXES):
        raise InputError(f"{path}: the output must end in .csv, .csv.gz or .parquet")
    return path


def prediction_columns(
    input_columns: Mapping[str, Sequence],
    predictions: np.ndarray,
    tasks: Sequence[str],
    problem_type: str | None,
    members: Sequence[str] | None,
    errors: Mapping[int, str] | None = None,
    center: np.ndarray | None = None,
    interval: tuple[np.ndarray, np.ndarray, float] | None = None,
) -> dict[str, list]:
    """The table to write: the input's columns, then per task the mean (and with several members the spread and
    each member's value), then ``error`` (when ``errors`` is given).

    Args:
        input_columns: column name -> one value per row.
        predictions: ``[members, rows, tasks]``, NaN for rows without a prediction.
        tasks: the task names.
        problem_type: the model config's.
        members: a name per member, e.g. ``["seed0", "seed1"]`` (None: no per-member columns, e.g. MC dropout).
        errors: row -> reason, for rows that could not be predicted.
        center: ``[rows, tasks]`` to write as ``T_pred`` / ``T_prob`` instead of the members' mean (e.g. the
            calibrated probability of an ensemble).
        interval: ``(low, high, coverage)`` ``[rows, tasks]`` each: written as ``T_pred_lo90`` / ``T_pred_hi90``.
    """
    table: dict[str, list] = {}
    predicted: dict[str, list] = {}
    values = np.asarray(predictions, dtype=np.float64)
    for t, task in enumerate(tasks):
        stem = prediction_stem(task, problem_type)
        per_model = values[:, :, t]
        with warnings.catch_warnings():  # rows without a prediction are all-NaN: their mean is NaN, quietly
            warnings.simplefilter("ignore", RuntimeWarning)
            predicted[stem] = list(per_model.mean(axis=0) if center is None else center[:, t])
            if len(per_model) > 1:
                predicted[f"{stem}_std"] = list(per_model.std(axis=0, ddof=1))
            if interval is not None:
                low, high, coverage = interval
                predicted[f"{stem}_lo{round(100 * coverage)}"] = list(low[:, t])
                predicted[f"{stem}_hi{round(100 * coverage)}"] = list(high[:, t])
            if members and len(members) > 1:
                for m, member in enumerate(members):
                    predicted[f"{stem}_{member}"] = list(per_model[m])
    for name, column in input_columns.items():
        if name in predicted or name == "error":
            logger.warning("the input column %r is written as %r (the name is a prediction column's)", name, name)
            name = f"{name}_input"
        table[name] = list(column)
    table.update(predicted)
    if errors is not None:
        rows = values.shape[1]
        table["error"] = [errors.get(row, "") for row in range(rows)]
    return table


class TableWriter:
    """Writes a table chunk by chunk (CSV, CSV.gz or Parquet by ``path``'s suffix), so that the predictions for a
    library of millions of molecules never sit in memory at once. The first chunk fixes the columns."""

    def __init__(self, path: str | Path):
        self.path = check_output_path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.parquet = self.path.name.lower().endswith(".parquet")
        self.names: list[str] | None = None
        self._handle = self._writer = self._schema = None

    def write(self, columns: Mapping[str, Sequence]) -> None:
        if self.names is None:
            self.names = list(columns)
        elif list(columns) != self.names:
            raise ValueError(f"chunk columns {list(columns)} differ from the first chunk's {self.names}")
        if self.parquet:
            self._write_parquet(columns)
        else:
            self._write_csv(columns)

    def _write_csv(self, columns: Mapping[str, Sequence]) -> None:
        if self._handle is None:
            opener = gzip.open if self.path.name.lower().endswith(".gz") else open
            self._handle = opener(self.path, "wt", newline="")
            self._writer = csv.writer(self._handle)
            self._writer.writerow(self.names)
        rows = len(next(iter(columns.values()))) if columns else 0
        for row in range(rows):
            self._writer.writerow([_cell(columns[name][row]) for name in self.names])

    def _write_parquet(self, columns: Mapping[str, Sequence]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = {}
        for name in self.names:
            values = list(columns[name])
            numeric = self._schema is not None and pa.types.is_floating(self._schema.field(name).type)
            if numeric or (
                self._schema is None and values and all(isinstance(v, (float, np.floating)) for v in values)
            ):
                arrays[name] = pa.array(
                    [None if v is None or math.isnan(v) else float(v) for v in values], pa.float64()
                )
            else:
                arrays[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
        table = pa.table(arrays) if self._schema is None else pa.table(arrays, schema=self._schema)
        if self._writer is None:
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self.path, self._schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self.parquet and self._writer is not None:
            self._writer.close()
        elif self._handle is not None:
            self._handle.close()
        self._handle = self._writer = None

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_table(path: str | Path, columns: Mapping[str, Sequence]) -> Path:
    """Write ``columns`` (name -> values, equal lengths) to ``path``: CSV (floats to 6 significant digits, NaN
    empty) or Parquet (floats as float64 with nulls, everything else as text)."""
    with TableWriter(path) as writer:
        writer.write(columns)
    return writer.path


def concatenate_files(parts: Sequence[Path], path: str | Path) -> Path:
    """Join files written by ``TableWriter`` (the same columns), in order, into ``path``."""
    path = check_output_path(path)
    if path.name.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        writer = None
        for part in parts:
            table = pq.read_table(part)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
        return path
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "wt", newline="") as out:
        for number, part in enumerate(parts):
            with opener(part, "rt", newline="") as handle:
                header = handle.readline()
                if number == 0:
                    out.write(header)
                for line in handle:
                    out.write(line)
    return path


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(float(value)) else f"{float(value):.6g}"
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)
