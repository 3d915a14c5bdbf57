"""Finetuning tools: readouts and regression losses, predefined and carved splits, ensemble calibration,
hyper-parameter search (killed and resumed from its SQLite study) and per-atom explanations."""

from __future__ import annotations

import csv
import json
import logging
import math

import numpy as np
import pytest
import torch

from modeling_moleblend import MoleBlendConfig, MoleBlendFeaturizer, MoleBlendForPropertyPrediction
from modeling_moleblend.cli.main import main as moleblend
from modeling_moleblend.data.splits import carve_validation, murcko_scaffold
from modeling_moleblend.evaluation.uncertainty import (
    brier_score,
    calibrated_probabilities,
    classification_calibration,
    expected_calibration_error,
    fit_interval_scale,
    fit_temperature,
    regression_uncertainty,
)

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, input_modality="2d")
TINY = ["--per_device_train_batch_size", "16", "--quiet", "--baseline_estimators", "5"]


def write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("readout", ["graph_token", "mean", "sum", "graph_token+mean"])
def test_readouts_are_exact_and_permutation_invariant(readout):
    torch.manual_seed(0)
    config = MoleBlendConfig.from_preset("small", **SMALL, num_labels=1, problem_type="regression", readout=readout)
    model = MoleBlendForPropertyPrediction(config).eval()
    batch = MoleBlendFeaturizer(conformer="none")(["CCO", "c1ccccc1O"], return_tensors="pt")
    with torch.no_grad():
        hidden = model.moleblend(**batch).last_hidden_state
        pooled = model.readout(hidden, batch["atom_mask"].bool())
    ethanol = hidden[0, 1:4]  # 3 heavy atoms, then padding
    expected = {
        "graph_token": hidden[0, 0],
        "mean": ethanol.mean(0),
        "sum": ethanol.sum(0),
        "graph_token+mean": torch.cat([hidden[0, 0], ethanol.mean(0)]),
    }[readout]
    torch.testing.assert_close(pooled[0], expected)
    assert model.classifier.dense.in_features == (64 if readout == "graph_token+mean" else 32)
    with torch.no_grad():  # the same molecule written in another atom order predicts the same
        reordered = MoleBlendFeaturizer(conformer="none")(["OCC", "Oc1ccccc1"], return_tensors="pt")
        torch.testing.assert_close(model(**batch).logits, model(**reordered).logits, rtol=1e-5, atol=1e-5)


def test_regression_losses_on_standardised_targets():
    config = MoleBlendConfig.from_preset(
        "small", **SMALL, num_labels=1, problem_type="regression", target_mean=[1.0], target_std=[2.0]
    )
    logits, labels = torch.tensor([[0.5], [-1.0], [4.0]]), torch.tensor([[2.0], [float("nan")], [1.0]])
    error = torch.tensor([0.5 - 0.5, 4.0 - 0.0])  # standardised: (2 - 1) / 2 = 0.5, (1 - 1) / 2 = 0
    for name, expected in (
        ("mse", (error**2).mean()),
        ("l1", error.abs().mean()),
        ("huber", torch.tensor([0.0, 4.0 - 0.5]).mean()),  # delta 1: quadratic below 1, linear above
    ):
        config.regression_loss = name
        model = MoleBlendForPropertyPrediction(config)
        assert float(model.compute_loss(logits, labels)) == pytest.approx(float(expected)), name
    with pytest.raises(Exception, match="regression_loss"):  # StrictDataclassClassValidationError
        MoleBlendConfig.from_preset("small", regression_loss="cubic")


