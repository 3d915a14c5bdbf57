"""Evaluation metrics for finetuning (MoleculeNet protocol), with missing labels.

Labels are float arrays ``[n, T]`` (a 1-D array is one task) where ``NaN`` marks a missing label; a missing label
never enters any metric, whatever its prediction. Tasks are macro-averaged. Every number returned is a plain Python
``float``/``int``, so the results go straight into ``json.dump`` (except ``nan`` for "no task could be scored").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def as_2d(array: np.ndarray, name: str = "array") -> np.ndarray:
    """``[n]`` -> ``[n, 1]`` float64; ``[n, T]`` unchanged (as float64). Other ranks raise ``ValueError``."""
    out = np.asarray(array, dtype=np.float64)
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2:
        raise ValueError(f"{name} must be 1-D [n] or 2-D [n, T], got shape {out.shape}")
    return out


def task_names_for(num_tasks: int, task_names: Sequence[str] | None) -> list[str]:
    """``task_names`` as a list, checked against ``num_tasks``; default ``task_0``, ``task_1``, ..."""
    if task_names is None:
        return [f"task_{t}" for t in range(num_tasks)]
    names = [str(name) for name in task_names]
    if len(names) != num_tasks:
        raise ValueError(f"{len(names)} task names for {num_tasks} tasks")
    if len(set(names)) != len(names):
        raise ValueError(f"Task names must be unique, got {names}")
    return names


def _paired(labels: np.ndarray, outputs: np.ndarray, outputs_name: str) -> tuple[np.ndarray, np.ndarray]:
    y = as_2d(labels, "labels")
    p = as_2d(outputs, outputs_name)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and {outputs_name} {p.shape} must have the same shape")
    labelled = ~np.isnan(y)
    if not np.isfinite(p[labelled]).all():
        raise ValueError(f"{outputs_name} must be finite wherever a label is present")
    return y, p


def regression_metrics(labels: np.ndarray, predictions: np.ndarray, task_names: Sequence[str] | None = None) -> dict:
    """RMSE and MAE per task on labelled rows, then the mean over tasks.

    Args:
        labels: ``[n, T]`` or ``[n]`` float, ``NaN`` = missing.
        predictions: same shape, in the same units as ``labels``.
        task_names: T names (default ``task_0`` ...).

    Returns:
        ``{"rmse": float, "mae": float, "per_task": {name: {"rmse", "mae", "n"}}}``. The top-level values average the
        tasks that have at least one label (``nan`` if none has); a task with no label has ``nan`` and ``n = 0``.
    """
    y, p = _paired(labels, predictions, "predictions")
    names = task_names_for(y.shape[1], task_names)
    per_task: dict[str, dict] = {}
    for t, name in enumerate(names):
        labelled = ~np.isnan(y[:, t])
        n = int(labelled.sum())
        if n == 0:
            per_task[name] = {"rmse": math.nan, "mae": math.nan, "n": 0}
            continue
        error = p[labelled, t] - y[labelled, t]
        per_task[name] = {
            "rmse": float(np.sqrt(np.mean(error**2))),
            "mae": float(np.mean(np.abs(error))),
            "n": n,
        }
    scored = [m for m in per_task.values() if m["n"] > 0]
    return {
        "rmse": float(np.mean([m["rmse"] for m in scored])) if scored else math.nan,
        "mae": float(np.mean([m["mae"] for m in scored])) if scored else math.nan,
        "per_task": per_task,
    }


def classification_metrics(labels: np.ndarray, scores: np.ndarray, task_names: Sequence[str] | None = None) -> dict:
    """ROC-AUC and PR-AUC per binary task on labelled rows, then the macro mean over scored tasks.

    Args:
        labels: ``[n, T]`` or ``[n]`` with values 0/1, ``NaN`` = missing.
        scores: same shape; logits or probabilities of class 1 (ROC-AUC is rank-based; PR-AUC, i.e. average
            precision, is too, since it only uses the order of the scores).
        task_names: T names (default ``task_0`` ...).

    Returns:
        ``{"roc_auc", "pr_auc", "n_tasks_scored", "per_task": {name: {"roc_auc", "pr_auc", "n", "positives"}},
        "skipped_tasks": [{"task", "reason", "n", "positives"}]}``. A task whose labelled rows hold one class only
        (or none) cannot be scored: it is listed in ``skipped_tasks`` and left out of ``per_task`` and the means.
        The means are ``nan`` when no task was scored.

    Raises:
        ValueError: a present label other than 0/1, shape mismatch, or a non-finite score on a labelled row.
    """
    y, s = _paired(labels, scores, "scores")
    present = y[~np.isnan(y)]
    if not np.isin(present, (0.0, 1.0)).all():
        bad = sorted(set(present[~np.isin(present, (0.0, 1.0))].tolist()))[:5]
        raise ValueError(f"Classification labels must be 0, 1 or NaN; found {bad}")
    names = task_names_for(y.shape[1], task_names)
    per_task: dict[str, dict] = {}
    skipped: list[dict] = []
    for t, name in enumerate(names):
        labelled = ~np.isnan(y[:, t])
        y_t, s_t = y[labelled, t], s[labelled, t]
        n, positives = int(labelled.sum()), int(y_t.sum())
        if n == 0 or positives in (0, n):
            reason = "no labelled rows" if n == 0 else f"only one class ({'1' if positives else '0'}) in {n} rows"
            skipped.append({"task": name, "reason": reason, "n": n, "positives": positives})
            continue
        per_task[name] = {
            "roc_auc": float(roc_auc_score(y_t, s_t)),
            "pr_auc": float(average_precision_score(y_t, s_t)),
            "n": n,
            "positives": positives,
        }
    return {
        "roc_auc": float(np.mean([m["roc_auc"] for m in per_task.values()])) if per_task else math.nan,
        "pr_auc": float(np.mean([m["pr_auc"] for m in per_task.values()])) if per_task else math.nan,
        "n_tasks_scored": len(per_task),
        "per_task": per_task,
        "skipped_tasks": skipped,
    }


def aggregate_seeds(per_seed: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and spread of scalar metrics over seeds (the "mean +- std over 3 seeds" of the protocol).

    Args:
        per_seed: one flat dict of metrics per seed, e.g. ``[{"rmse": 0.8, "mae": 0.6}, ...]``.

    Returns:
        ``{key: {"mean", "std", "values"}}`` for every key whose value is a real number (not ``bool``) in every dict.
        ``std`` is the sample standard deviation (``ddof=1``), or ``0.0`` for a single seed.

    Raises:
        ValueError: ``per_seed`` is empty.
    """
    if not per_seed:
        raise ValueError("aggregate_seeds needs at least one dict of metrics")

    def numeric(value: object) -> bool:
        return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))

    keys = [key for key, value in per_seed[0].items() if numeric(value)]
    keys = [key for key in keys if all(key in d and numeric(d[key]) for d in per_seed[1:])]
    out: dict[str, dict] = {}
    for key in keys:
        values = [float(d[key]) for d in per_seed]
        out[key] = {
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "values": values,
        }
    return out
