"""``MoleculeTable`` in, featurized ``datasets.Dataset`` out: featurize once, cache on disk, reuse.

The table's columns follow the featurizer's batch layout (``tokenization.batch_layout_moleblend``): every stored
key in its narrow storage dtype, matrices flattened (the collator reshapes them by ``num_atoms``), plus ``row``
(the input row), ``smiles`` and, with labels, ``labels`` (float32, NaN = missing).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..tokenization import FEATURE_COLUMNS, STORAGE_DTYPES, FeaturizationReport, MoleBlendFeaturizer, SkippedInput
from .tables import MoleculeTable

CACHE_LAYOUT_VERSION = "v3"  # in the folder name: a cache of another layout is never read as this one


def dataset_features(with_labels: bool):
    """The ``datasets.Features`` of a featurized table, derived from the batch layout."""
    from datasets import Features, List, Value

    spec = {}
    for name in FEATURE_COLUMNS:
        dtype = STORAGE_DTYPES[name]
        spec[name] = Value(dtype) if name in ("has_3d", "num_atoms") else List(Value(dtype))
    spec["row"] = Value("int64")
    spec["smiles"] = Value("string")
    if with_labels:
        spec["labels"] = List(Value(STORAGE_DTYPES["labels"]))
    return Features(spec)


def table_cache_key(table: MoleculeTable, featurizer: MoleBlendFeaturizer) -> str:
    """A digest of the input (file bytes or SMILES), its labels and the featurizer settings that change features."""
    digest = hashlib.sha256()
    if table.records is not None:
        digest.update(Path(table.source).read_bytes())
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
    """Featurize every row (``errors="skip"``: bad rows are reported) into a ``datasets.Dataset``.

    The input is featurized ``chunk_size`` molecules at a time. With ``cache_dir`` every chunk is written to disk
    as a shard as soon as it is done (memory stays bounded for corpora of millions of molecules), and the whole
    table is reused when the same input is featurized with the same settings. Returns ``(dataset, report)``; the
    report of a cached table is the saved one.
    """
    from datasets import Dataset, load_from_disk
    from datasets.utils import disable_progress_bars, enable_progress_bars, is_progress_bar_enabled

    key = table_cache_key(table, featurizer)
    cache_path = Path(cache_dir) / f"featurized-{CACHE_LAYOUT_VERSION}-{key}" if cache_dir else None
    if cache_path is not None and (cache_path / "report.json").exists():
        report = _report_from_dict(json.loads((cache_path / "report.json").read_text()))
        shards = sorted((cache_path / "shards").iterdir()) if (cache_path / "shards").is_dir() else []
        parts = [load_from_disk(str(s)) for s in shards]
        return _concatenate(parts, dataset_features(table.labels is not None)), report

    features_spec = dataset_features(table.labels is not None)
    bars = is_progress_bar_enabled()
    disable_progress_bars()  # "Saving the dataset" bars per shard: the featurizer's own bar is the one to show
    try:
        # labels were parsed with the table (a non-numeric one is an error there); they are attached by input row
        chunks = featurizer.featurize_chunks(table.molecules(), chunk_size, progress=progress, errors="skip")
        parts, reports = [], []
        for number, result in enumerate(chunks):
            reports.append(result.report)
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
            result.features = []  # the arrays now live in the table
            if len(part) == 0:
                continue  # every molecule of the chunk was skipped (and reported)
            if cache_path is not None:
                shard = cache_path / "shards" / f"{number:05d}"
                part.save_to_disk(str(shard))
                part = load_from_disk(str(shard))  # memory-mapped from disk from now on
            parts.append(part)
    finally:
        if bars:
            enable_progress_bars()
    report = merge_reports(reports)
    if cache_path is not None:
        cache_path.mkdir(parents=True, exist_ok=True)
        (cache_path / "report.json").write_text(json.dumps(report.to_dict()))  # written last: marks completion
    return _concatenate(parts, features_spec), report


def _concatenate(parts: list, features):
    from datasets import Dataset, concatenate_datasets

    return concatenate_datasets(parts) if parts else Dataset.from_dict({k: [] for k in features}, features=features)


def merge_reports(reports) -> FeaturizationReport:
    merged = FeaturizationReport()
    for report in reports:
        merged.num_inputs += report.num_inputs
        merged.seconds += report.seconds
        for bucket in ("skipped", "without_3d", "notes"):
            getattr(merged, bucket).extend(getattr(report, bucket))
    return merged


def _report_from_dict(data: dict) -> FeaturizationReport:
    report = FeaturizationReport(num_inputs=data["num_inputs"], seconds=data.get("seconds", 0.0))
    for name in ("skipped", "without_3d", "notes"):
        getattr(report, name).extend(SkippedInput(**item) for item in data.get(name, []))
    return report