def test_finetuning_batches_group_molecules_by_size_and_evaluation_is_sorted(tmp_path):
    """The Trainer's samplers: training batches are LengthBucketedBatchSampler's (seeded per epoch, so a resumed
    run sees the same ones), evaluation batches come smallest first."""
    import datasets
    from transformers import Trainer, TrainingArguments

    from modeling_moleblend.data.samplers import LengthBucketedBatchSampler, LengthBucketedSampler
    from modeling_moleblend.training.finetuning import length_bucketed_trainer

    lengths = np.random.default_rng(0).integers(3, 60, size=203)
    sampler = LengthBucketedSampler(lengths, batch_size=8, seed=5, megabatch_batches=0)
    assert sampler.batches.megabatch_batches == 203 // 32  # transformers' rule: a quarter of the epoch
    order = list(sampler)
    assert sorted(order) == list(range(203))
    assert [order[i : i + 8] for i in range(0, 203, 8)] == LengthBucketedBatchSampler(lengths, 8, 5, 6).batches(0)
    sampler.set_epoch(1)
    assert list(sampler) != order and sorted(sampler) == list(range(203))

    table = datasets.Dataset.from_dict({"num_atoms": lengths.tolist()})
    trainer = length_bucketed_trainer(Trainer, 50)(
        model=torch.nn.Linear(1, 1),
        args=TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, per_device_eval_batch_size=8,
                               seed=5, report_to="none", use_cpu=True, remove_unused_columns=False),
        train_dataset=table,
        eval_dataset=table,
        data_collator=lambda rows: [row["num_atoms"] for row in rows],
    )  # fmt: skip
    evaluated = [n for batch in trainer.get_eval_dataloader() for n in batch]
    assert evaluated == sorted(lengths.tolist())
    trained = [batch for batch in trainer.get_train_dataloader()]
    expected = LengthBucketedBatchSampler(lengths, 8, seed=5, megabatch_batches=50).batches(0)
    assert trained == [lengths[b].tolist() for b in expected]
    padded = sum(len(b) * max(b) for b in trained)
    assert sum(lengths) / padded > 0.9  # one megabatch holds the epoch: nearly no padding


def test_carving_validation_from_train_is_deterministic_and_keeps_scaffolds(esol_smiles):
    smiles = esol_smiles[:300]
    split = {"train": list(range(0, 250)), "validation": [], "test": list(range(250, 300))}
    carved = carve_validation(split, smiles, 1 / 9)
    assert carved == carve_validation(split, smiles, 1 / 9)
    assert sorted(carved["train"] + carved["validation"]) == split["train"] and carved["test"] == split["test"]
    assert 20 <= len(carved["validation"]) <= 35
    train_scaffolds = {murcko_scaffold(smiles[i]) for i in carved["train"]}
    assert not train_scaffolds & {murcko_scaffold(smiles[i]) for i in carved["validation"]}
    random = carve_validation(split, smiles, 0.1, kind="random", seed=3)
    assert (
        random
        == carve_validation(split, smiles, 0.1, kind="random", seed=3)
        != carve_validation(split, smiles, 0.1, kind="random", seed=4)
    )


def test_predefined_files_and_a_train_test_column(tmp_path, esol_rows):
    rows = [[r["smiles"], r["logS"]] for r in esol_rows[:60]]
    train = write_csv(tmp_path / "train.csv", ["smiles", "logS"], rows[:40])
    valid = write_csv(tmp_path / "valid.csv", ["smiles", "logS"], rows[40:50])
    test = write_csv(tmp_path / "test.csv", ["smiles", "logS"], rows[50:])
    out = tmp_path / "files"
    args = ["finetune", "--train_file", str(train), "--validation_file", str(valid), "--test_file", str(test)]
    assert moleblend([*args, "--label_columns", "logS", "--seeds", "0", "--num_train_epochs", "1", "--output_dir",
                      str(out), *TINY]) == 0  # fmt: skip
    splits = json.loads((out / "splits.json").read_text())
    assert splits["train"] == list(range(40)) and splits["validation"] == list(range(40, 50))
    assert splits["test"] == list(range(50, 60))
    column = write_csv(tmp_path / "column.csv", ["smiles", "logS", "part"],
                       [[s, y, "test" if i >= 50 else "train"] for i, (s, y) in enumerate(rows)])  # fmt: skip
    out = tmp_path / "column"
    args = ["finetune", "--train_file", str(column), "--label_columns", "logS", "--split", "column"]
    assert moleblend([*args, "--split_column", "part", "--seeds", "0", "--num_train_epochs", "1", "--output_dir",
                      str(out), *TINY]) == 0  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert "validation carved out of train (scaffold" in results["data"]["split"]["description"]
    splits = json.loads((out / "splits.json").read_text())
    assert splits["test"] == list(range(50, 60)) and splits["validation"] and set(splits["validation"]) < set(range(50))


