"""Molecule files in, ``MoleculeTable`` out: the one reader of every input format the commands take.

    from modeling_moleblend.data import read_molecule_table

    table = read_molecule_table("data.csv", smiles_column="smiles", label_columns=["logS"])
    table.molecules()      # what MoleBlendFeaturizer takes: SMILES strings, or the SDF's parsed records

Formats (by name): ``.csv``, ``.tsv``, ``.txt`` (comma-separated), ``.smi`` (SMILES, then an optional name, per
line), each optionally ``.gz``; ``.sdf`` / ``.sdf.gz`` (V2000 / V3000; tags are the columns, every record's RDKit
molecule is parsed once here and handed to the featurizer); and a folder written by ``Dataset.save_to_disk``.
Every input row is kept (its index is the row number); a row whose molecule cannot be read is the featurizer's
to report, never dropped here. Labels are parsed by the featurizer's ``parse_label`` (missing, empty, NA or nan
are NaN); a column of two text values (``yes``/``no``, ``active``/``inactive``) is mapped to 0/1 and the mapping is
kept in ``MoleculeTable.label_maps``.
"""

from __future__ import annotations

import csv
import gzip
import logging
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..tokenization import (
    InvalidLabelError,
    SdfRecord,
    check_label_tags,
    parse_label,
    read_sdf_records,
    suggest_name,
)

logger = logging.getLogger(__name__)
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".smi")
SDF_SUFFIXES = (".sdf",)
# text values read as the positive class when a label column holds exactly two texts
POSITIVE_TEXTS = {"1", "yes", "y", "true", "t", "active", "positive", "pos", "p", "+", "toxic", "inhibitor"}


class InputError(ValueError):
    """A problem with an input file or argument that the user fixes: the message names the file and the fix."""


