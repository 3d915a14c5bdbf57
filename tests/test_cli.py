"""The `moleblend` command end to end: finetune on a few dozen molecules, its saved folder, predict, featurize, the
messages a user gets for bad input, quiet mode, and the installed console script."""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoFeatureExtractor, AutoModelForSequenceClassification

import modeling_moleblend  # noqa: F401  (registers the Auto classes)
from modeling_moleblend.cli.main import EXIT_USAGE, SUBCOMMANDS, build_parser
from modeling_moleblend.cli.main import main as moleblend
from modeling_moleblend.data import QM9_SAMPLE

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config_name", "small", "--per_device_train_batch_size", "16", "--quiet", "--baseline_estimators", "10"]


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory, esol_rows):
    folder = tmp_path_factory.mktemp("finetune")
    rows = esol_rows[:48]
    table = [[f"mol{i}", r["smiles"], "" if i == 5 else r["logS"]] for i, r in enumerate(rows)]
    table.append(["bad", "C1CC(", "-1.0"])  # invalid: reported, never silently dropped
    data = write_csv(folder / "data.csv", ["id", "smiles", "logS"], table)
    out = folder / "out"
    args = ["finetune", "--train_file", str(data), "--label_columns", "logS", "--seeds", "0", "1"]
    assert moleblend([*args, "--num_train_epochs", "2", "--output_dir", str(out), *TINY]) == 0
    return data, out, rows


def test_outputs_and_protocol(regression_run):
    _, out, _ = regression_run
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
    # the spread over seeds is the sample standard deviation (ddof=1)
    first = read_csv(out / "predictions_test.csv")[0]
    seeds = [float(first["logS_pred_seed0"]), float(first["logS_pred_seed1"])]
    assert float(first["logS_pred_std"]) == pytest.approx(np.std(seeds, ddof=1), rel=1e-3)
    # the ensemble (what predict uses) is scored as one model: the RMSE of the seeds' mean prediction on test
    written = read_csv(out / "predictions_test.csv")
    errors = [float(r["logS_pred"]) - float(r["logS"]) for r in written if r["logS"] not in ("", "nan")]
    ensemble = results["ensemble"]
    assert ensemble["members"] == 2 and set(ensemble["validation"]) >= {"rmse", "mae"}
    assert ensemble["test"]["rmse"] == pytest.approx(math.sqrt(np.mean(np.square(errors))), rel=1e-4)
    assert "Ensemble of the 2 seed models on test" in (out / "model" / "README.md").read_text()


def test_saved_model_reloads_predicts_the_same_and_follows_the_recipe(regression_run):
    _, out, _ = regression_run
    results = json.loads((out / "results.json").read_text())
    best = results["best_seed"]
    model = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
    featurizer = AutoFeatureExtractor.from_pretrained(out / "model")
    assert model.config.problem_type == "regression" and model.config.id2label[0] == "logS"
    # the paper's finetuning recipe: attention dropout only
    assert model.config.activation_dropout == 0 and model.config.hidden_dropout == 0
    assert model.config.drop_path_rate == 0 and model.config.attention_dropout == 0.1
    saved = read_csv(out / "predictions_test.csv")
    batch = featurizer([row["smiles"] for row in saved], return_tensors="pt")
    with torch.no_grad():
        predicted = model(**batch).logits[:, 0].numpy()
    expected = np.array([float(row[f"logS_pred_seed{best}"]) for row in saved])
    np.testing.assert_allclose(predicted, expected, rtol=1e-4, atol=1e-4)
    card = ModelCard.load(out / "model" / "README.md")
    assert card.data.library_name == "transformers"
    assert {r.metric_type for r in card.data.eval_results} == {"rmse", "mae"}
    assert "scaffold" in card.text and "trust_remote_code=True" in card.text
    assert "moleblend predict --model_name_or_path" in card.text and "git clone" not in card.text
    assert "2D input only" in card.text and "generated conformers:" not in card.text
    weights = (out / "model" / "model.safetensors").stat().st_mode
    assert weights & stat.S_IRGRP and weights & stat.S_IROTH  # not 600 (umask 022 in tests)


