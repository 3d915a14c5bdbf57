"""Uncertainty of an ensemble (a finetuning run's seed models), calibrated on validation, measured on test.

* Regression: the spread over the models (sample standard deviation) is the uncertainty. Its scale is fitted on
  validation (``scale``: the factor on the spread for which ``mean +- scale * spread`` holds 90% of the validation
  labels); on test we report the Spearman correlation between spread and absolute error, and the coverage of
  that nominal 90% interval.
* Classification: the ensemble's logit (the mean of the models' logits) is divided by a temperature fitted on
  validation (minimum log loss); on test we report expected calibration error (ECE, 10 equal-width bins) and the
  Brier score, before and after.

``Calibration`` holds what was fitted; ``moleblend predict`` applies it to a run's ensemble.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

NOMINAL_COVERAGE = 0.9
CALIBRATION_NAME = "calibration.json"


@dataclass
class Calibration:
    """Fitted on a run's validation split: per task, the regression interval scale or the temperature."""

    problem_type: str
    tasks: list[str]
    coverage: float = NOMINAL_COVERAGE
    interval_scale: list[float | None] = field(default_factory=list)  # regression
    temperature: list[float] = field(default_factory=list)  # classification

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / CALIBRATION_NAME
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Calibration | None:
        path = Path(folder) / CALIBRATION_NAME
        return cls(**json.loads(path.read_text())) if path.is_file() else None


def spread(members: np.ndarray) -> np.ndarray:
    """``[members, n, T]`` -> ``[n, T]`` sample standard deviation (NaN with one member)."""
    members = np.asarray(members, dtype=np.float64)
    if len(members) < 2:
        return np.full(members.shape[1:], np.nan)
    return members.std(axis=0, ddof=1)


def fit_interval_scale(labels: np.ndarray, mean: np.ndarray, std: np.ndarray, coverage: float) -> float | None:
    """The factor ``s`` for which ``|label - mean| <= s * std`` holds a ``coverage`` share of the rows."""
    keep = ~np.isnan(labels) & np.isfinite(std) & (std > 0)
    if keep.sum() < 2:
        return None
    return float(np.quantile(np.abs(labels[keep] - mean[keep]) / std[keep], coverage))


def regression_uncertainty(val_labels, val_members, test_labels, test_members, tasks, coverage=NOMINAL_COVERAGE):
    """(``Calibration``, metrics per task on test). ``*_members``: ``[members, n, T]`` in real units."""
    from scipy.stats import spearmanr

    val_mean, val_std = np.mean(val_members, axis=0), spread(val_members)
    test_mean, test_std = np.mean(test_members, axis=0), spread(test_members)
    calibration = Calibration("regression", list(tasks), coverage)
    metrics = {}
    for t, task in enumerate(tasks):
        scale = fit_interval_scale(val_labels[:, t], val_mean[:, t], val_std[:, t], coverage)
        calibration.interval_scale.append(scale)
        keep = ~np.isnan(test_labels[:, t]) & np.isfinite(test_std[:, t])
        error = np.abs(test_labels[keep, t] - test_mean[keep, t])
        sigma = test_std[keep, t]
        entry = {"n": int(keep.sum()), "interval_scale": scale}
        if scale is not None and keep.sum() > 2:
            entry["spearman_spread_vs_error"] = float(spearmanr(sigma, error).statistic)
            entry[f"coverage_{round(100 * coverage)}"] = float(np.mean(error <= scale * sigma))
            entry["mean_interval_width"] = float(np.mean(2 * scale * sigma))
        metrics[task] = entry
    return calibration, metrics


def fit_temperature(labels: np.ndarray, logits: np.ndarray) -> float:
    """The temperature ``T`` minimising the log loss of ``sigmoid(logits / T)`` (a 1-D search over log T)."""
    keep = ~np.isnan(labels)
    y, z = labels[keep], logits[keep]
    if len(np.unique(y)) < 2:
        return 1.0

    def loss(log_t: float) -> float:
        p = np.clip(1 / (1 + np.exp(-z / math.exp(log_t))), 1e-7, 1 - 1e-7)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    low, high = math.log(0.05), math.log(20.0)
    for _ in range(60):  # golden-section search: the log loss is unimodal in log T
        a, b = high - 0.618 * (high - low), low + 0.618 * (high - low)
        if loss(a) < loss(b):
            high = b
        else:
            low = a
    return float(math.exp((low + high) / 2))


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    keep = ~np.isnan(labels)
    y, p = labels[keep], probabilities[keep]
    if not len(y):
        return float("nan")
    edges = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = edges == b
        if inside.any():
            total += inside.sum() * abs(p[inside].mean() - y[inside].mean())
    return float(total / len(y))


def brier_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    keep = ~np.isnan(labels)
    return float(np.mean((probabilities[keep] - labels[keep]) ** 2)) if keep.any() else float("nan")


def classification_calibration(val_labels, val_members, test_labels, test_members, tasks):
    """(``Calibration``, metrics per task on test). ``*_members``: ``[members, n, T]`` logits."""
    val_logit, test_logit = np.mean(val_members, axis=0), np.mean(test_members, axis=0)
    calibration = Calibration("multi_label_classification", list(tasks))
    metrics = {}
    for t, task in enumerate(tasks):
        temperature = fit_temperature(val_labels[:, t], val_logit[:, t])
        calibration.temperature.append(temperature)
        before = 1 / (1 + np.exp(-test_logit[:, t]))
        after = 1 / (1 + np.exp(-test_logit[:, t] / temperature))
        metrics[task] = {
            "temperature": temperature,
            "ece_before": expected_calibration_error(test_labels[:, t], before),
            "ece": expected_calibration_error(test_labels[:, t], after),
            "brier_before": brier_score(test_labels[:, t], before),
            "brier": brier_score(test_labels[:, t], after),
        }
    return calibration, metrics


def calibrated_probabilities(logits: np.ndarray, calibration: Calibration | None) -> np.ndarray:
    """``[n, T]`` ensemble logits -> probabilities, divided by the fitted temperatures when there are any."""
    temperature = np.asarray(calibration.temperature if calibration and calibration.temperature else 1.0)
    return 1 / (1 + np.exp(-np.asarray(logits, dtype=np.float64) / temperature))
