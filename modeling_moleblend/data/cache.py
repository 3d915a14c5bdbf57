"""``MoleculeTable`` in, featurized ``datasets.Dataset`` out: featurize once, cache on disk, reuse.

The table's columns follow the featurizer's batch layout (``tokenization.batch_layout_moleblend``): every stored
key in its narrow storage dtype, matrices flattened (the collator reshapes them by ``num_atoms``), plus ``row``
(the input row), ``smiles`` and, with labels, ``labels`` (float32, NaN = missing).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..files import publish, temporary_folder, write_json_atomic
from ..tokenization import FEATURE_COLUMNS, STORAGE_DTYPES, FeaturizationReport, MoleBlendFeaturizer, SkippedInput
from .tables import MoleculeTable

logger = logging.getLogger(__name__)
CACHE_LAYOUT_VERSION = "v3"  # in the folder name: a cache of another layout is never read as this one


def dataset_features(with_labels: bool, with_descriptors: bool = False):
    """The ``datasets.Features`` of a featurized table, derived from the batch layout (plus the raw
    ``molecule_descriptors`` of a featurizer that computes them)."""
    from datasets import Features, List, Value

    spec = {}
    for name in FEATURE_COLUMNS:
        dtype = STORAGE_DTYPES[name]
        spec[name] = Value(dtype) if name in ("has_3d", "num_atoms") else List(Value(dtype))
    spec["row"] = Value("int64")
    spec["smiles"] = Value("string")
    if with_labels:
        spec["labels"] = List(Value(STORAGE_DTYPES["labels"]))
    if with_descriptors:
        spec["molecule_descriptors"] = List(Value("float64"))
    return Features(spec)


def table_cache_key(table: MoleculeTable, featurizer: MoleBlendFeaturizer) -> str:
    """A digest of the input (file bytes or SMILES), its labels and the featurizer settings that change features."""
    digest = hashlib.sha256()
    if table.records is not None:
        for record in table.records:
            digest.update(record.block.encode())
    else:
        digest.update("\n".join(s or "" for s in table.smiles).encode())
    if table.labels is not None:
        digest.update(np.ascontiguousarray(table.labels).tobytes())
    ignored = ("errors", "num_workers", "auto_map")
    settings = {k: v for k, v in featurizer.to_dict().items() if k not in ignored}
    if not settings.get("molecule_descriptors"):
        settings.pop("molecule_descriptors", None)  # caches made before the option keep their key
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

    The input is featurized ``chunk_size`` molecules at a time. With ``cache_dir``:

    * every chunk becomes a shard on disk as soon as it is done (memory stays bounded for corpora of millions of
      molecules), written into a temporary folder and renamed into place, with its own report;
    * a run killed part-way (conformer generation included) leaves its finished shards, and the next run
      continues from the first missing one;
    * the whole table is reused when the same input is featurized with the same settings (``report.json``,
      written last and atomically, marks it complete);
    * runs on one cache take a file lock: a second run waits for the first and then reads what it wrote; no run
      ever rewrites a shard another has memory-mapped.

    Returns ``(dataset, report)``; the report of a cached table is the saved one.
    """
    if cache_dir is None:
        return _featurize(table, featurizer, None, progress, chunk_size)
    from filelock import FileLock, Timeout

    cache_path = Path(cache_dir) / f"featurized-{CACHE_LAYOUT_VERSION}-{table_cache_key(table, featurizer)}"
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(cache_path.with_name(f".{cache_path.name}.lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.warning("%s: another run is featurizing into this cache; waiting for it", cache_path)
        lock.acquire()
    try:
        if (cache_path / REPORT_NAME).exists():
            report = _report_from_dict(json.loads((cache_path / REPORT_NAME).read_text()))
            spec = dataset_features(table.labels is not None, bool(featurizer.molecule_descriptors))
            return _concatenate(_load_shards(cache_path)[0], spec), report
        return _featurize(table, featurizer, cache_path, progress, chunk_size)
    finally:
        lock.release()


REPORT_NAME = "report.json"
SHARD_REPORT_NAME = "moleblend_report.json"


def _featurize(table, featurizer, cache_path: Path | None, progress, chunk_size):
    from datasets import Dataset, load_from_disk
    from datasets.utils import disable_progress_bars, enable_progress_bars, is_progress_bar_enabled

    with_descriptors = bool(featurizer.molecule_descriptors)
    features_spec = dataset_features(table.labels is not None, with_descriptors)
    parts, reports, done = _load_shards(cache_path) if cache_path is not None else ([], [], 0)
    if done:
        logger.info("%s: %d shards (%d inputs) done by an earlier run, continuing", cache_path, len(reports), done)
    molecules = table.molecules()
    bars = is_progress_bar_enabled()
    disable_progress_bars()  # "Saving the dataset" bars per shard: the featurizer's own bar is the one to show
    try:
        offset = done  # the chunks' input indices count from the start of what they are given
        remaining = molecules[offset:]
        # labels were parsed with the table (a non-numeric one is an error there); they are attached by input row
        chunks = (
            featurizer.featurize_chunks(remaining, chunk_size, progress=progress, errors="skip") if remaining else []
        )
        for number, result in enumerate(chunks, start=len(reports)):
            indices = [offset + i for i in result.input_indices]  # rows of the whole table
            report = _shifted(result.report, offset)
            done += report.num_inputs
            columns: dict[str, list] = {name: [] for name in FEATURE_COLUMNS}
            for features in result.features:
                for name in FEATURE_COLUMNS:
                    value = features[name]
                    columns[name].append(np.asarray(value).ravel() if np.ndim(value) else value.item())
            if with_descriptors:
                columns["molecule_descriptors"] = [f["molecule_descriptors"] for f in result.features]
            columns["row"] = indices
            columns["smiles"] = [table.smiles[i] or "" for i in indices]
            if table.labels is not None:
                columns["labels"] = [table.labels[i] for i in indices]
            part = Dataset.from_dict(columns, features=features_spec)
            result.features = []  # the arrays now live in the table
            reports.append(report)
            if cache_path is not None:
                shard = cache_path / "shards" / f"{number:05d}"
                temporary = temporary_folder(shard)
                shutil.rmtree(temporary, ignore_errors=True)
                temporary.mkdir(parents=True)
                if len(part):
                    part.save_to_disk(str(temporary))
                (temporary / SHARD_REPORT_NAME).write_text(json.dumps(report.to_dict()))
                publish(temporary, shard)
                part = load_from_disk(str(shard)) if len(part) else part  # memory-mapped from disk from now on
            if len(part):
                parts.append(part)
    finally:
        if bars:
            enable_progress_bars()
    report = merge_reports(reports)
    if cache_path is not None:
        write_json_atomic(cache_path / REPORT_NAME, report.to_dict())  # written last: marks completion
    return _concatenate(parts, features_spec), report


def _load_shards(cache_path: Path) -> tuple[list, list[FeaturizationReport], int]:
    """The complete shards of a cache, in order: (datasets, reports, inputs covered). A shard is complete when
    its report is there (it is written last, and the folder renamed into place)."""
    from datasets import load_from_disk

    parts, reports, done = [], [], 0
    folder = cache_path / "shards"
    numbered = sorted(p for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []
    for number, shard in enumerate(numbered):
        if shard.name != f"{number:05d}" or not (shard / SHARD_REPORT_NAME).is_file():
            break  # a gap: everything from here on is redone
        report = _report_from_dict(json.loads((shard / SHARD_REPORT_NAME).read_text()))
        if (shard / "dataset_info.json").is_file():
            parts.append(load_from_disk(str(shard)))
        reports.append(report)
        done += report.num_inputs
    return parts, reports, done


def _shifted(report: FeaturizationReport, offset: int) -> FeaturizationReport:
    """``report`` with input indices counted from the start of the whole table."""
    shifted = FeaturizationReport(num_inputs=report.num_inputs, seconds=report.seconds)
    for bucket in ("skipped", "without_3d", "notes"):
        getattr(shifted, bucket).extend(replace(item, index=item.index + offset) for item in getattr(report, bucket))
    return shifted


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