@dataclass
class MoleculeTable:
    """Every input row of a data set.

    Attributes:
        source: the file or folder read.
        smiles: one SMILES per row (for SDF records: RDKit's canonical SMILES, None where the record is unreadable).
        labels: ``[rows, tasks]`` float32 with NaN for missing labels, or None without label columns.
        label_names: the label columns (SDF tags).
        split_values: the split column's text per row, or None.
        records: for SDF input, the parsed records (the featurizer's input); None otherwise.
        columns: every input column as text, in file order (the SDF title as ``title``): kept in outputs.
        label_maps: per label column mapped from text, ``{0: "inactive", 1: "active"}``.
        notes: what the reader had to say about the file (e.g. a gzip stream that ends early).
        first_row: the input row of this table's first row (a chunk of ``iter_molecule_tables``).
    """

    source: str
    smiles: list[str | None]
    labels: np.ndarray | None = None
    label_names: list[str] = field(default_factory=list)
    split_values: list[str] | None = None
    records: list[SdfRecord] | None = None
    columns: dict[str, list[str]] = field(default_factory=dict)
    label_maps: dict[str, dict[int, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    first_row: int = 0

    def __len__(self) -> int:
        return len(self.smiles)

    def molecules(self) -> list:
        """The featurizer's input, one item per row: the SDF records, or the SMILES strings."""
        return self.records if self.records is not None else [s or "" for s in self.smiles]


def read_molecule_table(
    path: str | Path,
    smiles_column: str = "smiles",
    label_columns: list[str] | None = None,
    split_column: str | None = None,
) -> MoleculeTable:
    """Read a molecule file (see the module docstring for the formats).

    Raises:
        InputError: no such file, an unknown format, no rows, or a named column (SDF tag) that is not there.
        InvalidLabelError: a label that is neither a number nor one of a column's two text classes.
    """
    chunks = list(iter_molecule_tables(path, smiles_column, label_columns, split_column, chunk_size=None))
    return chunks[0]


def iter_molecule_tables(
    path: str | Path,
    smiles_column: str = "smiles",
    label_columns: list[str] | None = None,
    split_column: str | None = None,
    chunk_size: int | None = 10_000,
) -> Iterator[MoleculeTable]:
    """The file as consecutive tables of at most ``chunk_size`` rows (None: one table), read lazily, so that a
    library of millions of molecules is processed with the memory of one chunk; ``MoleculeTable.first_row`` is
    each chunk's first input row. Columns are checked on the first chunk; the errors are ``read_molecule_table``'s.
    Labels are parsed per chunk: a two-text class column is mapped the same way only if every chunk holds both
    texts (read the whole file for training)."""
    path = Path(path)
    label_columns = list(label_columns or [])
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    kind = _kind(path)
    first, yielded = 0, False
    if kind == "sdf":
        for records, notes in _sdf_record_chunks(path, chunk_size):
            yield _table_from_records(path, records, notes, label_columns, split_column, first)
            first, yielded = first + len(records), True
    else:
        header, rows = _row_source(path, kind, smiles_column)
        if kind == "smi":
            smiles_column = "smiles"
        for column in [smiles_column, *label_columns] + ([split_column] if split_column else []):
            if column not in header:
                raise InputError(
                    f"{path}: no column {column!r}{_did_you_mean(column, header)}; the columns are {header}"
                )
        for chunk in _chunks(rows, chunk_size):
            yield _table_from_rows(path, header, chunk, smiles_column, label_columns, split_column, first)
            first, yielded = first + len(chunk), True
    if not yielded:
        raise InputError(f"{path}: no rows (an empty file, or a header only)")


def _chunks(items: Iterable, size: int | None) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if size and len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _row_source(path: Path, kind: str, smiles_column: str) -> tuple[list[str], Iterator[dict[str, str]]]:
    """(header, rows as text dicts, lazily) of a table file or a datasets folder."""
    if kind == "datasets":
        from datasets import load_from_disk

        dataset = load_from_disk(str(path))
        rows = ({k: "" if v is None else str(v) for k, v in row.items()} for row in dataset)
        return list(dataset.column_names), rows
    if kind == "smi":
        return ["smiles", "name"], _smi_rows(path, smiles_column)
    return _delimited_rows(path)


def _table_from_rows(path, header, rows, smiles_column, label_columns, split_column, first_row) -> MoleculeTable:
    smiles = [row.get(smiles_column) or "" for row in rows]
    table = MoleculeTable(str(path), smiles, label_names=label_columns, first_row=first_row)
    table.columns = {name: [row.get(name, "") for row in rows] for name in header}
    if label_columns:
        describe = lambda i: repr(smiles[i])  # noqa: E731
        table.labels, table.label_maps = _parse_labels(rows, label_columns, describe, path, first_row)
    if split_column:
        table.split_values = [row.get(split_column, "") for row in rows]
    return table


def concatenate_tables(parts: dict[str, MoleculeTable]) -> MoleculeTable:
    """One table from several with the same label columns (e.g. predefined train / validation / test files), in
    order; ``split_values`` names each row's part. Rows are numbered across the parts."""
    tables = list(parts.values())
    first = tables[0]
    for table in tables:
        if table.label_names != first.label_names:
            raise InputError(f"{table.source}: label columns {table.label_names}, not {first.label_names}")
    with_records = all(t.records is not None for t in tables)
    if any(t.records is not None for t in tables) and not with_records:
        raise InputError("predefined splits mix SDF and table files: give them in one format")
    combined = MoleculeTable(
        " + ".join(t.source for t in tables),
        [s for t in tables for s in t.smiles],
        labels=np.concatenate([t.labels for t in tables]) if first.labels is not None else None,
        label_names=list(first.label_names),
        split_values=[name for name, t in parts.items() for _ in range(len(t))],
        records=[r for t in tables for r in t.records] if with_records else None,
        notes=[n for t in tables for n in t.notes],
    )
    names = list(dict.fromkeys(c for t in tables for c in t.columns))
    combined.columns = {c: [v for t in tables for v in t.columns.get(c, [""] * len(t))] for c in names}
    for t in tables:
        for task, mapping in t.label_maps.items():
            if combined.label_maps.setdefault(task, mapping) != mapping:
                raise InputError(f"{t.source}: the text labels of {task!r} differ from the other files'")
    return combined


def _kind(path: Path) -> str:
    if path.is_dir():
        return "datasets"
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(SDF_SUFFIXES):
        return "sdf"
    if name.endswith(".smi"):
        return "smi"
    if name.endswith(TABLE_SUFFIXES):
        return "delimited"
    raise InputError(
        f"{path}: unknown format; expected .csv, .tsv, .txt, .smi or .sdf (each optionally .gz) or a datasets folder"
    )


def _open_text(path: Path):
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    return opener(path, "rt", newline="", encoding="utf-8-sig")


def _delimited_rows(path: Path) -> tuple[list[str], Iterator[dict[str, str]]]:
    delimiter = "\t" if ".tsv" in path.name.lower() else ","
    try:
        handle = _open_text(path)
        reader = csv.DictReader(handle, delimiter=delimiter)
        header = list(reader.fieldnames or [])
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{path}: cannot be read as a table: {error}") from error

    def rows() -> Iterator[dict[str, str]]:
        with handle:
            try:
                for row in reader:
                    yield {k: (v or "") for k, v in row.items() if k is not None}
            except (OSError, EOFError, UnicodeDecodeError, csv.Error) as error:
                raise InputError(f"{path}: cannot be read as a table (line {reader.line_num}): {error}") from error

    return header, rows()


def _smi_rows(path: Path, smiles_column: str) -> Iterator[dict[str, str]]:
    """A SMILES file: the first whitespace-separated field of each line, the rest of the line as ``name``; a first
    line whose first field is ``smiles`` (or ``smiles_column``) is a header."""
    with _open_text(path) as handle:
        for number, line in enumerate(handle):
            fields = line.split(maxsplit=1)
            if not fields:
                continue
            if number == 0 and fields[0].lower() in (smiles_column.lower(), "smiles"):
                continue
            yield {"smiles": fields[0], "name": fields[1].strip() if len(fields) > 1 else ""}


def _sdf_record_chunks(path: Path, chunk_size: int | None) -> Iterator[tuple[list[SdfRecord], list[str]]]:
    """Chunks of parsed records; a gzip stream cut short ends the file after its last complete record (said in
    the notes of the last chunk, and in a warning)."""
    chunk: list[SdfRecord] = []
    seen = 0
    records = read_sdf_records(path, parse=True)
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except (OSError, EOFError, zlib.error) as error:  # a partial download or copy
            if not seen and not chunk:
                raise InputError(f"{path}: cannot be read as an SDF: {error}") from error
            note = (
                f"{path}: the file ends early ({error}): the {seen + len(chunk)} complete records before the cut "
                "are used, anything after them is missing"
            )
            logger.warning(note)
            yield chunk, [note]
            return
        chunk.append(record)
        if chunk_size and len(chunk) == chunk_size:
            seen += len(chunk)
            yield chunk, []
            chunk = []
    if chunk or not seen:
        if not chunk:
            raise InputError(f"{path}: no records")
        yield chunk, []


def _table_from_records(path, records, notes, label_columns, split_column, first_row) -> MoleculeTable:
    from rdkit import Chem, rdBase

    tags: dict[str, None] = {}
    for record in records:
        tags.update(dict.fromkeys(record.properties))
    check_label_tags(tags, label_columns + ([split_column] if split_column else []), str(path))
    smiles = []
    with rdBase.BlockLogs():
        for record in records:
            smiles.append(Chem.MolToSmiles(Chem.RemoveHs(record.mol)) if record.mol is not None else None)
    table = MoleculeTable(
        str(path), smiles, label_names=label_columns, records=records, notes=notes, first_row=first_row
    )
    table.columns = {"title": [r.title for r in records]}
    table.columns.update({tag: [r.properties.get(tag, "") for r in records] for tag in tags})
    if label_columns:
        rows = [record.properties for record in records]
        describe = lambda i: f"{path.name} record {first_row + i} ({records[i].title!r})"  # noqa: E731
        table.labels, table.label_maps = _parse_labels(rows, label_columns, describe, path, first_row)
    if split_column:
        table.split_values = [r.properties.get(split_column, "") for r in records]
    return table


def _parse_labels(rows, label_columns, describe, path, first_row=0) -> tuple[np.ndarray, dict[str, dict[int, str]]]:
    """``[rows, tasks]`` float32 labels through ``parse_label``; a column of exactly two texts becomes 0/1."""
    values = np.full((len(rows), len(label_columns)), np.nan, dtype=np.float32)
    maps: dict[str, dict[int, str]] = {}
    for j, column in enumerate(label_columns):
        texts: dict[str, list[int]] = {}
        first_error: InvalidLabelError | None = None
        for i, row in enumerate(rows):
            try:
                values[i, j] = parse_label(row.get(column), first_row + i, describe(i), column)
            except InvalidLabelError as error:
                texts.setdefault(str(row.get(column)).strip(), []).append(i)
                first_error = first_error or error
        if not texts:
            continue
        numeric = ~np.isnan(values[:, j])
        if len(texts) != 2 or numeric.any():
            shown = ", ".join(repr(t) for t in list(texts)[:5])
            raise InputError(
                f"{path}: label column {column!r} holds text ({shown}{', ...' if len(texts) > 5 else ''}): expected "
                "numbers (empty or NA = missing), or exactly two text classes such as yes/no; first: "
                f"{first_error}"
            )
        first, second = sorted(texts)
        positive = second
        if (first.lower() in POSITIVE_TEXTS) != (second.lower() in POSITIVE_TEXTS):
            positive = first if first.lower() in POSITIVE_TEXTS else second
        negative = first if positive == second else second
        values[texts[negative], j], values[texts[positive], j] = 0.0, 1.0
        maps[column] = {0: negative, 1: positive}
    return values, maps


def _did_you_mean(name: str, options) -> str:
    close = suggest_name(name, sorted(options))
    return f" (did you mean {close!r}?)" if close else ""


def label_statistics(labels: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-task mean and std over non-NaN values (std 1.0 where a task has fewer than two values or no spread)."""
    means, stds = [], []
    for column in np.asarray(labels, dtype=np.float64).T:
        values = column[~np.isnan(column)]
        mean = float(values.mean()) if len(values) else 0.0
        std = float(values.std()) if len(values) > 1 else 1.0
        means.append(mean)
        stds.append(std if std > 0 and np.isfinite(std) else 1.0)
    return means, stds


def infer_problem_type(labels: np.ndarray) -> str:
    """ "multi_label_classification" when every non-NaN label is 0 or 1, else "regression"."""
    values = np.asarray(labels, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) and np.isin(values, (0.0, 1.0)).all():
        return "multi_label_classification"
    return "regression"