@pytest.mark.parametrize("features", [["--molecule_descriptors"], ["--molecule_descriptors", "--morgan_counts"]])
def test_finetuning_with_descriptors_fits_them_on_train_and_predict_computes_them(
    tmp_path, esol_rows, features, caplog
):
    from rdkit import Chem
    from rdkit.Chem import Crippen

    rows = [[r["smiles"], r["logS"]] for r in esol_rows[:60]]
    data = write_csv(tmp_path / "data.csv", ["smiles", "logS"], rows)
    out = tmp_path / "run"
    tiny = "hidden_size=32,num_hidden_layers=2,num_attention_heads=4,intermediate_size=64"
    common = ["--label_columns", "logS", "--seeds", "0", "--num_train_epochs", "1", "--split", "random", *TINY]
    assert moleblend(["finetune", "--train_file", str(data), *features, "--from_scratch",
                      "--config_overrides", tiny, "--output_dir", str(out), *common]) == 0  # fmt: skip
    config = MoleBlendConfig.from_pretrained(out / "model")
    featurizer = MoleBlendFeaturizer.from_pretrained(out / "model")
    names = config.molecule_feature_names
    assert featurizer.molecule_descriptors == names and "MolLogP" in names and "NumRadicalElectrons" not in names
    bits = [name for name in names if name.startswith("MorganCount2_")]
    assert (len(bits) > 20) == ("--morgan_counts" in features) and len(bits) < 2048  # bits unused on train dropped
    for bit in bits:  # counts on their own scale, log1p(count): a rare bit is not blown up to the clip
        k = names.index(bit)
        assert (config.molecule_feature_center[k], config.molecule_feature_scale[k]) == (0.0, 1.0)
    train = json.loads((out / "splits.json").read_text())["train"]
    logp = np.array([Crippen.MolLogP(Chem.MolFromSmiles(rows[i][0])) for i in train])
    center = np.mean(np.sign(logp) * np.log1p(np.abs(logp)))
    assert config.molecule_feature_center[names.index("MolLogP")] == pytest.approx(center, rel=1e-9)

    smiles = [rows[i][0] for i in range(3)]
    write_csv(tmp_path / "new.csv", ["smiles"], [[s] for s in smiles])
    assert moleblend(["predict", "--model_name_or_path", str(out / "model"), "--input", str(tmp_path / "new.csv"),
                      "--output", str(tmp_path / "p.csv"), "--quiet"]) == 0  # fmt: skip
    with open(tmp_path / "p.csv") as handle:
        predicted = [float(row["logS_pred"]) for row in csv.DictReader(handle)]
    model = MoleBlendForPropertyPrediction.from_pretrained(out / "model").eval()
    with torch.no_grad():
        expected = model(**featurizer(smiles, return_tensors="pt")).logits[:, 0].numpy()
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-5)
    # the encoder of such a model takes the same batches (it ignores the descriptors the head reads)
    assert moleblend(["encode", "--model_name_or_path", str(out / "model"), "--input", str(tmp_path / "new.csv"),
                      "--output", str(tmp_path / "e.npy"), "--quiet"]) == 0  # fmt: skip

    again = tmp_path / "again"  # continuing from the finetuned model keeps its descriptors and statistics
    with caplog.at_level(logging.WARNING, logger="modeling_moleblend.training.finetuning"):
        assert moleblend(["finetune", "--train_file", str(data), "--model_name_or_path", str(out / "model"),
                          "--morgan_counts", "--output_dir", str(again), *common]) == 0  # fmt: skip
    assert f"reads its own {len(names)} molecule features, which are kept; --morgan_counts ignored" in caplog.text
    continued = MoleBlendConfig.from_pretrained(again / "model")
    assert continued.molecule_feature_names == names
    assert continued.molecule_feature_center == config.molecule_feature_center


