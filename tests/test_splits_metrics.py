"""Splits, metrics, the random-forest baseline and the plots of the finetuning workflow (MoleculeNet protocol)."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from modeling_moleblend.data.splits import (
    SPLIT_NAMES,
    column_split,
    make_split,
    murcko_scaffold,
    random_split,
    scaffold_split,
)
from modeling_moleblend.evaluation.baselines import morgan_fingerprints, random_forest_baseline
from modeling_moleblend.evaluation.metrics import aggregate_seeds, classification_metrics, regression_metrics
from modeling_moleblend.evaluation.plots import plot_learning_curve, plot_parity, plot_roc

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Real molecules grouped by their Bemis-Murcko scaffold (sizes 12, 8, 7, 6, 4, 2, 1; 40 in all).
SCAFFOLD_GROUPS = {
    "c1ccccc1": [
        "Cc1ccccc1",
        "CCc1ccccc1",
        "Oc1ccccc1",
        "Nc1ccccc1",
        "Clc1ccccc1",
        "OC(=O)c1ccccc1",
        "c1ccccc1",
        "CCCc1ccccc1",
        "Fc1ccccc1",
        "Brc1ccccc1",
        "COc1ccccc1",
        "CC(C)c1ccccc1",
    ],
    "c1ccncc1": [
        "c1ccncc1",
        "Cc1ccncc1",
        "Nc1ccncc1",
        "Cc1ccccn1",
        "Oc1ccncc1",
        "CCc1ccncc1",
        "Clc1ccncc1",
        "OC(=O)c1cccnc1",
    ],
    "C1CCCCC1": ["C1CCCCC1", "CC1CCCCC1", "OC1CCCCC1", "NC1CCCCC1", "CCC1CCCCC1", "ClC1CCCCC1", "OCC1CCCCC1"],
    "": ["CCO", "CCCC", "CC(=O)O", "CCN(CC)CC", "CCCCCCO", "CC(C)O"],
    "c1ccc2ccccc2c1": ["c1ccc2ccccc2c1", "Cc1ccc2ccccc2c1", "Oc1ccc2ccccc2c1", "Nc1ccc2ccccc2c1"],
    "c1ccoc1": ["c1ccoc1", "Cc1ccco1"],
    "c1ccsc1": ["c1ccsc1"],
}
_ORDERED = [smi for group in SCAFFOLD_GROUPS.values() for smi in group]
# Interleave the groups (7 is coprime with 40), so each scaffold's indices are spread over the list.
MOLECULES = [_ORDERED[(7 * i) % len(_ORDERED)] for i in range(len(_ORDERED))]
SCAFFOLD_OF = {smi: scaffold for scaffold, group in SCAFFOLD_GROUPS.items() for smi in group}


def _check_partition(split: dict[str, list[int]], n: int) -> None:
    assert tuple(split) == SPLIT_NAMES
    for indices in split.values():
        assert indices == sorted(indices)
        assert all(isinstance(i, int) for i in indices)
    flat = [i for indices in split.values() for i in indices]
    assert sorted(flat) == list(range(n)), "every index exactly once"


# ----------------------------------------------------------------------------------------------------- scaffolds
def test_murcko_scaffold():
    assert murcko_scaffold("CCc1ccccc1") == "c1ccccc1"
    assert murcko_scaffold("OC1CCCCC1") == "C1CCCCC1"
    assert murcko_scaffold("CCO") == ""  # acyclic -> the shared empty scaffold
    for smi, scaffold in SCAFFOLD_OF.items():
        assert murcko_scaffold(smi) == scaffold, smi
    with pytest.raises(ValueError, match="c1ccccc1X"):
        murcko_scaffold("c1ccccc1X")
    with pytest.raises(ValueError):
        murcko_scaffold("")


def test_scaffold_split_tiny_exact_assignment():
    # groups: benzene {0,3,6,9} (4), pyridine {1,5,8} (3), cyclohexane {2,7} (2), naphthalene {4} (1).
    smiles = [
        "Cc1ccccc1",
        "c1ccncc1",
        "OC1CCCCC1",
        "Oc1ccccc1",
        "c1ccc2ccccc2c1",
        "Cc1ccncc1",
        "Nc1ccccc1",
        "CC1CCCCC1",
        "Nc1ccncc1",
        "Clc1ccccc1",
    ]
    # cut-offs: train <= 7, train + validation <= 9.
    # benzene 4 -> train (4); pyridine 3 -> train (7); cyclohexane 2: 9 > 7, 9 <= 9 -> validation;
    # naphthalene 1: 8 > 7, 10 > 9 -> test.
    split = scaffold_split(smiles, (0.7, 0.2, 0.1))
    assert split == {"train": [0, 1, 3, 5, 6, 8, 9], "validation": [2, 7], "test": [4]}
    # cut-offs: train <= 7, train + validation <= 8 ((0.7 + 0.1) * 10 = 7.999999999999999 in floating point: must
    # still count as 8). cyclohexane 2: 9 > 8 -> test; naphthalene 1 still fits validation (8 <= 8): each group
    # is checked on its own, a later smaller group can go to an earlier split.
    split = scaffold_split(smiles, (0.7, 0.1, 0.2))
    assert split == {"train": [0, 1, 3, 5, 6, 8, 9], "validation": [4], "test": [2, 7]}


def test_scaffold_split_tie_orders():
    # pyridine {0, 3} and benzene {1, 2} both have size 2. deepchem (default) sorts (size, first index) descending:
    # benzene (first index 1) goes first; "ascending" puts pyridine (first index 0) first.
    smiles = ["c1ccncc1", "Cc1ccccc1", "c1ccccc1", "Cc1ccncc1"]
    assert scaffold_split(smiles, (0.5, 0.5, 0.0)) == {"train": [1, 2], "validation": [0, 3], "test": []}
    ascending = scaffold_split(smiles, (0.5, 0.5, 0.0), ties="ascending")
    assert ascending == {"train": [0, 3], "validation": [1, 2], "test": []}
    swapped = ["c1ccccc1", "Cc1ccncc1", "c1ccncc1", "Cc1ccccc1"]
    assert scaffold_split(swapped, (0.5, 0.5, 0.0)) == {"train": [1, 2], "validation": [0, 3], "test": []}
    with pytest.raises(ValueError, match="ties must be one of"):
        scaffold_split(smiles, ties="random")


def test_scaffold_split_on_40_molecules():
    random.seed(1)
    np.random.seed(1)
    first = scaffold_split(MOLECULES)
    random.seed(2)
    np.random.seed(2)
    second = scaffold_split(list(MOLECULES))
    assert first == second, "deterministic, whatever the global random state"
    _check_partition(first, len(MOLECULES))

    scaffolds_in = {name: {SCAFFOLD_OF[MOLECULES[i]] for i in idx} for name, idx in first.items()}
    assert not scaffolds_in["train"] & scaffolds_in["validation"]
    assert not scaffolds_in["train"] & scaffolds_in["test"]
    assert not scaffolds_in["validation"] & scaffolds_in["test"]

    # Largest groups (12 benzene, 8 pyridine, 7 cyclohexane) land in train.
    assert {"c1ccccc1", "c1ccncc1", "C1CCCCC1"} <= scaffolds_in["train"]
    # 0.8 * 40 = 32: after 27 in train the 6 acyclic go to validation, then naphthalene (4) and thiophene (1)
    # still fit in train; furan (2) overflows validation (39 > 36) and goes to test.
    assert [len(first[name]) for name in SPLIT_NAMES] == [32, 6, 2]
    assert scaffolds_in == {
        "train": {"c1ccccc1", "c1ccncc1", "C1CCCCC1", "c1ccc2ccccc2c1", "c1ccsc1"},
        "validation": {""},
        "test": {"c1ccoc1"},
    }


def test_scaffold_split_names_invalid_smiles():
    with pytest.raises(ValueError, match=r"Row 2.*C1CC"):
        scaffold_split(["CCO", "c1ccccc1", "C1CC"])


# ---------------------------------------------------------------------------------------------- random / column
def test_random_split_seeded_disjoint_complete():
    a, b, c = random_split(100, seed=0), random_split(100, seed=0), random_split(100, seed=1)
    assert a == b
    assert a != c
    for split in (a, c):
        _check_partition(split, 100)
        assert [len(split[name]) for name in SPLIT_NAMES] == [80, 10, 10]
    odd = random_split(10, (0.7, 0.1, 0.2), seed=3)  # (0.7 + 0.1) * 10 = 7.999999999999999 must count as 8
    assert [len(odd[name]) for name in SPLIT_NAMES] == [7, 1, 2]


def test_column_split_aliases_and_errors():
    values = ["train", "TRAIN", " Valid ", "val", "dev", "Validation", "test", "Test", "training"]
    assert column_split(values) == {"train": [0, 1, 8], "validation": [2, 3, 4, 5], "test": [6, 7]}
    assert column_split(["train", "valid"]) == {"train": [0], "validation": [1], "test": []}
    with pytest.raises(ValueError, match=r"Row 2.*'holdout'"):
        column_split(["train", "valid", "holdout"])
    with pytest.raises(ValueError, match="validation"):
        column_split(["train", "test"])
    with pytest.raises(ValueError, match="train"):
        column_split(["valid", "test"])


def test_make_split_dispatch_and_validation():
    smiles = MOLECULES[:20]
    assert make_split("scaffold", smiles) == scaffold_split(smiles)
    assert make_split("random", smiles, seed=5) == random_split(20, seed=5)
    column = ["train"] * 16 + ["valid"] * 2 + ["test"] * 2
    assert make_split("column", smiles, column_values=column) == column_split(column)
    with pytest.raises(ValueError, match="Unknown split kind"):
        make_split("stratified", smiles)
    with pytest.raises(ValueError, match="sum to 1"):
        make_split("random", smiles, fractions=(0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match="non-negative"):
        make_split("scaffold", smiles, fractions=(1.2, -0.1, -0.1))
    with pytest.raises(ValueError, match="column_values"):
        make_split("column", smiles)
    with pytest.raises(ValueError, match="entries"):
        make_split("column", smiles, column_values=column[:-1])


# ------------------------------------------------------------------------------------------------------ metrics
def test_regression_metrics_exact_and_nan_ignored():
    labels = np.array([1.0, 2.0, np.nan, 4.0])
    result = regression_metrics(labels, np.array([1.0, 3.0, 100.0, 2.0]))
    assert result["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert result["mae"] == pytest.approx(1.0)
    assert result["per_task"] == {"task_0": {"rmse": pytest.approx(math.sqrt(5 / 3)), "mae": 1.0, "n": 3}}
    assert regression_metrics(labels, np.array([1.0, 3.0, -7.0, 2.0])) == result
    assert all(type(result[key]) is float for key in ("rmse", "mae"))
    json.dumps(result)

    # Two tasks: mean over tasks; a task with no label is reported with n = 0 and left out of the mean.
    labels2 = np.array([[1.0, 0.0, np.nan], [2.0, np.nan, np.nan], [np.nan, 3.0, np.nan]])
    preds2 = np.array([[2.0, 0.0, 5.0], [2.0, 9.0, 5.0], [50.0, 1.0, 5.0]])
    result2 = regression_metrics(labels2, preds2, task_names=["a", "b", "empty"])
    assert result2["per_task"]["a"] == {"rmse": pytest.approx(math.sqrt(0.5)), "mae": 0.5, "n": 2}
    assert result2["per_task"]["b"] == {"rmse": pytest.approx(math.sqrt(2.0)), "mae": 1.0, "n": 2}
    assert result2["per_task"]["empty"]["n"] == 0
    assert result2["rmse"] == pytest.approx((math.sqrt(0.5) + math.sqrt(2.0)) / 2)
    assert result2["mae"] == pytest.approx(0.75)

    with pytest.raises(ValueError, match="same shape"):
        regression_metrics(labels, np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        regression_metrics(labels, np.array([1.0, np.nan, 0.0, 0.0]))


def test_classification_metrics_exact_auc_skips_and_macro_mean():
    nan = np.nan
    labels = np.array(
        [
            [0.0, 1.0, 0.0],
            [0.0, 1.0, 0.0],
            [1.0, nan, 1.0],
            [1.0, 1.0, 1.0],
            [nan, nan, nan],
        ]
    )
    scores = np.array(
        [
            [0.1, 0.2, 0.1],
            [0.4, 0.3, 0.2],
            [0.35, 0.4, 0.3],
            [0.8, 0.9, 0.4],
            [100.0, 0.5, -100.0],  # unlabelled row with extreme scores: must not matter
        ]
    )
    result = classification_metrics(labels, scores, task_names=["t0", "one_class", "perfect"])
    # t0: positives {0.35, 0.8} vs negatives {0.1, 0.4}: 3 of 4 pairs ordered -> 0.75;
    # average precision: ranks 0.8 (+), 0.4 (-), 0.35 (+) -> 0.5 * 1 + 0.5 * 2/3.
    assert result["per_task"]["t0"] == {
        "roc_auc": pytest.approx(0.75),
        "pr_auc": pytest.approx(5 / 6),
        "n": 4,
        "positives": 2,
    }
    assert result["per_task"]["perfect"]["roc_auc"] == pytest.approx(1.0)
    assert "one_class" not in result["per_task"]
    assert [s["task"] for s in result["skipped_tasks"]] == ["one_class"]
    assert "one class" in result["skipped_tasks"][0]["reason"]
    assert result["n_tasks_scored"] == 2
    assert result["roc_auc"] == pytest.approx((0.75 + 1.0) / 2)
    assert result["pr_auc"] == pytest.approx((5 / 6 + 1.0) / 2)

    # Rank-based: logits give the same numbers as probabilities.
    logits = np.log(np.clip(scores, 1e-6, None))
    assert classification_metrics(labels, logits)["roc_auc"] == pytest.approx(result["roc_auc"])

    # No scorable task -> nan means, every task listed as skipped.
    none = classification_metrics(np.array([1.0, 1.0, nan]), np.array([0.2, 0.3, 0.4]))
    assert math.isnan(none["roc_auc"]) and none["n_tasks_scored"] == 0 and len(none["skipped_tasks"]) == 1

    with pytest.raises(ValueError, match="0, 1 or NaN"):
        classification_metrics(np.array([0.0, 2.0]), np.array([0.1, 0.2]))


def test_aggregate_seeds():
    per_seed = [
        {"rmse": 1.0, "mae": 2.0, "name": "x", "flag": True},
        {"rmse": 3.0, "mae": 4.0, "flag": False},
        {"rmse": 5.0, "mae": 6, "extra": 1.0},
    ]
    result = aggregate_seeds(per_seed)
    assert set(result) == {"rmse", "mae"}
    assert result["rmse"] == {"mean": 3.0, "std": pytest.approx(2.0), "values": [1.0, 3.0, 5.0]}
    assert result["mae"]["mean"] == 4.0 and result["mae"]["std"] == pytest.approx(2.0)
    assert aggregate_seeds([{"roc_auc": 0.7}]) == {"roc_auc": {"mean": 0.7, "std": 0.0, "values": [0.7]}}
    with pytest.raises(ValueError):
        aggregate_seeds([])


# ---------------------------------------------------------------------------------------------------- baselines
def test_morgan_fingerprints():
    fps = morgan_fingerprints(["CCO", "c1ccccc1", "CCO"], n_bits=512)
    assert fps.shape == (3, 512) and fps.dtype == np.uint8
    assert set(np.unique(fps)) <= {0, 1}
    assert (fps[0] == fps[2]).all() and (fps[0] != fps[1]).any()
    assert fps[1].sum() > 0
    with pytest.raises(ValueError, match=r"Row 1.*'C1CC'"):
        morgan_fingerprints(["CCO", "C1CC"])


def _rf_data():
    train, valid, test = MOLECULES[:30], MOLECULES[30:35], MOLECULES[35:]
    size = np.array([len(s) for s in train], dtype=float)
    labels = np.stack([0.1 * size, np.where(np.arange(30) % 3 == 0, np.nan, -size)], axis=1)
    return train, valid, test, labels


def test_random_forest_regression_shapes_determinism_and_nan():
    train, valid, test, labels = _rf_data()
    kwargs = dict(problem_type="regression", n_estimators=25)
    preds = random_forest_baseline(train, labels, {"validation": valid, "test": test}, seed=0, **kwargs)
    assert set(preds) == {"validation", "test"}
    assert preds["validation"].shape == (5, 2) and preds["test"].shape == (5, 2)
    assert np.isfinite(preds["test"]).all()
    again = random_forest_baseline(train, labels, {"validation": valid, "test": test}, seed=0, **kwargs)
    assert np.array_equal(preds["test"], again["test"]) and np.array_equal(preds["validation"], again["validation"])
    other = random_forest_baseline(train, labels, {"test": test}, seed=1, **kwargs)
    assert not np.array_equal(preds["test"], other["test"])

    # The task with NaNs was trained on its labelled rows only: same as a forest fit on those rows alone.
    keep = ~np.isnan(labels[:, 1])
    alone = random_forest_baseline(
        [s for s, k in zip(train, keep) if k], labels[keep, 1], {"test": test}, seed=0, **kwargs
    )
    assert alone["test"].shape == (5, 1)
    assert np.allclose(preds["test"][:, 1], alone["test"][:, 0])
    assert (preds["test"][:, 1] < 0).all()  # learned from the negative labels, never from NaN

    with pytest.raises(ValueError, match="problem_type"):
        random_forest_baseline(train, labels, {"test": test}, problem_type="ranking")


def test_random_forest_classification_probabilities():
    train, valid, test, _ = _rf_data()
    aromatic = np.array([1.0 if "c" in s else 0.0 for s in train])
    with_nan = aromatic.copy()
    with_nan[::4] = np.nan
    labels = np.stack([aromatic, with_nan, np.zeros(30)], axis=1)  # last task: one class only
    preds = random_forest_baseline(
        train, labels, {"validation": valid, "test": test}, "multi_label_classification", seed=0, n_estimators=25
    )
    for array in preds.values():
        assert array.shape == (5, 3)
        assert ((array >= 0) & (array <= 1)).all()
        assert (array[:, 2] == 0.0).all()
    # Aromatic molecules score higher than non-aromatic ones (the fingerprints carry the signal).
    test_aromatic = np.array(["c" in s for s in test])
    assert test_aromatic.any() and (~test_aromatic).any()
    assert preds["test"][test_aromatic, 0].min() > preds["test"][~test_aromatic, 0].max()
    with pytest.raises(ValueError, match="0, 1 or NaN"):
        random_forest_baseline(train, labels + 0.5, {"test": test}, "multi_label_classification", n_estimators=5)


# -------------------------------------------------------------------------------------------------------- plots
def _assert_png(path) -> None:
    data = path.read_bytes()
    assert len(data) > 1000
    assert data[:8] == PNG_SIGNATURE


def _log_history(offset: float) -> list[dict]:
    history = []
    for epoch in range(1, 5):
        history.append({"loss": 2.0 / epoch + offset, "learning_rate": 1e-4, "epoch": epoch - 0.5, "step": epoch})
        history.append({"eval_loss": 2.5 / epoch + offset, "eval_rmse": 1.5 / epoch, "epoch": float(epoch)})
    history.append({"train_runtime": 1.0, "epoch": 4.0})
    return history


def test_plots_write_png(tmp_path):
    labels = np.array([[1.0, 0.0], [2.0, np.nan], [np.nan, 1.0], [4.0, 1.0], [3.0, 0.0], [0.5, 1.0]])
    predictions = np.array([[1.2, 0.2], [1.8, 0.9], [9.0, 0.7], [3.5, 0.6], [3.1, 0.4], [0.4, 0.8]])

    out = plot_learning_curve(_log_history(0.0), tmp_path / "curve.png", "rmse", title="ESOL")
    assert out == tmp_path / "curve.png"
    _assert_png(out)
    seeds = {0: _log_history(0.0), 1: _log_history(0.1), 2: _log_history(0.2)}
    _assert_png(plot_learning_curve(seeds, tmp_path / "sub" / "seeds.png", "eval_rmse"))
    with pytest.raises(ValueError):
        plot_learning_curve([{"train_runtime": 1.0}], tmp_path / "empty.png", "rmse")

    parity = plot_parity(labels, predictions, tmp_path / "parity.png", task_names=["logS", "other"], unit="log mol/L")
    _assert_png(parity)
    _assert_png(plot_parity(labels[:, 0], predictions[:, 0], tmp_path / "parity1.png"))

    _assert_png(plot_roc(labels[:, 1:], predictions[:, 1:], tmp_path / "roc.png", task_names=["p_np"]))
    one_class = np.stack([labels[:, 1], np.ones(6)], axis=1)
    with pytest.warns(UserWarning, match="one class"):
        _assert_png(plot_roc(one_class, predictions, tmp_path / "roc2.png"))
