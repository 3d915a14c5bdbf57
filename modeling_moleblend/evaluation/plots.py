"""Figures: learning curves, parity plots (regression), ROC curves (classification), pretraining loss curves.

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``), so importing this module changes no global
backend and works headless. Every function writes a PNG (parent folders are created) and returns its ``Path``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from .metrics import as_2d, task_names_for

MAX_PARITY_PANELS = 4


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    figure.savefig(partial, format="png")
    os.replace(partial, path)  # atomic: a reader, or a second process writing the same picture, never sees half
    return path


def _with_unit(text: str, unit: str) -> str:
    return f"{text} ({unit})" if unit else text


def _series(log_history: Sequence[Mapping], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of the log entries that hold both ``epoch`` and a finite ``key``."""
    epochs, values = [], []
    for entry in log_history:
        if key in entry and "epoch" in entry and entry[key] is not None and math.isfinite(float(entry[key])):
            epochs.append(float(entry["epoch"]))
            values.append(float(entry[key]))
    return epochs, values


def plot_learning_curve(
    log_history: list[dict] | Mapping[object, list[dict]], path, metric_name: str, title: str = ""
) -> Path:
    """Training loss and validation loss (left axis) and a validation metric (right axis) against epoch.

    Args:
        log_history: ``Trainer.state.log_history`` (training entries hold ``loss``, evaluation entries hold
            ``eval_loss`` and ``eval_<metric_name>``; both hold ``epoch``), or ``{seed: log_history}`` to draw one
            set of lines per seed (one colour per seed).
        path: PNG to write.
        metric_name: the metric, with or without the ``eval_`` prefix, e.g. ``"rmse"`` or ``"eval_roc_auc"``.
        title: figure title (default: "Learning curve").

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: no entry holds a loss or the metric together with an epoch.
    """
    runs = dict(log_history) if isinstance(log_history, Mapping) else {None: log_history}
    metric_key = metric_name if metric_name.startswith("eval_") else f"eval_{metric_name}"
    metric_label = metric_key[len("eval_") :]

    figure = _new_figure(8, 5)
    loss_axis = figure.add_subplot()
    metric_axis = loss_axis.twinx()
    colors = [f"C{i % 10}" for i in range(len(runs))]
    drawn = 0
    for color, (seed, history) in zip(colors, runs.items()):
        suffix = "" if seed is None else f" (seed {seed})"
        for key, axis, style, label in (
            ("loss", loss_axis, "-", "train loss"),
            ("eval_loss", loss_axis, "--", "validation loss"),
            (metric_key, metric_axis, ":", f"validation {metric_label}"),
        ):
            epochs, values = _series(history, key)
            if epochs:
                marker = "o" if key != "loss" else None
                axis.plot(
                    epochs, values, linestyle=style, marker=marker, markersize=3, color=color, label=label + suffix
                )
                drawn += 1
    if drawn == 0:
        raise ValueError(f"log_history holds no 'loss', 'eval_loss' or {metric_key!r} entries with an 'epoch'")

    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("loss")
    metric_axis.set_ylabel(f"validation {metric_label}")
    handles, labels = [], []
    for axis in (loss_axis, metric_axis):
        h, lab = axis.get_legend_handles_labels()
        handles += h
        labels += lab
    loss_axis.legend(handles, labels, loc="best", fontsize="small")
    loss_axis.grid(alpha=0.3)
    loss_axis.set_title(title or "Learning curve")
    return _save(figure, path)


