"""Files that a kill or a concurrent run never sees half-written: JSON written to a temporary file and renamed
over the target, folders written under a temporary name, flushed to disk and renamed into place."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

TEMPORARY_PREFIX = ".incomplete-"


def write_json_atomic(path: str | Path, data) -> Path:
    """Write ``data`` (JSON-serialisable) to ``path`` through a flushed temporary file renamed over it."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as handle:
        handle.write(json.dumps(data, indent=2))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


def temporary_folder(folder: str | Path) -> Path:
    """Where a checkpoint is written before ``publish`` renames it to ``folder``."""
    folder = Path(folder)
    return folder.with_name(f"{TEMPORARY_PREFIX}{folder.name}")


def publish(temporary: str | Path, folder: str | Path) -> Path:
    """Flush every file of ``temporary`` to disk, then rename it to ``folder`` (replacing an older one)."""
    temporary, folder = Path(temporary), Path(folder)
    for path in temporary.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(temporary, folder)
    _fsync_folder(folder.parent)
    return folder


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover (platforms without directory descriptors)
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