def test_predict_from_the_run_folder_is_an_ensemble_and_keeps_the_input(regression_run, tmp_path):
    _, out, rows = regression_run
    inputs = [["a", rows[0]["smiles"], "1.5"], ["b", "not a molecule", "2"], ["c", "", ""]]
    inputs += [["d", rows[1]["smiles"], "-3"], ["e", "*C", ""]]
    data = write_csv(tmp_path / "new.csv", ["id", "smiles", "logS"], inputs)
    output = tmp_path / "predictions.csv"
    assert moleblend(["predict", "--model_name_or_path", str(out), "--input", str(data), "--output", str(output)]) == 0
    written = read_csv(output)
    assert [row["row"] for row in written] == ["0", "1", "2", "3", "4"]
    assert [row["id"] for row in written] == ["a", "b", "c", "d", "e"]  # input columns kept
    assert [row["logS"] for row in written] == ["1.5", "2", "", "-3", ""]  # the user's labels untouched
    assert [bool(row["logS_pred"]) for row in written] == [True, False, False, True, False]
    assert [bool(row["error"]) for row in written] == [False, True, True, False, True]
    assert "InvalidMoleculeError" in written[1]["error"] and "UnsupportedAtomError" in written[4]["error"]
    a, b = float(written[0]["logS_pred_seed0"]), float(written[0]["logS_pred_seed1"])
    assert float(written[0]["logS_pred"]) == pytest.approx((a + b) / 2, rel=1e-4)
    # the same names as the run's predictions_test.csv
    test_header = read_csv(out / "predictions_test.csv")[0].keys()
    assert {"logS_pred", "logS_pred_std", "logS_pred_seed0"} <= set(test_header) & set(written[0])


def test_predict_reads_smi_and_writes_parquet(regression_run, tmp_path):
    import pyarrow.parquet as pq

    _, out, rows = regression_run
    smi = tmp_path / "new.smi.gz"
    with gzip.open(smi, "wt") as handle:
        handle.write(f"{rows[0]['smiles']} first\nC1CC( broken\n")
    output = tmp_path / "p.parquet"
    args = ["predict", "--model_name_or_path", str(out / "model"), "--input", str(smi), "--output", str(output)]
    assert moleblend([*args, "--quiet"]) == 0
    table = pq.read_table(output).to_pydict()
    assert table["name"] == ["first", "broken"] and table["logS_pred"][1] is None
    assert table["error"][0] == "" and "InvalidMoleculeError" in table["error"][1]
    assert "logS_pred_std" not in table  # one model: no spread


