"""Labels: the one place where a label value becomes a float, and where requested label tags are checked.

``parse_label`` is used by ``MoleBlendFeaturizer`` (``labels=`` values and SDF ``label_columns``), by
``MoleBlendCollator`` (the ``labels`` of each row) and by the table readers, so that every path has the same
missing-value rules: None, "", "NA", "N/A", "nan", "none", "null" (any case, surrounding blanks ignored) and NaN
are missing (NaN, never 0); numbers pass; any other text is an ``InvalidLabelError``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable

import numpy as np

from .errors_moleblend import InvalidLabelError, MissingLabelTagError, truncate

MISSING_LABEL_TEXTS = frozenset({"", "na", "nan", "n/a", "none", "null"})


def parse_label(value, index: int | None, text: str, name: str) -> float:
    """One label as a float: missing values (see the module docstring) become NaN, numbers pass; other text is
    an ``InvalidLabelError`` naming input ``index`` (described by ``text``) and the label ``name``.

    Booleans are not numbers here (a bool label is an error, as is its text "True").
    """
    if value is None:
        return math.nan
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    if str(value).strip().lower() in MISSING_LABEL_TEXTS:
        return math.nan
    try:
        return float(str(value).strip())
    except ValueError:
        raise InvalidLabelError(index, text, f"label {name!r} = {truncate(value, 40)!r} is not a number") from None


def labels_to_float(values, index: int | None = None, text: str = "") -> np.ndarray:
    """One molecule's labels as a float32 vector ``[tasks]`` through ``parse_label``; a scalar (or None) is a
    1-vector. ``index`` and ``text`` name the molecule in an ``InvalidLabelError``."""
    if values is None or np.ndim(values) == 0:
        values = [values]
    array = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if array.dtype.kind in "fiu":  # already numeric (the common case: a datasets float column): no per-value work
        return array.astype(np.float32).reshape(-1)
    return np.array([parse_label(v, index, text, f"label {k}") for k, v in enumerate(list(values))], dtype=np.float32)


def suggest_name(tag: str, available: list[str]) -> str | None:
    """The existing tag ``tag`` most likely meant: equal ignoring case, else the closest ignoring case."""
    lowered: dict[str, str] = {}
    for name in available:  # sorted: the first of tags equal ignoring case wins
        lowered.setdefault(name.lower(), name)
    if tag.lower() in lowered:
        return lowered[tag.lower()]
    close = difflib.get_close_matches(tag.lower(), list(lowered), n=1, cutoff=0.75)
    return lowered[close[0]] if close else None


def check_label_tags(available: Iterable[str], requested: list[str], source: str) -> None:
    """Raise ``MissingLabelTagError`` when a ``requested`` label tag is not among the ``available`` tags (the
    union over all records, or a table's columns); ``source`` names the input in the message (a file name, or
    "SDF records"). The error names every missing tag, the tags that exist, and a case-insensitive suggestion
    ("did you mean 'pIC50'?")."""
    available = sorted(set(available))
    present = set(available)
    missing = [tag for tag in dict.fromkeys(requested) if tag not in present]
    if missing:
        suggestions = {tag: hint for tag in missing if (hint := suggest_name(tag, available)) is not None}
        raise MissingLabelTagError(source, missing, available, suggestions)
