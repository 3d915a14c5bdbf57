"""Shared fixtures. Tests never touch the network or data outside this repository: data comes from the package."""

from __future__ import annotations

import csv
import os
from importlib import resources

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def esol_rows() -> list[dict[str, str]]:
    """The embedded ESOL sample (1,128 molecules with logS)."""
    with resources.files("modeling_moleblend").joinpath("data/esol.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="session")
def esol_smiles(esol_rows) -> list[str]:
    return [row["smiles"] for row in esol_rows]