def test_temperature_and_interval_calibration_recover_what_was_built_in():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 2, size=4000)
    labels = (rng.random(4000) < 1 / (1 + np.exp(-true_logit))).astype(float)
    assert fit_temperature(labels, 3 * true_logit) == pytest.approx(3.0, rel=0.1)  # over-confident by 3x
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([0.75, 0.25])) == pytest.approx(0.25)
    assert brier_score(np.array([1.0, 0.0, np.nan]), np.array([0.75, 0.5, 0.9])) == pytest.approx((0.0625 + 0.25) / 2)
    members = np.stack([3 * true_logit + rng.normal(0, 0.1, 4000) for _ in range(3)])[:, :, None]
    calibration, metrics = classification_calibration(labels[:, None], members, labels[:, None], members, ["y"])
    assert metrics["y"]["ece"] < metrics["y"]["ece_before"] and metrics["y"]["brier"] <= metrics["y"]["brier_before"]
    probabilities = calibrated_probabilities(members.mean(0), calibration)
    assert probabilities[0, 0] == pytest.approx(1 / (1 + np.exp(-members.mean(0)[0, 0] / calibration.temperature[0])))
    # regression: the error is 2x the spread: the scale is fitted to 1.645 * 2 and test coverage is ~90%
    sigma = rng.uniform(0.5, 2, size=4000)
    center = rng.normal(size=4000)
    y = center + rng.normal(size=4000) * 2 * sigma
    assert fit_interval_scale(y, center, sigma, 0.9) == pytest.approx(2 * 1.645, rel=0.05)
    spread_members = np.stack([center + sigma, center - sigma])[:, :, None]  # sample std = sqrt(2) * sigma
    calibration, metrics = regression_uncertainty(y[:, None], spread_members, y[:, None], spread_members, ["y"])
    assert metrics["y"]["coverage_90"] == pytest.approx(0.9, abs=0.02)


def _cli_ok(argv):
    assert moleblend(argv) == 0


class Killed(Exception):
    pass


