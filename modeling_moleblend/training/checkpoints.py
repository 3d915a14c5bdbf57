"""Checkpoints and logs of a training run, kill-safe: a checkpoint is written into a temporary folder, flushed to
disk and renamed into place (``files.publish``), so ``step_N`` / ``epoch_E`` / ``checkpoint-N`` folders are
complete or absent; ``find_latest_checkpoint`` also skips, with a warning, any folder that fails the completeness
check (``checkpoint_problem``: state file present, every safetensors file whole). The JSON-lines log is appended
a line at a time and read back ignoring (with a warning) a line a kill cut short."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^(step|epoch)_(\d+)$")
TRAINER_STATE_NAME = "trainer_state.json"


def checkpoint_completed_steps(folder: str | Path, updates_per_epoch: int | None = None) -> int | None:
    """Optimizer updates done when checkpoint ``folder`` was written: from its ``trainer_state.json``, else from
    its name (``step_N`` -> N; ``epoch_E`` -> (E + 1) * updates_per_epoch). None when neither says."""
    folder = Path(folder)
    state_file = folder / TRAINER_STATE_NAME
    if state_file.exists():
        try:
            return int(json.loads(state_file.read_text())["completed_steps"])
        except (ValueError, KeyError, TypeError):
            return None
    match = CHECKPOINT_PATTERN.match(folder.name)
    if match is None:
        return None
    number = int(match.group(2))
    if match.group(1) == "step":
        return number
    return (number + 1) * updates_per_epoch if updates_per_epoch else None


def checkpoint_setting_changes(folder: str | Path, settings: dict) -> list[str]:
    """The entries of ``settings`` that differ from what checkpoint ``folder``'s state file records, as
    ``"name recorded -> asked"``; a setting the file does not record (an older checkpoint) is not compared."""
    state_file = Path(folder) / TRAINER_STATE_NAME
    try:
        recorded = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return []
    return [f"{name} {recorded[name]} -> {value}" for name, value in settings.items()
            if name in recorded and recorded[name] != value]  # fmt: skip


def safetensors_problem(path: str | Path) -> str | None:
    """Why the safetensors file ``path`` is not whole (None if it is): the header must parse and the file must
    hold every byte the header points at."""
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > size - 8:
                return f"{path.name}: header length {length} past the end of the file ({size} bytes)"
            header = json.loads(handle.read(length))
    except (struct.error, ValueError, UnicodeDecodeError) as error:
        return f"{path.name}: unreadable header ({error})"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + length + end > size:
        return f"{path.name}: cut short ({size} of {8 + length + end} bytes)"
    return None


def checkpoint_problem(folder: str | Path, state_file: str = TRAINER_STATE_NAME) -> str | None:
    """Why ``folder`` is not a complete checkpoint (None if it is)."""
    folder = Path(folder)
    state = folder / state_file
    if not state.is_file():
        return f"no {state_file} (the save was cut short)"
    try:
        json.loads(state.read_text())
    except ValueError:
        return f"{state_file} is not valid JSON (the save was cut short)"
    for path in folder.rglob("*"):
        if path.is_file() and path.stat().st_size == 0:
            return f"{path.relative_to(folder)} is empty"
        if path.suffix == ".safetensors" and (problem := safetensors_problem(path)):
            return problem
    return None


def complete_checkpoints(output_dir: str | Path, updates_per_epoch: int | None = None) -> list[Path]:
    """The complete ``step_N`` / ``epoch_E`` folders of ``output_dir``, the most completed updates first (numeric
    order, so ``step_10`` comes before ``step_9``). Incomplete folders are left out with a warning."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    candidates = []
    for folder in output_dir.iterdir():
        if folder.is_dir() and CHECKPOINT_PATTERN.match(folder.name):
            steps = checkpoint_completed_steps(folder, updates_per_epoch)
            candidates.append((steps if steps is not None else -1, folder.name.startswith("step_"), folder))
    complete = []
    for _, _, folder in sorted(candidates, key=lambda item: item[:2], reverse=True):
        problem = checkpoint_problem(folder)
        if problem is None:
            complete.append(folder)
        else:
            logger.warning("skipping the checkpoint %s: %s", folder, problem)
    return complete


def find_latest_checkpoint(output_dir: str | Path, updates_per_epoch: int | None = None) -> Path | None:
    """The newest complete checkpoint of ``output_dir`` (``complete_checkpoints``), or None."""
    complete = complete_checkpoints(output_dir, updates_per_epoch)
    return complete[0] if complete else None


def prune_checkpoints(output_dir: str | Path, limit: int | None, updates_per_epoch: int) -> None:
    """Keep only the newest ``limit`` checkpoint folders of ``output_dir`` (``None`` or 0: keep all)."""
    if not limit:
        return
    folders = [f for f in Path(output_dir).iterdir() if f.is_dir() and CHECKPOINT_PATTERN.match(f.name)]
    folders = [f for f in folders if checkpoint_completed_steps(f, updates_per_epoch) is not None]
    folders.sort(key=lambda f: checkpoint_completed_steps(f, updates_per_epoch))
    for folder in folders[:-limit]:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------- logs


def read_jsonl(path: str | Path) -> list[dict]:
    """The entries of a JSON-lines log; a line that does not parse (the last line of a killed run) is left out
    with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    entries = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            where = "the last line" if number == len(lines) else f"line {number}"
            logger.warning("%s: %s is not valid JSON (cut short by a kill?): ignored", path, where)
    return entries


def write_jsonl(path: str | Path, entries: Iterable[dict]) -> None:
    """Replace the log at ``path`` with ``entries``, atomically."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as handle:
        handle.writelines(json.dumps(entry) + "\n" for entry in entries)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def append_jsonl(path: str | Path, entry: dict) -> None:
    """Append one line to the log at ``path`` and flush it to disk."""
    with open(path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
