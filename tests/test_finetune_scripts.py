"""End to end: scripts/finetune.py on a few dozen molecules, its saved folder, and scripts/predict.py."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoFeatureExtractor, AutoModelForSequenceClassification

import modeling_moleblend  # noqa: F401  (registers the Auto classes)

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
TINY = ["--config_name", "small", "--per_device_train_batch_size", "16", "--quiet", "--baseline_estimators", "10"]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory, esol_rows):
    folder = tmp_path_factory.mktemp("finetune")
    data = folder / "data.csv"
    rows = esol_rows[:48]
    with open(data, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["smiles", "logS"])
        for i, row in enumerate(rows):
            writer.writerow([row["smiles"], "" if i == 5 else row["logS"]])  # one missing label
        writer.writerow(["C1CC(", "-1.0"])  # invalid: reported, never silently dropped
    out = folder / "out"
    args = ["--train_file", str(data), "--label_columns", "logS", "--seeds", "0", "1"]
    args += ["--num_train_epochs", "2", "--output_dir", str(out), *TINY]
    assert load_script("finetune").main(args) == 0
    return data, out, rows


def test_outputs_and_protocol(regression_run):
    _, out, rows = regression_run
    for name in ("results.json", "splits.json", "predictions_test.csv", "learning_curve.png", "parity.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["num_rows"] == 49 and results["data"]["num_featurized"] == 48
    assert results["data"]["num_skipped"] == 1
    report = json.loads((out / "featurization_report.json").read_text())
    assert report["skipped"][0]["index"] == 48 and "C1CC(" in report["skipped"][0]["input_text"]
    assert [r["seed"] for r in results["per_seed"]] == [0, 1]
    for part in ("validation", "test", "baseline_test"):
        assert set(results["aggregate"][part]) >= {"rmse", "mae"}
        assert all(math.isfinite(v) for v in results["aggregate"][part]["rmse"]["values"])
    splits = json.loads((out / "splits.json").read_text())
    train, validation, test = (set(splits[k]) for k in ("train", "validation", "test"))
    assert not (train & validation or train & test or validation & test)
    assert train | validation | test == set(range(48))  # input rows; row 48 (invalid) is in none
    assert not (out / "model" / "training_args.bin").exists()  # no pickle shipped


def test_saved_model_reloads_and_predicts_the_same(regression_run):
    _, out, _ = regression_run
    results = json.loads((out / "results.json").read_text())
    best = results["best_seed"]
    model = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
    featurizer = AutoFeatureExtractor.from_pretrained(out / "model")
    assert model.config.problem_type == "regression" and model.config.id2label[0] == "logS"
    with open(out / "predictions_test.csv") as handle:
        saved = list(csv.DictReader(handle))
    batch = featurizer([row["smiles"] for row in saved], return_tensors="pt")
    with torch.no_grad():
        predicted = model(**batch).logits[:, 0].numpy()
    expected = np.array([float(row[f"logS_pred_seed{best}"]) for row in saved])
    np.testing.assert_allclose(predicted, expected, rtol=1e-4, atol=1e-4)
    card = ModelCard.load(out / "model" / "README.md")
    assert card.data.library_name == "transformers"
    assert {r.metric_type for r in card.data.eval_results} == {"rmse", "mae"}
    assert "scaffold" in card.text and "trust_remote_code=True" in card.text


def test_predict_keeps_one_row_per_input(regression_run, tmp_path):
    _, out, rows = regression_run
    data = tmp_path / "new.csv"
    inputs = [rows[0]["smiles"], "not a molecule", "", rows[1]["smiles"], "*C"]
    with open(data, "w", newline="") as handle:
        csv.writer(handle).writerows([["smiles"], *[[s] for s in inputs]])
    output = tmp_path / "predictions.csv"
    models = [str(out / "seeds" / f"seed_{s}" / "model") for s in (0, 1)]
    args = ["--model_name_or_path", *models, "--input", str(data), "--output", str(output)]
    assert load_script("predict").main(args) == 0
    with open(output) as handle:
        written = list(csv.DictReader(handle))
    assert [row["row"] for row in written] == ["0", "1", "2", "3", "4"]
    assert [bool(row["logS"]) for row in written] == [True, False, False, True, False]
    assert [bool(row["error"]) for row in written] == [False, True, True, False, True]
    assert "InvalidMoleculeError" in written[1]["error"] and "UnsupportedAtomError" in written[4]["error"]
    a, b = float(written[0]["logS_model0"]), float(written[0]["logS_model1"])
    assert float(written[0]["logS"]) == pytest.approx((a + b) / 2, rel=1e-4)


def test_multitask_classification_with_missing_labels(tmp_path, esol_rows):
    data = tmp_path / "tox.csv"
    rng = np.random.default_rng(0)
    with open(data, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["smiles", "soluble", "assay"])
        for i, row in enumerate(esol_rows[:40]):
            soluble = int(float(row["logS"]) > -3)
            assay = "" if i % 3 == 0 else int(rng.random() > 0.5)  # a third missing
            writer.writerow([row["smiles"], soluble, assay])
    out = tmp_path / "out"
    args = ["--train_file", str(data), "--label_columns", "soluble", "assay", "--split", "random", "--seeds", "0"]
    args += ["--num_train_epochs", "1", "--output_dir", str(out), *TINY]
    assert load_script("finetune").main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["problem_type"] == "multi_label_classification"
    assert (out / "roc.png").exists()
    test = results["per_seed"][0]["test"]
    assert test["n_tasks_scored"] + len(test["skipped_tasks"]) == 2
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert model.config.num_labels == 2 and model.config.id2label == {0: "soluble", 1: "assay"}


@pytest.mark.slow
def test_finetune_under_accelerate_launch_with_two_processes(tmp_path, esol_rows):
    """Two CPU processes (gloo DDP): the main one featurizes first and writes every output, once."""
    import os
    import subprocess
    import sys

    data = tmp_path / "data.csv"
    data.write_text("smiles,logS\n" + "\n".join(f"{r['smiles']},{r['logS']}" for r in esol_rows[:40]) + "\n")
    out = tmp_path / "out"
    env = dict(os.environ, ACCELERATE_USE_CPU="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    command += [str(SCRIPTS / "finetune.py"), "--train_file", str(data), "--label_columns", "logS", "--seeds", "0"]
    command += ["--num_train_epochs", "1", "--output_dir", str(out), *TINY]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.count("RF on Morgan FP") == 1  # one summary: only the main process reports
    results = json.loads((out / "results.json").read_text())
    assert results["per_seed"][0]["seed"] == 0 and (out / "model" / "model.safetensors").exists()
    assert results["training"]["num_processes"] == 2  # really data-parallel, not two independent runs