def test_text_class_labels_and_multitask_classification(tmp_path, esol_rows):
    rng = np.random.default_rng(0)
    rows = []
    for i, row in enumerate(esol_rows[:40]):
        soluble = "yes" if float(row["logS"]) > -3 else "no"
        assay = "" if i % 3 == 0 else int(rng.random() > 0.5)  # a third missing
        rows.append([row["smiles"], soluble, assay])
    data = write_csv(tmp_path / "tox.csv", ["smiles", "soluble", "assay"], rows)
    out = tmp_path / "out"
    args = ["finetune", "--train_file", str(data), "--label_columns", "soluble", "assay", "--split", "random"]
    assert moleblend([*args, "--seeds", "0", "--num_train_epochs", "1", "--output_dir", str(out), *TINY]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["problem_type"] == "multi_label_classification"
    assert results["data"]["label_values"] == {"soluble": {"0": "no", "1": "yes"}}
    assert (out / "roc.png").exists() and (out / "reliability.png").stat().st_size > 0
    assert set(results["uncertainty"]["test"]["soluble"]) >= {"temperature", "ece", "ece_before", "brier"}
    assert results["ensemble"]["members"] == 1 and "roc_auc" in results["ensemble"]["test"]
    test = results["per_seed"][0]["test"]
    assert test["n_tasks_scored"] + len(test["skipped_tasks"]) == 2
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert model.config.num_labels == 2 and model.config.id2label == {0: "soluble", 1: "assay"}
    assert model.config.label_values == {"soluble": {"0": "no", "1": "yes"}}
    header = read_csv(out / "predictions_test.csv")[0]
    assert "soluble_prob" in header and "assay_prob_seed0" not in header  # probabilities, named as such


def test_finetune_from_a_run_folder_with_other_tasks_reinitialises_the_head(regression_run, tmp_path, caplog):
    _, out, rows = regression_run
    data = write_csv(
        tmp_path / "two.csv", ["smiles", "a", "b"], [[r["smiles"], r["logS"], len(r["smiles"])] for r in rows]
    )
    new = tmp_path / "new"
    args = ["finetune", "--train_file", str(data), "--label_columns", "a", "b", "--model_name_or_path", str(out)]
    assert moleblend([*args, "--seeds", "0", "--num_train_epochs", "1", "--output_dir", str(new), *TINY]) == 0
    assert "re-initialised" in caplog.text
    results = json.loads((new / "results.json").read_text())
    assert results["model"]["start"] == str(out)
    assert AutoModelForSequenceClassification.from_pretrained(new / "model").config.num_labels == 2


def test_sdf_with_a_misspelt_tag_fails_before_training(tmp_path, capsys):
    out = tmp_path / "out"
    code = moleblend(
        ["finetune", "--train_file", str(QM9_SAMPLE), "--label_columns", "GAP_EV", "--output_dir", str(out)]
    )
    assert code == EXIT_USAGE
    message = capsys.readouterr().err
    assert "GAP_EV" in message and "gap_eV" in message and "Traceback" not in message
    code = moleblend(["featurize", "--input", str(QM9_SAMPLE), "--label_columns", "logs", "--output_dir", str(out)])
    assert code == EXIT_USAGE and "logs" in capsys.readouterr().err


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing_file", "no such file"),
        ("wrong_column", "no column 'SMILES'"),
        ("empty", "no rows"),
        ("only_invalid", "0 of 3 rows could be featurized"),
        ("split_column", "--split column needs --split_column"),
        ("all_missing_label", "has no labelled training row"),
        ("model_typo", "no such model folder"),
    ],
)
def test_bad_input_is_one_message_and_exit_code_2(case, expected, tmp_path, capsys, esol_rows):
    data = tmp_path / "data.csv"
    args = ["--label_columns", "logS", "--output_dir", str(tmp_path / "out"), *TINY]
    if case == "missing_file":
        data = tmp_path / "nope.csv"
    elif case == "wrong_column":
        write_csv(data, ["smiles", "logS"], [["CCO", "1"]])
        args += ["--smiles_column", "SMILES"]
    elif case == "empty":
        data.write_text("smiles,logS\n")
    elif case == "only_invalid":
        write_csv(data, ["smiles", "logS"], [["C1CC(", "1"], ["xyz", "2"], ["", "3"]])
    elif case == "split_column":
        write_csv(data, ["smiles", "logS"], [["CCO", "1"]])
        args += ["--split", "column"]
    elif case == "all_missing_label":
        write_csv(data, ["smiles", "logS"], [[r["smiles"], "NA"] for r in esol_rows[:30]])
    elif case == "model_typo":
        write_csv(data, ["smiles", "logS"], [["CCO", "1"]])
        args += ["--model_name_or_path", str(tmp_path / "no" / "such" / "model")]
    assert moleblend(["finetune", "--train_file", str(data), *args]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert expected in captured.err and "Traceback" not in captured.err, captured.err
    assert captured.err.startswith("moleblend finetune: error:")


def test_debug_shows_the_traceback(tmp_path):
    from modeling_moleblend.data import InputError

    with pytest.raises(InputError, match="no such file"):
        moleblend(
            [
                "predict",
                "--model_name_or_path",
                "x",
                "--input",
                str(tmp_path / "no.csv"),
                "--output",
                "o.csv",
                "--debug",
            ]
        )


def test_predict_refuses_an_output_format_it_cannot_write(tmp_path, capsys):
    code = moleblend(
        ["predict", "--model_name_or_path", "x", "--input", "in.csv", "--output", str(tmp_path / "p.xlsx")]
    )
    assert code == EXIT_USAGE and ".csv, .csv.gz or .parquet" in capsys.readouterr().err


def test_quiet_means_quiet(tmp_path, esol_rows, capfd):
    data = write_csv(tmp_path / "d.csv", ["smiles", "logS"], [[r["smiles"], r["logS"]] for r in esol_rows[:30]])
    args = ["finetune", "--train_file", str(data), "--label_columns", "logS", "--seeds", "0", "--num_train_epochs", "2"]
    assert moleblend([*args, "--output_dir", str(tmp_path / "out"), *TINY]) == 0
    captured = capfd.readouterr()
    noise = captured.out + captured.err
    for marker in ("{'loss'", "'eval_loss'", "Saving the dataset", "Writing model shards", "it/s]"):
        assert marker not in noise, marker
    assert "RF on Morgan FP" in captured.out  # the summary is the one thing printed


def test_featurize_reads_csv_gz_and_writes_features(tmp_path, esol_rows):
    from datasets import load_from_disk

    data = tmp_path / "d.csv.gz"
    with gzip.open(data, "wt") as handle:
        handle.write("smiles,logS\n" + "".join(f"{r['smiles']},{r['logS']}\n" for r in esol_rows[:20]) + "C1CC(,1\n")
    out = tmp_path / "feats"
    args = ["featurize", "--input", str(data), "--label_columns", "logS", "--conformer", "none", "--quiet"]
    assert moleblend([*args, "--output_dir", str(out)]) == 0
    features = load_from_disk(str(out / "features"))
    assert len(features) == 20 and features["row"] == list(range(20))
    report = json.loads((out / "featurization_report.json").read_text())
    assert report["num_skipped"] == 1 and report["report"]["skipped"][0]["index"] == 20


def test_every_subcommand_has_help_with_an_example_and_defaults(capsys):
    parser = build_parser()
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        # an example line of the subcommand with options (after the positional choice, where there is one)
        assert re.search(rf"moleblend {name} ([a-z-]+ )?--", text) and "examples:" in text, name
    parser.parse_args(["finetune", "--train_file", "x", "--label_columns", "y", "--output_dir", "o"])
    with pytest.raises(SystemExit):
        parser.parse_args(["finetune", "--help"])
    assert "(default: 0.0005)" in capsys.readouterr().out


@pytest.mark.slow
def test_installed_console_script_end_to_end(tmp_path, esol_rows):
    """The `moleblend` executable that pip installed, in a fresh process: --help, finetune, encode."""
    executable = shutil.which("moleblend", path=str(Path(sys.executable).parent)) or shutil.which("moleblend")
    assert executable, "the moleblend console script is not installed (pip install -e .)"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    listed = subprocess.run([executable, "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0 and all(name in listed.stdout for name in SUBCOMMANDS)
    data = write_csv(tmp_path / "d.csv", ["smiles", "logS"], [[r["smiles"], r["logS"]] for r in esol_rows[:30]])
    out = tmp_path / "out"
    command = [executable, "finetune", "--train_file", str(data), "--label_columns", "logS", "--seeds", "0"]
    run = subprocess.run(
        [*command, "--num_train_epochs", "1", "--output_dir", str(out), *TINY],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    embeddings = tmp_path / "e.npy"
    command = [
        executable,
        "encode",
        "--model_name_or_path",
        str(out),
        "--input",
        str(data),
        "--output",
        str(embeddings),
    ]
    run = subprocess.run([*command, "--quiet"], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert np.load(embeddings).shape == (30, 128)
    missing = subprocess.run([executable, "predict", "--model_name_or_path", str(out), "--input", "nope.csv",
                              "--output", "p.csv"], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert missing.returncode == EXIT_USAGE and missing.stderr.count("\n") == 1 and "nope.csv" in missing.stderr


@pytest.mark.slow
def test_finetune_under_accelerate_launch_with_two_processes(tmp_path, esol_rows):
    """Two CPU processes (gloo DDP) through the thin script wrapper: the main one featurizes first and writes
    every output, once."""
    data = write_csv(tmp_path / "data.csv", ["smiles", "logS"], [[r["smiles"], r["logS"]] for r in esol_rows[:40]])
    out = tmp_path / "out"
    env = dict(os.environ, ACCELERATE_USE_CPU="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    command += [str(ROOT / "scripts" / "finetune.py"), "--train_file", str(data), "--label_columns", "logS"]
    command += ["--seeds", "0", "--num_train_epochs", "1", "--output_dir", str(out), *TINY]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.count("RF on Morgan FP") == 1  # one summary: only the main process reports
    results = json.loads((out / "results.json").read_text())
    assert results["per_seed"][0]["seed"] == 0 and (out / "model" / "model.safetensors").exists()
    assert results["training"]["num_processes"] == 2  # really data-parallel, not two independent runs


@pytest.mark.slow
def test_predict_streams_in_chunks_and_runs_data_parallel(regression_run, tmp_path, esol_rows):
    """Chunks of 4 rows give the same file as one chunk; two processes (each every other chunk) too."""
    _, out, _ = regression_run
    rows = [[f"id{i}", r["smiles"]] for i, r in enumerate(esol_rows[100:122])] + [["bad", "C1CC("]]
    data = write_csv(tmp_path / "new.csv", ["id", "smiles"], rows)
    outputs = {}
    for name, chunk in (("whole", "1000"), ("chunks", "4")):
        outputs[name] = tmp_path / f"{name}.csv"
        args = ["predict", "--model_name_or_path", str(out), "--input", str(data), "--output", str(outputs[name])]
        assert moleblend([*args, "--chunk_size", chunk, "--quiet"]) == 0
    same_table(read_csv(outputs["whole"]), read_csv(outputs["chunks"]))
    assert [row["id"] for row in read_csv(outputs["whole"])] == [r[0] for r in rows]
    parallel = tmp_path / "parallel.csv"
    env = dict(os.environ, ACCELERATE_USE_CPU="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "-m"]
    command += ["modeling_moleblend.cli", "predict", "--model_name_or_path", str(out), "--input", str(data)]
    command += ["--output", str(parallel), "--chunk_size", "4", "--quiet", "--device", "cpu"]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    same_table(read_csv(parallel), read_csv(outputs["whole"]))


def same_table(a: list[dict], b: list[dict]) -> None:
    """Equal rows and columns; numbers to float tolerance (batches of other sizes pad differently)."""
    assert len(a) == len(b) and list(a[0]) == list(b[0])
    for row_a, row_b in zip(a, b):
        for key, value in row_a.items():
            try:
                assert float(value) == pytest.approx(float(row_b[key]), rel=1e-4, abs=1e-5), key
            except ValueError:
                assert value == row_b[key], key


def test_a_seed_model_exported_alone_gets_the_runs_card(regression_run, tmp_path):
    from modeling_moleblend.hub import export_for_hub

    data, out, _ = regression_run
    folder = export_for_hub(out / "seeds" / "seed_1" / "model", tmp_path / "hub", regenerate_card=True)
    card = (folder / "README.md").read_text()
    assert "# moleblend-data" in card and "seed_1" not in card.split("\n## ")[0]
    assert data.name in card and "scaffold" in card and "rmse" in card


def test_builtin_checkpoints_load_offline_by_name_and_an_unknown_name_is_one_message(tmp_path, capsys, esol_rows):
    from modeling_moleblend import MoleBlendModel, available_checkpoints, pretrained_checkpoint
    from modeling_moleblend.inference import resolve_model_paths

    shipped = available_checkpoints()
    assert "small" in shipped  # the package ships its default start (and the loop below cannot be empty)
    with pytest.raises(FileNotFoundError, match="no shipped MoleBlend checkpoint 'nope'"):
        pretrained_checkpoint("nope")
    data = write_csv(tmp_path / "d.csv", ["smiles", "logS"], [[r["smiles"], r["logS"]] for r in esol_rows[:30]])
    argv = ["finetune", "--train_file", str(data), "--label_columns", "logS", "--seeds", "0", "--num_train_epochs",
            "1", "--baseline_estimators", "0", "--quiet", "--split", "random"]  # fmt: skip
    assert moleblend([*argv, "--model_name_or_path", "builtin:nope", "--output_dir", str(tmp_path / "x")]) == 2
    assert "no shipped MoleBlend checkpoint 'nope'" in capsys.readouterr().err
    for name in shipped:
        folder = pretrained_checkpoint(name)
        assert resolve_model_paths(f"builtin:{name}") == [str(folder)]
        assert (folder / "README.md").stat().st_size > 0 and (folder / "preprocessor_config.json").is_file()
        model = MoleBlendModel.from_pretrained(folder)  # offline, from the package
        assert model.config.model_type == "moleblend"
        if model.config.num_descriptors:  # its descriptor head's targets ship beside it, for continued pretraining
            from modeling_moleblend.data.descriptors import DescriptorScaler

            assert len(DescriptorScaler.load(folder).names) == model.config.num_descriptors
        out = tmp_path / name
        assert moleblend([*argv, "--model_name_or_path", f"builtin:{name}", "--output_dir", str(out)]) == 0
        result = json.loads((out / "results.json").read_text())
        assert result["model"]["start"] == f"builtin:{name}"
