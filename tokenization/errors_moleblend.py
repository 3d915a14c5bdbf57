"""Errors raised for bad molecular input.

Every error is a ``ValueError`` subclass whose message names the input's position (``index``), a truncated
copy of its text (``input_text``: the SMILES as given, or the SDF record's title and line) and the ``reason``.
The same three fields are kept as attributes so that a skip report can list them. Messages show the text's
``repr``, so an input of blanks, tabs or newlines is named as given (``'   '``, ``'C1CC\\tx'``), on one line.

``MissingLabelTagError`` is not about one molecule: a requested label tag (or column) that no record has.
"""

from __future__ import annotations

MAX_INPUT_CHARS = 80
MAX_LISTED_TAGS = 30  # existing tags named in a MissingLabelTagError


def truncate(text: str, limit: int = MAX_INPUT_CHARS) -> str:
    """``text`` as given (whitespace kept, so that messages can show its ``repr``), cut to at most ``limit``
    characters ending in "..." when longer."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class MoleculeError(ValueError):
    """Base class: a molecule could not be featurized."""

    kind = "invalid molecule"

    def __init__(self, index: int | None, input_text: str, reason: str):
        self.index = index
        self.input_text = truncate(input_text)
        self.reason = reason
        where = f"input {index}" if index is not None else "input"
        super().__init__(f"{where} ({self.input_text!r}): {self.kind}: {reason}")


class InvalidMoleculeError(MoleculeError):
    """Unparsable SMILES, a corrupt SDF record, or a molecule RDKit cannot sanitize."""


class EmptyMoleculeError(MoleculeError):
    """An empty SMILES or a molecule with no atoms left (e.g. only hydrogens)."""

    kind = "empty molecule"


class UnsupportedAtomError(MoleculeError):
    """Dummy/query atoms (``*``, R groups) or elements outside ``allowed_elements``."""

    kind = "unsupported atom"


class MoleculeTooLargeError(MoleculeError):
    """More atoms than the featurizer's ``max_atoms``."""

    kind = "molecule too large"


class InvalidLabelError(MoleculeError):
    """A label (SDF property) that is present but not a number."""

    kind = "invalid label"


class ConformerError(MoleculeError):
    """3D coordinates could not be obtained (embedding failed, worker died, or no 3D in the input)."""

    kind = "conformer failure"


class ConformerTimeoutError(ConformerError):
    """Conformer generation ran past the per-molecule time limit."""

    kind = "conformer time-out"


class MissingLabelTagError(ValueError):
    """A requested label tag (SDF ``> <TAG>`` property, or table column) that no record of the input has.

    Attributes: ``source`` (the file or "SDF records"), ``missing`` (the absent tags, in request order),
    ``available`` (the tags that exist, sorted) and ``suggestions`` (missing tag -> the existing tag it most
    likely meant, matched case-insensitively first).
    """

    def __init__(self, source: str, missing: list[str], available: list[str], suggestions: dict[str, str]):
        self.source = source
        self.missing = missing
        self.available = available
        self.suggestions = suggestions
        parts = []
        for tag in missing:
            hint = f" (did you mean {suggestions[tag]!r}?)" if tag in suggestions else ""
            parts.append(f"{tag!r}{hint}")
        what = "label tag" if len(missing) == 1 else "label tags"
        present = ", ".join(repr(t) for t in available[:MAX_LISTED_TAGS]) if available else "none"
        if len(available) > MAX_LISTED_TAGS:
            present += f", ... ({len(available) - MAX_LISTED_TAGS} more)"
        super().__init__(
            f"{source}: {what} {', '.join(parts)} not found in any record; the tags present are: {present}"
        )