def test_hpopt_runs_three_trials_is_killed_and_resumes_from_its_study(tmp_path, esol_rows):
    import optuna
    from transformers import TrainerCallback

    from modeling_moleblend.training.hpopt import HpoptArguments, hpopt

    data = write_csv(tmp_path / "d.csv", ["smiles", "logS"], [[r["smiles"], r["logS"]] for r in esol_rows[:40]])
    space = json.dumps({"hidden_size": 32, "num_hidden_layers": 2, "num_train_epochs": {"low": 1, "high": 2},
                        "per_device_train_batch_size": 16})  # fmt: skip
    settings = dict(train_file=data, label_columns=["logS"], output_dir=tmp_path / "search", n_trials=3,
                    search_space=space, seeds=[0], baseline_estimators=5, quiet=True)  # fmt: skip

    class KillSecondTrial(TrainerCallback):
        def __init__(self):
            self.starts = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.starts += 1
            if self.starts == 2:
                raise Killed

    with pytest.raises(Killed):
        hpopt(HpoptArguments(**settings), callbacks=[KillSecondTrial()])
    study = optuna.load_study(study_name="moleblend", storage=f"sqlite:///{tmp_path / 'search' / 'study.sqlite3'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]
    first = study.trials[0].params
    result = hpopt(HpoptArguments(**settings))
    study = optuna.load_study(study_name="moleblend", storage=f"sqlite:///{tmp_path / 'search' / 'study.sqlite3'}")
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3 and study.trials[0].params == first  # the first trial kept, not redone
    assert {t["number"] for t in result.trials} == {0, 1, 2, 3}
    for name in ("trials.csv", "trials.json", "optimization_history.png", "best_params.json"):
        assert (tmp_path / "search" / name).is_file(), name
    assert result.final.per_seed and (tmp_path / "search" / "best" / "model" / "config.json").is_file()
    card = (tmp_path / "search" / "best" / "model" / "README.md").read_text()
    assert "Hyper-parameter search" in card and "3 finished trials" in card
    assert math.isfinite(result.best_value)


def test_hpopt_trials_with_several_seeds_score_their_mean_and_prune_on_the_first(tmp_path, esol_rows):
    import optuna

    from modeling_moleblend.training.hpopt import HpoptArguments, hpopt

    data = write_csv(tmp_path / "d.csv", ["smiles", "logS"], [[r["smiles"], r["logS"]] for r in esol_rows[:40]])
    space = json.dumps({"hidden_size": 32, "num_hidden_layers": 2, "num_train_epochs": 2,
                        "per_device_train_batch_size": 16})  # fmt: skip
    result = hpopt(HpoptArguments(train_file=data, label_columns=["logS"], output_dir=tmp_path / "search", n_trials=1,
                                  search_space=space, trial_seeds=[3, 4], seeds=[0], baseline_estimators=0,
                                  quiet=True))  # fmt: skip
    trial_result = json.loads((tmp_path / "search" / "trials" / "trial_0" / "results.json").read_text())
    per_seed = {run["seed"]: run["validation"]["rmse"] for run in trial_result["per_seed"]}
    assert sorted(per_seed) == [3, 4] and per_seed[3] != per_seed[4]
    assert result.best_value == pytest.approx((per_seed[3] + per_seed[4]) / 2)
    study = optuna.load_study(study_name="moleblend", storage=f"sqlite:///{tmp_path / 'search' / 'study.sqlite3'}")
    reported = study.trials[0].intermediate_values  # the first seed's per-epoch curve, its last epoch = its best
    assert sorted(reported) == [1, 2] and min(reported.values()) == pytest.approx(per_seed[3])
    card = (tmp_path / "search" / "best" / "model" / "README.md").read_text()
    assert "the mean of seeds [3, 4] each" in card


def test_explain_attributions_concentrate_on_the_atoms_that_make_the_target(tmp_path):
    """A tiny model trained to count nitrogen atoms: the attributions sit on the nitrogens."""
    from modeling_moleblend.evaluation.attribution import integrated_gradients

    rng = np.random.default_rng(0)
    pieces = ["C", "N", "O", "CC", "CN", "C(N)", "C(C)", "N(C)", "CO"]
    smiles = sorted({"C" + "".join(rng.choice(pieces, size=rng.integers(2, 7))) for _ in range(400)})
    counts = np.array([[s.count("N")] for s in smiles], dtype=np.float32)
    torch.manual_seed(0)
    config = MoleBlendConfig.from_preset(
        "small", **SMALL, num_labels=1, problem_type="regression", readout="sum", attention_dropout=0.0,
        target_mean=[float(counts.mean())], target_std=[float(counts.std())],
    )  # fmt: skip
    model = MoleBlendForPropertyPrediction(config)
    featurizer = MoleBlendFeaturizer(conformer="none")
    features = featurizer.featurize(smiles, labels=counts).features
    batch = featurizer(smiles, labels=counts, return_tensors="pt")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss) < 0.05
    attributions, predictions, baselines = integrated_gradients(model, features[:40], steps=64)
    nitrogen, other = [], []
    for smi, weights in zip(smiles[:40], attributions):
        mol = __import__("rdkit.Chem", fromlist=["Chem"]).MolFromSmiles(smi)
        for atom, value in zip(mol.GetAtoms(), weights):
            (nitrogen if atom.GetSymbol() == "N" else other).append(value)
    assert np.mean(nitrogen) > 0.5 and abs(np.mean(other)) < 0.25 * np.mean(nitrogen)
    completeness = [w.sum() for w in attributions] - (predictions - baselines)  # the Riemann sum converged
    assert np.abs(completeness).max() < 0.1 * np.abs(predictions - baselines).max()
    # the command: numbers and pictures
    data = write_csv(tmp_path / "m.csv", ["smiles"], [[s] for s in smiles[:3]] + [["not a molecule"]])
    model.save_pretrained(tmp_path / "model")
    featurizer.save_pretrained(tmp_path / "model")
    out = tmp_path / "explained"
    _cli_ok(["explain", "--model_name_or_path", str(tmp_path / "model"), "--input", str(data), "--output_dir",
             str(out), "--steps", "8", "--quiet"])  # fmt: skip
    saved = json.loads((out / "attributions.json").read_text())
    assert len(saved["molecules"]) == 3 and "3" in saved["errors"]
    assert (out / "row_0.png").stat().st_size > 0 and (out / "grid.png").is_file()
    with open(out / "attributions.csv") as handle:
        assert {row["element"] for row in csv.DictReader(handle)} <= {"C", "N", "O"}


