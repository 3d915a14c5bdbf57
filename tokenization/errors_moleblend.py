"""Errors raised for bad molecular input.

Every error is a ``ValueError`` subclass whose message names the input's position (``index``), a truncated
copy of its text (``input_text``: the SMILES, or the SDF record's title and line) and the ``reason``. The same
three fields are kept as attributes so that a skip report can list them.
"""

from __future__ import annotations

MAX_INPUT_CHARS = 80


def truncate(text: str, limit: int = MAX_INPUT_CHARS) -> str:
    """One line of at most ``limit`` characters, for error messages."""
    text = " ".join(str(text).split())
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
