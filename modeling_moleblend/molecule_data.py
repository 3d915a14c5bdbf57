"""Molecule tables in, featurized ``datasets`` tables out: what the finetuning and prediction scripts share.

* ``read_molecule_table`` reads a CSV (SMILES column + label columns), an SDF (label tags), or a ``datasets``
  data set saved with ``save_to_disk``, keeping every input row (its index is the row number).
* ``featurize_table`` featurizes once and caches the result on disk as a ``datasets`` table (flattened arrays,
  narrow dtypes), keyed by the input's content and the featurizer settings. Invalid molecules are counted and
  listed in the report, never silently dropped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .tokenization import FeaturizationReport, MoleBlendFeaturizer
from .tokenization.feature_extraction_moleblend import parse_label

# Columns of a featurized table; matrices are stored flattened (the collator reshapes them by num_atoms).
FEATURE_COLUMNS = ("atom_ids", "degree", "spd", "path_bonds", "bond_features", "coordinates", "has_3d", "num_atoms")


@dataclass
class MoleculeTable:
    """Every input row of a data set: SMILES (or SDF records), labels [rows, tasks] with NaN, optional split."""

    source: str
    smiles: list[str | None]  # None for SDF records RDKit could not read
    labels: np.ndarray | None
    label_names: list[str]
    split_values: list[str] | None = None
    sdf_path: Path | None = None
    extra_columns: dict[str, list] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.smiles)


def _labels_from_rows(rows: list[dict], label_columns: list[str], describe) -> np.ndarray:
    values = np.full((len(rows), len(label_columns)), np.nan, dtype=np.float32)
    for i, row in enumerate(rows):
        for j, column in enumerate(label_columns):
            values[i, j] = parse_label(row.get(column), i, describe(i, row), column)
    return values


def read_molecule_table(
    path: str | Path,
    smiles_column: str = "smiles",
    label_columns: list[str] | None = None,
    split_column: str | None = None,
) -> MoleculeTable:
    """Read a ``.csv`` (``.csv.gz``), a ``.sdf`` (``.sdf.gz``), or a folder written by ``Dataset.save_to_disk``."""
    path = Path(path)
    name = path.name.lower()
    label_columns = list(label_columns or [])
    if name.endswith((".sdf", ".sdf.gz")):
        return _read_sdf(path, label_columns, split_column)
    if path.is_dir():
        from datasets import load_from_disk

        dataset = load_from_disk(str(path))
        rows = dataset.to_list()
    elif name.endswith((".csv", ".csv.gz", ".tsv", ".txt")):
        import gzip

        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", newline="") as handle:
            delimiter = "\t" if ".tsv" in name else ","
            rows = list(csv.DictReader(handle, delimiter=delimiter))
    else:
        raise ValueError(f"{path}: expected a .csv, .sdf(.gz) file or a datasets folder")
    if not rows:
        raise ValueError(f"{path}: no rows")
    columns = list(rows[0])
    for column in [smiles_column, *label_columns] + ([split_column] if split_column else []):
        if column not in columns:
            raise ValueError(f"{path}: no column {column!r}; the columns are {columns}")
    smiles = [str(row[smiles_column]) if row[smiles_column] is not None else "" for row in rows]
    labels = None
    if label_columns:
        labels = _labels_from_rows(rows, label_columns, lambda i, row: str(row[smiles_column]))
    split_values = [str(row[split_column]) for row in rows] if split_column else None
    return MoleculeTable(str(path), smiles, labels, label_columns, split_values)


def _read_sdf(path: Path, label_columns: list[str], split_column: str | None) -> MoleculeTable:
    from rdkit import Chem, rdBase

    from .tokenization.feature_extraction_moleblend import _parse_mol_block, _sdf_properties, _sdf_records

    smiles, rows = [], []
    with rdBase.BlockLogs():
        for _, _, block in _sdf_records(path):
            mol = _parse_mol_block(block)
            smiles.append(Chem.MolToSmiles(Chem.RemoveHs(mol)) if mol is not None else None)
            rows.append(_sdf_properties(block))
    if not rows:
        raise ValueError(f"{path}: no records")
    labels = None
    if label_columns:
        labels = _labels_from_rows(rows, label_columns, lambda i, row: f"{path.name} record {i}")
    split_values = [str(row.get(split_column, "")) for row in rows] if split_column else None
    return MoleculeTable(str(path), smiles, labels, label_columns, split_values, sdf_path=path)


def featurize_rows(
    path: str | Path,
    featurizer: MoleBlendFeaturizer,
    smiles_column: str = "smiles",
    conformer: str | None = None,
    num_workers: int | None = None,
):
    """Read a CSV or SDF and featurize every row, skipping (and naming) the bad ones, for prediction-style
    scripts that must write one output row per input row. Returns ``(table, result, errors)`` where ``errors``
    maps an input row to "ErrorType: reason"."""
    overrides: dict = {"errors": "skip"}
    if conformer:
        overrides["conformer"] = conformer
    if num_workers is not None:
        overrides["num_workers"] = num_workers
    table = read_molecule_table(path, smiles_column)
    inputs = table.sdf_path if table.sdf_path is not None else table.smiles
    result = featurizer.featurize(inputs, **overrides)
    errors = {item.index: f"{item.error_type}: {item.reason}" for item in result.report.skipped}
    return table, result, errors


def _table_key(table: MoleculeTable, featurizer: MoleBlendFeaturizer) -> str:
    digest = hashlib.sha256()
    if table.sdf_path is not None:
        digest.update(table.sdf_path.read_bytes())
    else:
        digest.update("\n".join(s or "" for s in table.smiles).encode())
    if table.labels is not None:
        digest.update(np.ascontiguousarray(table.labels).tobytes())
    settings = {k: v for k, v in featurizer.to_dict().items() if k not in ("errors", "num_workers", "auto_map")}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:20]


def featurize_table(
    table: MoleculeTable,
    featurizer: MoleBlendFeaturizer,
    cache_dir: str | Path | None = None,
    progress: bool | None = None,
    chunk_size: int = 20_000,
):
    """Featurize every row (``errors="skip"``: bad rows are reported) into a ``datasets.Dataset`` with a ``row``
    column (the input row) and, with labels, a float ``labels`` column (NaN = missing).

    The input is featurized ``chunk_size`` molecules at a time. With ``cache_dir`` every chunk is written to disk
    as a shard as soon as it is done (memory stays bounded for corpora of millions of molecules), and the whole
    table is reused when the same input is featurized with the same settings. Returns ``(dataset, report)``; the
    report of a cached table is the saved one.
    """
    from datasets import Dataset, concatenate_datasets, load_from_disk

    # "v2": sharded layout; the version in the name keeps an older layout from ever being read as this one
    cache_path = Path(cache_dir) / f"featurized-v2-{_table_key(table, featurizer)}" if cache_dir else None
    if cache_path is not None and (cache_path / "report.json").exists():
        report_dict = json.loads((cache_path / "report.json").read_text())
        shards = sorted((cache_path / "shards").iterdir())
        return concatenate_datasets([load_from_disk(str(s)) for s in shards]), _report_from_dict(report_dict)

    inputs = table.sdf_path if table.sdf_path is not None else table.smiles
    features_spec = _features(table.labels is not None)
    # labels were parsed with the table (a non-numeric one is an error there); they are attached by input row
    chunks = featurizer.featurize_chunks(inputs, chunk_size, progress=progress, errors="skip")
    parts, reports = [], []
    for number, result in enumerate(chunks):
        reports.append(result)
        columns: dict[str, list] = {name: [] for name in FEATURE_COLUMNS}
        for features in result.features:
            for name in FEATURE_COLUMNS:
                value = features[name]
                columns[name].append(np.asarray(value).ravel() if np.ndim(value) else value.item())
        columns["row"] = list(result.input_indices)
        columns["smiles"] = [table.smiles[i] or "" for i in result.input_indices]
        if table.labels is not None:
            columns["labels"] = [table.labels[i] for i in result.input_indices]
        part = Dataset.from_dict(columns, features=features_spec)
        if cache_path is not None:
            shard = cache_path / "shards" / f"{number:05d}"
            part.save_to_disk(str(shard))
            part = load_from_disk(str(shard))  # memory-mapped from disk from now on
        parts.append(part)
        result.features = []  # the arrays now live in the table
    report = _merge_reports(reports)
    if cache_path is not None:
        (cache_path / "report.json").write_text(json.dumps(report.to_dict()))  # written last: marks completion
    return concatenate_datasets(parts), report


def _merge_reports(results) -> FeaturizationReport:
    report = FeaturizationReport()
    for result in results:
        report.num_inputs += result.report.num_inputs
        report.seconds += result.report.seconds
        for bucket in ("skipped", "without_3d", "notes"):
            getattr(report, bucket).extend(getattr(result.report, bucket))
    return report


def _features(with_labels: bool):
    from datasets import Features, List, Value

    spec = {
        "atom_ids": List(Value("int16")),
        "degree": List(Value("int16")),
        "spd": List(Value("int16")),
        "path_bonds": List(Value("int16")),
        "bond_features": List(Value("int16")),
        "coordinates": List(Value("float32")),
        "has_3d": Value("bool"),
        "num_atoms": Value("int64"),
        "row": Value("int64"),
        "smiles": Value("string"),
    }
    if with_labels:
        spec["labels"] = List(Value("float32"))
    return Features(spec)


def _report_from_dict(data: dict) -> FeaturizationReport:
    from .tokenization import SkippedInput

    report = FeaturizationReport(num_inputs=data["num_inputs"], seconds=data.get("seconds", 0.0))
    for name in ("skipped", "without_3d", "notes"):
        getattr(report, name).extend(SkippedInput(**item) for item in data.get(name, []))
    return report


def label_statistics(labels: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-task mean and std over non-NaN values (std 1.0 where a task has fewer than two values or no spread)."""
    means, stds = [], []
    for column in np.asarray(labels, dtype=np.float64).T:
        values = column[~np.isnan(column)]
        mean = float(values.mean()) if len(values) else 0.0
        std = float(values.std()) if len(values) > 1 else 1.0
        means.append(mean)
        stds.append(std if std > 0 and not math.isnan(std) else 1.0)
    return means, stds


def infer_problem_type(labels: np.ndarray) -> str:
    """ "multi_label_classification" when every non-NaN label is 0 or 1, else "regression"."""
    values = np.asarray(labels, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) and np.isin(values, (0.0, 1.0)).all():
        return "multi_label_classification"
    return "regression"