# ---------------------------------------------------------------------------------------------------------- experiments

EXPERIMENT_SMILES = ["CCO", "CCN", "CCC", "c1ccccc1", "CC(=O)O", "CCOC", "CCCN", "CCCCO", "c1ccncc1", "CC(C)O",
                     "OCCO", "NCCN", "CC#N", "C=CC", "CCCl", "CCBr", "c1ccoc1", "CCS", "CNC", "COC"] * 2  # fmt: skip


def test_experiment_ablation_at_the_tiny_budget_tabulates_resumes_and_chooses_on_validation(tmp_path):
    from modeling_moleblend.training.experiments import relative_improvement, score_arms

    rows = [[s, round(0.3 * len(s) + 0.1 * i, 2)] for i, s in enumerate(EXPERIMENT_SMILES)]
    data = write_csv(tmp_path / "t.csv", ["smiles", "y"], rows)
    out = tmp_path / "ablation"
    argv = ["experiment", "ablation", "--tasks", f"toy={data}:y", "--budget", "tiny", "--arms", "full",
            "--split", "random", "--num_workers", "0", "--quiet", "--output_dir", str(out)]  # fmt: skip
    _cli_ok(argv)
    saved = json.loads((out / "experiment.json").read_text())
    assert saved["arms"] == ["no_pretraining", "full"] and saved["budget"]["pretrain_steps"] == 4
    assert [(row["arm"], row["task"], row["metric"]) for row in saved["table"]] == [
        ("no_pretraining", "toy", "rmse"), ("full", "toy", "rmse")]  # fmt: skip
    assert saved["scores"]["no_pretraining"] == {"validation": 0.0, "test": 0.0} and saved["chosen"] == "full"
    assert (out / "arms" / "full" / "pretrained" / "model.safetensors").is_file()
    assert "| **full** |" in (out / "experiment.md").read_text() and (out / "experiment.png").stat().st_size > 0
    # the same command again: every piece is kept, nothing is recomputed
    finished = (out / "arms" / "full" / "toy" / "results.json").stat().st_mtime_ns
    _cli_ok(argv)
    assert (out / "arms" / "full" / "toy" / "results.json").stat().st_mtime_ns == finished
    assert json.loads((out / "experiment.json").read_text())["table"] == saved["table"]
    # the decision rule, by construction: higher-is-better metrics and lower-is-better ones
    assert relative_improvement("rmse", 0.9, 1.0) == pytest.approx(0.1)
    assert relative_improvement("roc_auc", 0.9, 0.75) == pytest.approx(0.2)
    table = [{"arm": a, "task": t, "metric": "rmse", "validation_mean": v, "test_mean": v}
             for a, t, v in [("no_pretraining", "x", 1.0), ("no_pretraining", "z", 2.0), ("a", "x", 0.5),
                             ("a", "z", 2.0)]]  # fmt: skip
    assert score_arms(table, "no_pretraining")["a"]["validation"] == pytest.approx(0.25)
    assert moleblend(["experiment", "ablation", "--tasks", "bad-spec", "--output_dir", str(tmp_path / "x")]) == 2
    # a corpus without the SMILES column fails before any arm runs, naming the column
    corpus = write_csv(tmp_path / "corpus.csv", ["SMILES"], [["CCO"], ["CCN"]])
    wrong = tmp_path / "wrong_column"
    assert moleblend(["experiment", "ablation", "--tasks", f"toy={data}:y", "--corpus", str(corpus),
                      "--budget", "tiny", "--quiet", "--output_dir", str(wrong)]) == 2  # fmt: skip
    assert not (wrong / "arms").exists()


