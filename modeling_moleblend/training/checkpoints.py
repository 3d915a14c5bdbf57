"""Checkpoints and logs of a training run: which ``step_N`` / ``epoch_E`` folder is the latest, how many updates
it holds, pruning old ones, and reading the JSON-lines log."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

CHECKPOINT_PATTERN = re.compile(r"^(step|epoch)_(\d+)$")
TRAINER_STATE_NAME = "trainer_state.json"


def checkpoint_completed_steps(folder: str | Path, updates_per_epoch: int | None = None) -> int | None:
    """Optimizer updates done when checkpoint ``folder`` was written: from its ``trainer_state.json``, else from
    its name (``step_N`` -> N; ``epoch_E`` -> (E + 1) * updates_per_epoch). None when neither says."""
    folder = Path(folder)
    state_file = folder / TRAINER_STATE_NAME
    if state_file.exists():
        return int(json.loads(state_file.read_text())["completed_steps"])
    match = CHECKPOINT_PATTERN.match(folder.name)
    if match is None:
        return None
    number = int(match.group(2))
    if match.group(1) == "step":
        return number
    return (number + 1) * updates_per_epoch if updates_per_epoch else None


def find_latest_checkpoint(output_dir: str | Path, updates_per_epoch: int | None = None) -> Path | None:
    """The ``step_N`` / ``epoch_E`` folder of ``output_dir`` with the most completed updates (numeric order, so
    ``step_10`` comes after ``step_9``), or None when there is none."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    candidates = []
    for folder in output_dir.iterdir():
        if folder.is_dir() and CHECKPOINT_PATTERN.match(folder.name):
            steps = checkpoint_completed_steps(folder, updates_per_epoch)
            if steps is not None:
                candidates.append((steps, folder.name.startswith("step_"), folder))
    return max(candidates, key=lambda item: item[:2])[2] if candidates else None


# ---------------------------------------------------------------------------------------------------------- logs


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def prune_checkpoints(output_dir: str | Path, limit: int | None, updates_per_epoch: int) -> None:
    """Keep only the newest ``limit`` checkpoint folders of ``output_dir`` (``None`` or 0: keep all)."""
    if not limit:
        return
    folders = [f for f in Path(output_dir).iterdir() if f.is_dir() and CHECKPOINT_PATTERN.match(f.name)]
    folders = [f for f in folders if checkpoint_completed_steps(f, updates_per_epoch) is not None]
    folders.sort(key=lambda f: checkpoint_completed_steps(f, updates_per_epoch))
    for folder in folders[:-limit]:
        shutil.rmtree(folder, ignore_errors=True)