def plot_parity(
    labels: np.ndarray,
    predictions: np.ndarray,
    path,
    task_names: Sequence[str] | None = None,
    title: str = "",
    unit: str = "",
) -> Path:
    """Predicted against measured values, one panel per task (the first ``MAX_PARITY_PANELS`` tasks).

    Args:
        labels: ``[n, T]`` or ``[n]``; ``NaN`` rows are dropped per task.
        predictions: same shape.
        path: PNG to write.
        task_names: T names (default ``task_0`` ...).
        title: figure title (default: "Parity plot").
        unit: unit of the values, for the axis labels, e.g. ``"log mol/L"``.

    Returns:
        ``Path(path)``.
    """
    y = as_2d(labels, "labels")
    p = as_2d(predictions, "predictions")
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} must have the same shape")
    names = task_names_for(y.shape[1], task_names)
    shown = min(y.shape[1], MAX_PARITY_PANELS)
    if y.shape[1] > MAX_PARITY_PANELS:
        warnings.warn(f"plot_parity: {y.shape[1]} tasks, showing the first {MAX_PARITY_PANELS}", stacklevel=2)

    figure = _new_figure(4.5 * shown, 5.0)
    axes = figure.subplots(1, shown, squeeze=False)[0]
    for t, axis in enumerate(axes):
        keep = ~np.isnan(y[:, t]) & np.isfinite(p[:, t])
        y_t, p_t = y[keep, t], p[keep, t]
        if len(y_t):
            error = p_t - y_t
            rmse, mae = float(np.sqrt(np.mean(error**2))), float(np.mean(np.abs(error)))
            label = f"n={len(y_t)}, RMSE={rmse:.3g}, MAE={mae:.3g}" + (f" {unit}" if unit else "")
            axis.scatter(y_t, p_t, s=12, alpha=0.6, label=label)
            low, high = float(min(y_t.min(), p_t.min())), float(max(y_t.max(), p_t.max()))
            pad = 0.05 * (high - low) or 0.5
            low, high = low - pad, high + pad
        else:
            low, high = 0.0, 1.0
            axis.text(0.5, 0.5, "no labelled rows", ha="center", va="center", transform=axis.transAxes)
        axis.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="y = x")
        axis.set_xlim(low, high)
        axis.set_ylim(low, high)
        axis.set_aspect("equal")
        axis.set_xlabel(_with_unit("measured", unit))
        axis.set_ylabel(_with_unit("predicted", unit))
        axis.set_title(names[t])
        axis.legend(loc="upper left", fontsize="small")
        axis.grid(alpha=0.3)
    figure.suptitle(title or "Parity plot")
    return _save(figure, path)


def plot_roc(
    labels: np.ndarray, scores: np.ndarray, path, task_names: Sequence[str] | None = None, title: str = ""
) -> Path:
    """ROC curve of every binary task on one axis, AUC in the legend, chance diagonal.

    Args:
        labels: ``[n, T]`` or ``[n]`` 0/1, ``NaN`` = missing (dropped per task).
        scores: same shape, logits or probabilities.
        path: PNG to write.
        task_names: T names (default ``task_0`` ...).
        title: figure title (default: "ROC curves").

    Tasks whose labelled rows hold one class have no ROC curve: they are skipped (named in the figure and in a
    warning).

    Returns:
        ``Path(path)``.
    """
    y = as_2d(labels, "labels")
    s = as_2d(scores, "scores")
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must have the same shape")
    names = task_names_for(y.shape[1], task_names)

    figure = _new_figure(6, 6)
    axis = figure.add_subplot()
    skipped = []
    for t, name in enumerate(names):
        keep = ~np.isnan(y[:, t]) & np.isfinite(s[:, t])
        y_t, s_t = y[keep, t], s[keep, t]
        if len(np.unique(y_t)) < 2:
            skipped.append(name)
            continue
        fpr, tpr, _ = roc_curve(y_t, s_t)
        axis.plot(fpr, tpr, linewidth=1.5, label=f"{name}: AUC={roc_auc_score(y_t, s_t):.3f} (n={len(y_t)})")
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance (AUC=0.5)")
    if skipped:
        warnings.warn(f"plot_roc: skipped tasks with one class only: {skipped}", stacklevel=2)
        axis.text(0.98, 0.02, "skipped (one class): " + ", ".join(skipped), ha="right", va="bottom", fontsize="small")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.01)
    axis.set_aspect("equal")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.legend(loc="lower right", bbox_to_anchor=(1.0, 0.08), fontsize="small")
    axis.grid(alpha=0.3)
    axis.set_title(title or "ROC curves")
    return _save(figure, path)