def test_processes_sharing_an_experiment_take_the_free_arms_first_and_wait_for_the_busy_ones(tmp_path):
    """An arm locked by another run is deferred, then waited for (and only read) once the free ones are done."""
    import threading

    from filelock import FileLock

    from modeling_moleblend.training.experiments import run_arms_in_turn

    (tmp_path / "arms" / "b").mkdir(parents=True)
    held, release, calls = threading.Event(), threading.Event(), []

    def other_run():  # another process's run holding arm b (its own lock object, in its own thread)
        with FileLock(str(tmp_path / "arms" / "b" / ".lock")):
            held.set()
            release.wait(timeout=30)

    def run_arm(arm):
        calls.append(arm)
        if arm == "c":
            release.set()  # the other run finishes b while this one works on c
        return [arm.upper()]

    other = threading.Thread(target=other_run)
    other.start()
    assert held.wait(timeout=30)
    results = run_arms_in_turn(["a", "b", "c"], tmp_path, run_arm)
    other.join(timeout=30)
    assert calls == ["a", "c", "b"] and results == {"a": ["A"], "b": ["B"], "c": ["C"]}
    assert run_arms_in_turn(["a", "b"], tmp_path, run_arm) == {"a": ["A"], "b": ["B"]}  # alone: in order


def test_objective_experiment_passes_each_arm_its_objective(tmp_path, capsys):
    rows = [[s, round(0.3 * len(s) + 0.1 * i, 2)] for i, s in enumerate(EXPERIMENT_SMILES)]
    data = write_csv(tmp_path / "t.csv", ["smiles", "y"], rows)
    out = tmp_path / "objective"
    arms = ["--arms", "descriptors", "hidden_pairs_only"]
    _cli_ok(["experiment", "objective", "--tasks", f"toy={data}:y", "--budget", "tiny", *arms, "--split", "random",
             "--pretrain_steps", "3", "--num_workers", "0", "--quiet", "--output_dir", str(out)])  # fmt: skip
    saved = json.loads((out / "experiment.json").read_text())
    assert saved["arms"] == ["no_pretraining", "hidden_pairs_only", "descriptors"]
    # --pretrain_steps replaces the budget's 4 updates, for every arm, and the table says so
    assert saved["budget"]["pretrain_steps"] == 3 and "3 pretraining updates" in (out / "experiment.md").read_text()
    for arm in ("descriptors", "hidden_pairs_only"):
        log = (out / "arms" / arm / "pretrained" / "pretraining_log.jsonl").read_text().splitlines()
        assert max(json.loads(line).get("step", 0) for line in log) == 3
    # resuming with another number of updates is refused, not mixed into the table
    assert moleblend(["experiment", "objective", "--tasks", f"toy={data}:y", "--budget", "tiny", *arms,
                      "--split", "random", "--pretrain_steps", "4", "--num_workers", "0", "--quiet",
                      "--output_dir", str(out)]) == 2  # fmt: skip
    assert json.loads((out / "experiment.json").read_text())["budget"]["pretrain_steps"] == 3
    assert moleblend(["experiment", "objective", "--tasks", f"toy={data}:y", "--pretrain_steps", "0",
                      "--output_dir", str(tmp_path / "zero")]) == 2  # fmt: skip
    config = {arm: json.loads((out / "arms" / arm / "pretrained" / "config.json").read_text())
              for arm in ("descriptors", "hidden_pairs_only")}  # fmt: skip
    assert config["descriptors"]["num_descriptors"] > 50 and not config["descriptors"]["score_hidden_pairs_only"]
    assert (
        config["hidden_pairs_only"]["num_descriptors"] == 0 and config["hidden_pairs_only"]["score_hidden_pairs_only"]
    )
    log = (out / "arms" / "descriptors" / "pretrained" / "pretraining_log.jsonl").read_text()
    assert "train_descriptor_loss" in log
    # an arm killed before it finished (its checkpoint kept, no results) resumed under another number of updates:
    # its pretraining refuses the checkpoint, and the experiment says which arm, as an input error
    killed = out / "arms" / "hidden_pairs_only" / "pretrained"
    assert list(killed.glob("step_*"))
    (killed / "all_results.json").unlink()
    capsys.readouterr()
    assert moleblend(["experiment", "objective", "--tasks", f"toy={data}:y", "--budget", "tiny", *arms,
                      "--split", "random", "--pretrain_steps", "4", "--num_workers", "0", "--quiet",
                      "--output_dir", str(out)]) == 2  # fmt: skip
    error = capsys.readouterr().err
    assert "hidden_pairs_only" in error and "max_train_steps 3 -> 4" in error, error


