"""The one SDF reader: ``.sdf`` / ``.sdf.gz`` files (V2000 and V3000) split into records, each with its title,
raw text, ``> <TAG>`` properties and, on request, its RDKit molecule.

    records = list(read_sdf_records(Path("set.sdf"), parse=True))   # each RDKit Mol parsed once
    result = featurizer.featurize(records, label_columns=["pIC50"])  # the featurizer reuses record.mol

Records are split on ``$$$$`` and parsed one by one, so a corrupt record fails alone (``record.error`` holds
RDKit's reason) and the records around it are kept.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

try:
    from rdkit import Chem, rdBase
except ImportError:  # pragma: no cover - RDKit is a hard requirement of the featurizer itself
    Chem = None

SDF_SUFFIXES = (".sdf", ".sdf.gz", ".mol", ".sd", ".sd.gz")


@dataclass
class SdfRecord:
    """One ``$$$$``-terminated record of an SDF file.

    Args:
        index: the record's position in the file (0-based).
        title: its first line (the molecule name), stripped.
        block: the record's text, without the ``$$$$`` line.
        properties: the ``> <TAG>`` data items as raw text (multi-line values joined by newlines).
        mol: the RDKit Mol (sanitized, hydrogens as in the file) once parsed, else None.
        error: RDKit's reason when parsing failed, else None.
        line: the record's first line number in the file (1-based), when known.
        source: the file's name, when known (used to describe the record in messages).
    """

    index: int
    title: str
    block: str
    properties: dict[str, str] = field(default_factory=dict)
    mol: object | None = None
    error: str | None = None
    line: int | None = None
    source: str | None = None

    @property
    def parsed(self) -> bool:
        """Whether parsing was attempted (``mol`` or ``error`` is set)."""
        return self.mol is not None or self.error is not None

    def describe(self) -> str:
        """The record in messages: ``set.sdf record 2 (from line 31, title 'aspirin')``."""
        where = f"from line {self.line}, " if self.line is not None else ""
        return f"{self.source or 'SDF'} record {self.index} ({where}title {self.title!r})"

    def parse(self) -> SdfRecord:
        """Parse ``block`` with RDKit once (a no-op when already parsed): sets ``mol``, or ``error``."""
        if not self.parsed:
            self.mol, self.error = parse_sdf_block(self.block)
        return self


def read_sdf_records(path: str | os.PathLike, parse: bool = False) -> Iterator[SdfRecord]:
    """The records of a ``.sdf`` / ``.sdf.gz`` file, in order, read lazily (the file is checked at once).

    With ``parse=True`` each record's RDKit Mol is parsed here (``record.mol``; ``record.error`` holds RDKit's
    reason when it fails), so that the featurizer and table readers need not parse it again.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"SDF file not found: {path}")
    if not path.name.lower().endswith(SDF_SUFFIXES):
        raise ValueError(f"expected a .sdf or .sdf.gz file, got {path.name!r}")
    return _read_records(path, parse)


def _read_records(path: Path, parse: bool) -> Iterator[SdfRecord]:
    for index, line, block in iter_sdf_blocks(path):
        title = block.split("\n", 1)[0].strip()
        record = SdfRecord(index, title, block, sdf_properties(block), line=line, source=path.name)
        yield record.parse() if parse else record


def iter_sdf_blocks(path: Path) -> Iterator[tuple[int, int, str]]:
    """(record index, first line number, record text) for each ``$$$$``-terminated record of a .sdf/.sdf.gz."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        lines: list[str] = []
        start = 1
        record = 0
        for number, line in enumerate(handle, start=1):
            if line.startswith("$$$$"):
                yield record, start, "".join(lines)
                record += 1
                lines, start = [], number + 1
            else:
                lines.append(line)
        if any(line.strip() for line in lines):  # a last record without its $$$$ terminator
            yield record, start, "".join(lines)


def sdf_properties(block: str) -> dict[str, str]:
    """The ``> <TAG>`` data items after ``M  END``, as raw text (multi-line values joined by newlines)."""
    _, found, data = block.partition("M  END")
    if not found:
        return {}
    properties: dict[str, str] = {}
    tag, value_lines = None, []
    for line in data.splitlines():
        if line.startswith(">"):
            if tag is not None:
                properties[tag] = "\n".join(value_lines)
            start, end = line.find("<"), line.find(">", line.find("<") + 1)
            tag = line[start + 1 : end] if 0 < start < end else None
            value_lines = []
        elif tag is not None:
            if line.strip() == "":
                properties[tag] = "\n".join(value_lines)
                tag = None
            else:
                value_lines.append(line.rstrip("\r"))
    if tag is not None:
        properties[tag] = "\n".join(value_lines)
    return properties


def rdkit_reason(parse: Callable[[], object]) -> str:
    """Run a failing RDKit parse again with its error log captured, and return RDKit's first complaint."""
    with rdBase.CaptureErrorLog() as log:
        parse()
    messages = [line.split("] ", 1)[-1].strip() for line in log.messages.strip().splitlines()]
    messages = [m.removeprefix("ERROR: ") for m in messages if m and "moving to the beginning" not in m]
    return messages[0] if messages else "RDKit could not parse it"


def parse_mol_block(block: str):
    """One SDF record through RDKit's SD reader (its error log names the bad line), sanitized, hydrogens kept;
    None when RDKit cannot read or sanitize it."""
    supplier = Chem.SDMolSupplier()
    supplier.SetData(block + "$$$$\n", sanitize=True, removeHs=False)
    return supplier[0] if len(supplier) else None


def parse_sdf_block(block: str) -> tuple[object | None, str | None]:
    """``(mol, None)``, or ``(None, RDKit's reason)`` for a record RDKit cannot read or sanitize (nothing is
    written to RDKit's log)."""
    with rdBase.BlockLogs():
        mol = parse_mol_block(block)
        if mol is None:
            return None, rdkit_reason(lambda: parse_mol_block(block))
    return mol, None