def plot_pretraining_curves(
    log: Sequence[Mapping], path: str | Path, title: str = "", components: Sequence[str] | None = None
) -> Path:
    """One panel per loss component (total, SPD, edge, distance, denoise): training (line) and validation
    (markers) against the optimizer step.

    Args:
        log: entries of ``pretraining_log.jsonl``: ``step`` plus ``train_<component>`` or ``eval_<component>``.
        path: PNG to write.
        title: figure title.
        components: the loss names to draw (default: every ``*loss`` the log holds, in order of appearance).
    """
    if components is None:
        seen: dict[str, None] = {}
        for entry in log:
            for key in entry:
                name = key.removeprefix("train_").removeprefix("eval_")
                if key != name and name.endswith("loss"):
                    seen.setdefault(name)
        components = list(seen) or ["loss"]
    figure = _new_figure(3.2 * len(components), 3.2)
    axes = figure.subplots(1, len(components), squeeze=False)[0]
    for axis, name in zip(axes, components):
        for prefix, style, label in (("train_", "-", "train"), ("eval_", "o-", "validation")):
            points = [
                (entry["step"], entry[prefix + name])
                for entry in log
                if entry.get(prefix + name) is not None and math.isfinite(entry[prefix + name])
            ]
            if points:
                steps, values = zip(*points)
                axis.plot(steps, values, style, label=label, markersize=3)
        axis.set_title(name.replace("_", " "))
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    axes[0].legend()
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_optimization_history(trials: Sequence[Mapping], path: str | Path, metric: str, maximize: bool) -> Path:
    """Each finished trial's validation metric (dots; pruned trials hollow, at their last report) and the best so
    far (line), against the trial number."""
    figure = _new_figure(7, 4.5)
    axis = figure.add_subplot()
    complete = [(t["number"], t["value"]) for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    if complete:
        numbers, values = zip(*complete)
        axis.scatter(numbers, values, s=18, label="trial")
        best = np.maximum.accumulate(values) if maximize else np.minimum.accumulate(values)
        axis.step(numbers, best, where="post", color="C1", label="best so far")
    pruned = [t["number"] for t in trials if t["state"] == "PRUNED"]
    if pruned:
        axis.scatter(pruned, [axis.get_ylim()[0]] * len(pruned), s=18, facecolors="none", edgecolors="grey",
                     label="pruned")  # fmt: skip
    axis.set_xlabel("trial")
    axis.set_ylabel(f"validation {metric}")
    axis.set_title("Hyper-parameter search")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return _save(figure, path)


def plot_reliability(labels: np.ndarray, before: np.ndarray, after: np.ndarray, path: str | Path, bins: int = 10):
    """Reliability diagram of one binary task: mean predicted probability against the observed frequency per
    bin, before and after calibration, with the diagonal."""
    figure = _new_figure(5, 5)
    axis = figure.add_subplot()
    keep = ~np.isnan(labels)
    for probabilities, label in ((before, "before"), (after, "calibrated")):
        p, y = probabilities[keep], labels[keep]
        index = np.minimum((p * bins).astype(int), bins - 1)
        points = [(p[index == b].mean(), y[index == b].mean()) for b in range(bins) if (index == b).any()]
        if points:
            axis.plot(*zip(*points), "o-", label=label, markersize=4)
    axis.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
    axis.set_xlabel("mean predicted probability")
    axis.set_ylabel("observed frequency")
    axis.set_title("Reliability (test)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return _save(figure, path)


def plot_arm_scores(scores: Mapping[str, Mapping[str, float]], path: str | Path, title: str) -> Path:
    """Each arm's score (the mean relative improvement over no pretraining, in %) on validation (which decides)
    and on test (reported), as grouped bars."""
    arms = list(scores)
    figure = _new_figure(max(5.0, 1.2 * len(arms) + 2), 4.5)
    axis = figure.add_subplot()
    positions = np.arange(len(arms))
    for offset, part in ((-0.2, "validation"), (0.2, "test")):
        values = [100 * float(scores[arm].get(part, math.nan)) for arm in arms]
        axis.bar(positions + offset, np.nan_to_num(values), width=0.4, label=part)
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_xticks(positions, arms, rotation=30, ha="right", fontsize="small")
    axis.set_ylabel("improvement over no pretraining (%)")
    axis.set_title(title)
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize="small")
    return _save(figure, path)