def test_modality_experiment_arms_score_the_same_test_rows(tmp_path):
    """Every input modality keeps every row: a molecule without a conformer stays, with no 3D."""
    from modeling_moleblend.training.experiments import _test_rows

    rows = [[s, round(0.3 * len(s) + 0.1 * i, 2)] for i, s in enumerate(EXPERIMENT_SMILES)]
    data = write_csv(tmp_path / "t.csv", ["smiles", "y"], rows)
    out = tmp_path / "modality"
    _cli_ok(["experiment", "modality", "--tasks", f"toy={data}:y", "--budget", "tiny", "--arms", "no_pretraining",
             "--split", "random", "--num_workers", "0", "--quiet", "--output_dir", str(out)])  # fmt: skip
    saved = json.loads((out / "experiment.json").read_text())
    assert [row["arm"] for row in saved["table"]] == [f"no_pretraining/{m}" for m in ("2d", "3d", "2d3d")]
    kept = {_test_rows(out / "arms" / "no_pretraining" / f"toy_{m}") for m in ("2d", "3d", "2d3d")}
    assert len(kept) == 1 and len(next(iter(kept))) == saved["table"][0]["test_rows"] == 4
    assert saved["notes"] == []


def test_qm9_energies_become_atomization_energies_in_mev():
    """scripts/prepare_qm9.py on QM9's first molecule (methane): U0 minus the isolated-atom references."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "prepare_qm9.py"
    spec = importlib.util.spec_from_file_location("prepare_qm9", path)
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    row = {"InternalEnergy_0K_au": "-40.47893", "HOMO_au": "-0.3877", "Dipole_debye": "0."}
    elements = ["C", "H", "H", "H", "H"]
    u0 = prepare.target_value(row, *prepare.ALL_TARGETS["u0_meV"], elements)
    assert u0 == pytest.approx((-40.47893 + 37.846772 + 4 * 0.500273) * 27211.386, rel=1e-12)
    assert u0 == pytest.approx(-17172.18, abs=0.01)  # methane's atomization energy, about -17.17 eV
    assert prepare.target_value(row, *prepare.ALL_TARGETS["homo_meV"], elements) == pytest.approx(-10549.85, abs=0.01)
    assert prepare.target_value(row, *prepare.ALL_TARGETS["mu_D"], elements) == 0.0
    assert len(prepare.ALL_TARGETS) == 12
