"""Classical baseline: a random forest on Morgan (ECFP-like) fingerprints, one forest per task.

The yardstick every MoleculeNet result should be read against (see ``metrics`` for scoring):

    from modeling_moleblend.evaluation.baselines import random_forest_baseline
    preds = random_forest_baseline(train_smiles, train_labels, {"test": test_smiles}, "regression", seed=0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdFingerprintGenerator
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from .metrics import as_2d

PROBLEM_TYPES = ("regression", "multi_label_classification")


def morgan_fingerprints(smiles: Sequence[str], radius: int = 2, n_bits: int = 2048) -> np.ndarray:
    """Bit-vector Morgan fingerprints.

    Args:
        smiles: n SMILES strings.
        radius: Morgan radius (2 ~ ECFP4).
        n_bits: fingerprint length.

    Returns:
        ``[n, n_bits]`` ``uint8`` array of 0/1.

    Raises:
        ValueError: a SMILES is empty or unparsable (the message names its index and text).
    """
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    out = np.zeros((len(smiles), n_bits), dtype=np.uint8)
    for index, smi in enumerate(smiles):
        mol = None
        if isinstance(smi, str) and smi.strip():
            with rdBase.BlockLogs():
                mol = Chem.MolFromSmiles(smi)
        if mol is None or mol.GetNumAtoms() == 0:
            raise ValueError(f"Row {index}: invalid SMILES {smi!r}")
        out[index] = generator.GetFingerprintAsNumPy(mol)
    return out


def random_forest_baseline(
    train_smiles: Sequence[str],
    train_labels: np.ndarray,
    predict_smiles: dict[str, Sequence[str]],
    problem_type: str,
    seed: int = 0,
    n_estimators: int = 500,
    n_jobs: int | None = None,
) -> dict[str, np.ndarray]:
    """Fit one random forest per task on Morgan fingerprints and predict other splits.

    Args:
        train_smiles: n training SMILES.
        train_labels: ``[n, T]`` or ``[n]`` float; ``NaN`` = missing. Each task's forest is trained on that task's
            labelled rows only. For classification, present labels must be 0/1.
        predict_smiles: ``{split_name: SMILES}`` to predict, e.g. ``{"validation": [...], "test": [...]}``.
        problem_type: ``"regression"`` or ``"multi_label_classification"``.
        seed: ``random_state`` of every forest (the same seed gives the same predictions).
        n_estimators: trees per forest.
        n_jobs: passed to scikit-learn (``None`` = one core).

    Returns:
        ``{split_name: [m, T] float64}``: regression values, or the probability of class 1. A classification task
        whose training rows hold a single class predicts that class's probability (0.0 or 1.0) everywhere.

    Raises:
        ValueError: unknown ``problem_type``, length mismatch, a task without any training label, non-0/1
        classification labels, or an invalid SMILES.
    """
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"Unknown problem_type {problem_type!r}; expected one of {PROBLEM_TYPES}")
    y = as_2d(train_labels, "train_labels")
    if y.shape[0] != len(train_smiles):
        raise ValueError(f"{len(train_smiles)} training SMILES but {y.shape[0]} label rows")
    classification = problem_type == "multi_label_classification"
    if classification:
        present = y[~np.isnan(y)]
        if not np.isin(present, (0.0, 1.0)).all():
            raise ValueError("multi_label_classification labels must be 0, 1 or NaN")

    x_train = morgan_fingerprints(train_smiles)
    x_predict = {name: morgan_fingerprints(smiles) for name, smiles in predict_smiles.items()}
    out = {name: np.zeros((x.shape[0], y.shape[1]), dtype=np.float64) for name, x in x_predict.items()}

    for t in range(y.shape[1]):
        labelled = ~np.isnan(y[:, t])
        if not labelled.any():
            raise ValueError(f"Task {t} has no labelled training rows; a baseline cannot be trained for it")
        x_t, y_t = x_train[labelled], y[labelled, t]
        if classification:
            classes = np.unique(y_t)
            if len(classes) == 1:
                for name in out:
                    out[name][:, t] = float(classes[0])
                continue
            model = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=n_jobs)
            model.fit(x_t, y_t.astype(np.int64))
            positive = list(model.classes_).index(1)
            for name, x in x_predict.items():
                if x.shape[0]:
                    out[name][:, t] = model.predict_proba(x)[:, positive]
        else:
            model = RandomForestRegressor(n_estimators=n_estimators, random_state=seed, n_jobs=n_jobs)
            model.fit(x_t, y_t)
            for name, x in x_predict.items():
                if x.shape[0]:
                    out[name][:, t] = model.predict(x)
    return out
