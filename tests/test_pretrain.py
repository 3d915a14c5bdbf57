"""`moleblend pretrain` end to end (tiny model, a few steps on the shipped QM9 sample) and its data pieces: the
length-bucketed sampler (alone and sharded the way accelerate shards it), exact resume, the exported folder
(loaded for property prediction and by `moleblend finetune`) and a 2-process CPU launch with `-m
modeling_moleblend.cli`."""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file

from modeling_moleblend import MoleBlendFeaturizer, MoleBlendForPretraining, MoleBlendForPropertyPrediction
from modeling_moleblend.cli.main import main as moleblend
from modeling_moleblend.data import LengthBucketedBatchSampler, read_molecule_table, split_train_validation
from modeling_moleblend.data.descriptors import (
    DescriptorScaler,
    cached_descriptors,
    calculate_descriptors,
    descriptor_names,
)
from modeling_moleblend.training.checkpoints import checkpoint_problem, find_latest_checkpoint, read_jsonl
from modeling_moleblend.training.common import parse_config_overrides
from modeling_moleblend.training.pretraining import LOSS_COMPONENTS, tracker_config

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = resources.files("modeling_moleblend").joinpath("data/qm9_sample.sdf.gz")
TINY = "hidden_size=32,num_hidden_layers=2,num_attention_heads=4,intermediate_size=64,num_kernels=16"


def reset_accelerate() -> None:
    """Accelerator state is a per-process singleton: start every in-process run from a clean one."""
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def pretrain_args(output_dir: Path, cache_dir: Path, *extra: str) -> list[str]:
    return [
        "--train_file", str(SAMPLE), "--config_overrides", TINY, "--max_train_samples", "120",
        "--max_eval_samples", "40", "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "32",
        "--logging_steps", "1", "--num_workers", "0", "--quiet", "--seed", "7",
        "--output_dir", str(output_dir), "--cache_dir", str(cache_dir), *extra,
    ]  # fmt: skip


def run_pretrain(args: list[str]) -> int:
    reset_accelerate()
    try:
        return moleblend(["pretrain", *args])
    finally:
        reset_accelerate()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 6-step run checkpointed at steps 3 and 6, and a run killed while saving step 6, resumed from 'latest'.

    The killed run is built by construction: a complete step_3 (a copy of the full run's), a newer step_6 whose
    weights are cut short (the kill came during the save), and a log holding the full run's entries up to step 3
    and then half a line."""
    base = tmp_path_factory.mktemp("pretrain")
    cache = base / "cache"
    steps = ["--max_train_steps", "6", "--checkpointing_steps", "3", "--eval_steps", "3"]
    full = base / "full"
    assert run_pretrain(pretrain_args(full, cache, *steps)) == 0
    resumed = base / "resumed"
    resumed.mkdir()
    shutil.copytree(full / "step_3", resumed / "step_3")
    shutil.copytree(full / "step_6", resumed / "step_6")
    weights = resumed / "step_6" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    log = (full / "pretraining_log.jsonl").read_text().splitlines()
    kept = [line for line in log if json.loads(line)["step"] <= 3]
    (resumed / "pretraining_log.jsonl").write_text("\n".join(kept) + "\n" + log[len(kept)][:25])
    assert run_pretrain(pretrain_args(resumed, cache, *steps, "--resume_from_checkpoint", "latest")) == 0
    return {"full": full, "resumed": resumed, "cache": cache, "base": base}


# ---------------------------------------------------------------------------------------------------------- pieces


def test_length_bucketed_sampler_is_seeded_complete_and_bucketed():
    lengths = np.random.default_rng(0).integers(3, 60, size=1003)
    sampler = LengthBucketedBatchSampler(lengths, batch_size=16, seed=3, megabatch_batches=8)
    rng_before = torch.get_rng_state()
    first = list(sampler)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global torch RNG is never touched
    assert len(first) == len(sampler) == math.ceil(1003 / 16)
    assert sorted(i for batch in first for i in batch) == list(range(1003))  # each molecule once
    assert first == LengthBucketedBatchSampler(lengths, 16, seed=3, megabatch_batches=8).batches(epoch=0)
    sampler.set_epoch(1)
    assert list(sampler) != first  # another epoch, another order
    assert len(first[-1]) == 1003 % 16 and all(len(b) == 16 for b in first[:-1])  # the partial batch last
    assert lengths[first[0]].max() == lengths.max()  # the largest molecule in the first batch

    def efficiency(batches):
        return sum(lengths[b].sum() for b in batches) / sum(len(b) * lengths[b].max() for b in batches)

    shuffled = np.random.default_rng(1).permutation(1003)
    random_batches = [shuffled[i : i + 16] for i in range(0, 1003, 16)]
    assert efficiency(first) > 0.9 > efficiency(random_batches)


def test_sampler_sharded_by_accelerate_sees_each_molecule_once():
    """What accelerate.prepare does with 2 processes: BatchSamplerShard over the same seeded sampler."""
    sampler = LengthBucketedBatchSampler(np.arange(200) % 17, batch_size=16, seed=0)
    shards = [list(BatchSamplerShard(sampler, num_processes=2, process_index=rank)) for rank in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == len(BatchSamplerShard(sampler, num_processes=2, process_index=0))
    seen = [i for shard in shards for batch in shard for i in batch]
    assert set(seen) == set(range(200))
    assert len(seen) - 200 <= 2 * 16  # only the few molecules re-used to even out the last round
    assert not set(i for b in shards[0][:-1] for i in b) & set(i for b in shards[1][:-1] for i in b)


def test_split_latest_checkpoint_and_corpus_formats(tmp_path):
    train, validation = split_train_validation(100, 5, seed=1)
    assert len(validation) == 5 and not set(train) & set(validation) and len(train) + 5 == 100
    assert np.array_equal(validation, split_train_validation(100, 5, seed=1)[1])
    assert len(split_train_validation(10, 1, seed=0)[1]) == 1  # at least one molecule when asked for any

    assert find_latest_checkpoint(tmp_path) is None
    for name, steps in (("step_2", 2), ("step_10", 10), ("step_9", 9), ("epoch_0", 20)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "trainer_state.json").write_text(json.dumps({"completed_steps": steps}))
    (tmp_path / "notes").mkdir()
    (tmp_path / "step_11").mkdir()  # no state file: a save that a kill cut short
    assert find_latest_checkpoint(tmp_path).name == "epoch_0"
    shutil.rmtree(tmp_path / "epoch_0")
    assert find_latest_checkpoint(tmp_path).name == "step_10"  # numeric, not lexicographic
    (tmp_path / "step_9" / "trainer_state.json").write_text(json.dumps({"completed_steps": 11}))
    assert find_latest_checkpoint(tmp_path).name == "step_9"  # the saved state wins over the name

    smi = tmp_path / "corpus.smi.gz"
    with gzip.open(smi, "wt") as handle:
        handle.write("smiles name\nCCO ethanol\n\nc1ccccc1 benzene\n")
    assert read_molecule_table(smi).smiles == ["CCO", "c1ccccc1"]
    assert parse_config_overrides("hidden_size=32, attention_dropout=0.0,x=true,y=abc") == {
        "hidden_size": 32,
        "attention_dropout": 0.0,
        "x": True,
        "y": "abc",
    }


def test_descriptors_exact_values_bad_smiles_workers_and_cache(tmp_path):
    names = descriptor_names()
    values = calculate_descriptors(["CCO", "not a smiles", "c1ccccc1O"])
    assert values.shape == (3, len(names)) and len(names) > 100
    column = {name: i for i, name in enumerate(names)}
    assert values[0, column["MolWt"]] == pytest.approx(46.069, abs=1e-3)
    assert values[0, column["HeavyAtomCount"]] == 3 and values[2, column["NumAromaticRings"]] == 1
    assert values[0, column["NumHDonors"]] == 1 and values[2, column["RingCount"]] == 1
    assert np.isnan(values[1]).all() and np.isfinite(values[[0, 2]]).all()
    np.testing.assert_array_equal(calculate_descriptors(["CCO", "not a smiles", "c1ccccc1O"], num_workers=2), values)
    first = cached_descriptors(["CCO", "c1ccccc1O"], tmp_path)
    (cached,) = tmp_path.glob("descriptors-*.npy")
    np.save(cached, np.full_like(first, 7.0))  # a second call reads the file instead of recomputing
    assert (cached_descriptors(["CCO", "c1ccccc1O"], tmp_path) == 7.0).all()


def test_descriptor_scaler_drops_constant_columns_standardises_and_clips(tmp_path):
    raw = np.array([[1.0, 5.0, -3.0, 1e6], [1.0, 7.0, 3.0, 1e6], [1.0, np.nan, 0.0, 1e6]])
    scaler = DescriptorScaler.fit(raw, names=["a", "b", "c", "d"], clip=1.2)
    assert scaler.names == ["b", "c"]
    out = scaler.transform(raw, names=["a", "b", "c", "d"])
    assert out.dtype == np.float32 and out.shape == (3, 2) and np.isnan(out[2, 0])
    np.testing.assert_allclose(out[:2, 0], [-1.0, 1.0], rtol=1e-6)  # log1p(5), log1p(7): mean 0, std 1
    np.testing.assert_allclose(out[:, 1], [-1.2, 1.2, 0.0], rtol=1e-6)  # +-1.2247 clipped to +-1.2
    # targets are found by name: a release listing its descriptors in another order gives the same targets
    np.testing.assert_array_equal(scaler.transform(raw[:, ::-1], names=["d", "c", "b", "a"]), out)
    with pytest.raises(ValueError, match=r"\['c'\] of the statistics are not computed"):
        scaler.transform(raw[:, :2], names=["a", "b"])
    scaler.save(tmp_path)
    assert DescriptorScaler.load(tmp_path) == scaler
    with pytest.raises(ValueError, match="constant"):
        DescriptorScaler.fit(np.ones((4, 3)))


def test_descriptor_head_pretraining_logs_its_loss_and_keeps_its_targets_when_continued(runs):
    out = runs["base"] / "descriptors"
    extra = ["--max_train_steps", "3", "--eval_steps", "3", "--descriptor_loss_weight", "0.5"]
    assert run_pretrain(pretrain_args(out, runs["cache"], *extra)) == 0
    scaler = DescriptorScaler.load(out)
    config = json.loads((out / "config.json").read_text())
    assert config["num_descriptors"] == len(scaler.names) > 50 and config["descriptor_loss_weight"] == 0.5
    log = read_jsonl(out / "pretraining_log.jsonl")
    assert all(math.isfinite(e["train_descriptor_loss"]) for e in log if "train_loss" in e)
    assert [math.isfinite(e["eval_descriptor_loss"]) for e in log if "eval_loss" in e] == [True]
    assert list(runs["cache"].glob("descriptors-*.npy"))  # raw values cached beside the featurized corpus
    # continued from that folder: the same descriptors and statistics, the head's weights loaded
    more = runs["base"] / "descriptors_more"
    args = pretrain_args(more, runs["cache"], *extra, "--model_name_or_path", str(out))
    assert run_pretrain(args) == 0
    assert DescriptorScaler.load(more) == scaler
    # the paper's objective, continued from it: no descriptor term
    plain = runs["base"] / "descriptors_off"
    assert (
        run_pretrain(pretrain_args(plain, runs["cache"], "--max_train_steps", "2", "--model_name_or_path", str(out)))
        == 0
    )
    assert not any("train_descriptor_loss" in e for e in read_jsonl(plain / "pretraining_log.jsonl"))


def test_tracker_config_never_holds_a_token(tmp_path):
    from modeling_moleblend.training.pretraining import PretrainArguments

    args = PretrainArguments(train_file=tmp_path / "x.sdf", output_dir=tmp_path, hub_token="hf_secret123")
    config = tracker_config(args)
    assert "hf_secret123" not in json.dumps(config) and not any("token" in key for key in config)
    assert config["train_file"] == str(tmp_path / "x.sdf") and config["learning_rate"] == 1e-4


# ---------------------------------------------------------------------------------------------------------- runs


def test_run_logs_every_component_and_writes_the_final_folder(runs):
    out = runs["full"]
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md", "all_results.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "pretraining_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert {"model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl"} <= {
        f.name for f in (out / "step_3").iterdir()
    }
    log = read_jsonl(out / "pretraining_log.jsonl")
    train = [e for e in log if "train_loss" in e]
    evals = [e for e in log if "eval_loss" in e]
    assert [e["step"] for e in train] == [1, 2, 3, 4, 5, 6] and [e["step"] for e in evals] == [3, 6]
    for entry in train:
        assert all(math.isfinite(entry[f"train_{name}"]) for name in LOSS_COMPONENTS)
        assert entry["molecules_per_second"] > 0 and 0 < entry["pair_padding_efficiency"] <= 1
        assert 0 < entry["atom_padding_efficiency"] <= 1 and entry["learning_rate"] >= 0
    for entry in evals:
        assert all(math.isfinite(entry[f"eval_{name}"]) for name in LOSS_COMPONENTS)
    results = json.loads((out / "all_results.json").read_text())
    assert results["training"]["completed_steps"] == 6 and results["data"]["train_molecules"] == 120
    assert results["final_validation"]["eval_denoise_loss"] == evals[-1]["eval_denoise_loss"]
    card = (out / "README.md").read_text()
    assert "validation denoise loss" in card and "Wall time" in card


def test_resume_skips_a_half_written_checkpoint_and_reproduces_the_uninterrupted_run(runs):
    full = read_jsonl(runs["full"] / "pretraining_log.jsonl")
    resumed = read_jsonl(runs["resumed"] / "pretraining_log.jsonl")
    # every step exactly once: the kept history, the cut line dropped, then the resumed steps
    assert [(e["step"], "train_loss" in e) for e in resumed] == [(e["step"], "train_loss" in e) for e in full]
    assert checkpoint_problem(runs["resumed"] / "step_6") is None  # rewritten whole by the resumed run
    expected = {(e["step"], "train_loss" in e): e for e in full if e["step"] > 3}
    for entry in [e for e in resumed if e["step"] > 3]:
        reference = expected[(entry["step"], "train_loss" in entry)]
        for key in [f"{p}_{n}" for p in ("train", "eval") for n in LOSS_COMPONENTS] + ["learning_rate"]:
            if key in reference:
                assert entry[key] == pytest.approx(reference[key], rel=1e-5, abs=1e-7), (entry["step"], key)
    assert json.loads((runs["resumed"] / "all_results.json").read_text())["training"]["resumed_from"].endswith("step_3")
    weights = load_file(runs["full"] / "model.safetensors"), load_file(runs["resumed"] / "model.safetensors")
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=1e-5, atol=1e-6)


def test_resume_under_another_schedule_is_refused_naming_the_settings(runs, capsys):
    """The restored scheduler would follow the new run's plan from the checkpoint's step: refused, nothing written."""
    out = runs["base"] / "rescheduled"
    out.mkdir()
    shutil.copytree(runs["full"] / "step_3", out / "step_3")
    state = json.loads((out / "step_3" / "trainer_state.json").read_text())
    assert state["max_train_steps"] == 6 and state["total_batch_size"] == 16 and state["learning_rate"] > 0
    steps = ["--checkpointing_steps", "3", "--resume_from_checkpoint", "latest"]
    refused = [
        (["--max_train_steps", "9"], "max_train_steps 6 -> 9"),
        (["--max_train_steps", "6", "--learning_rate", "1e-3"], "learning_rate"),
        (["--max_train_steps", "6", "--validation_split_seed", "3"], "validation_split_seed 7 -> 3"),
    ]
    for changed, expected in refused:
        assert run_pretrain(pretrain_args(out, runs["cache"], *steps, *changed)) == 2
        error = capsys.readouterr().err
        assert "step_3" in error and "other settings" in error and expected in error, error
    assert not (out / "pretraining_log.jsonl").exists() and not (out / "model.safetensors").exists()
    assert json.loads((out / "step_3" / "trainer_state.json").read_text()) == state  # the checkpoint untouched
    (out / "step_3" / "trainer_state.json").write_text(json.dumps({**state, "num_processes": 2}))
    assert run_pretrain(pretrain_args(out, runs["cache"], *steps, "--max_train_steps", "6")) == 2
    assert "num_processes 2 -> 1" in capsys.readouterr().err  # the scheduler counts steps per process
    older = {k: state[k] for k in ("completed_steps", "epoch", "max_train_steps")}  # what versions before recorded
    (out / "step_3" / "trainer_state.json").write_text(json.dumps(older))
    resumed = ["--max_train_steps", "6", "--learning_rate", "1e-3"]  # not recorded before: not compared
    assert run_pretrain(pretrain_args(out, runs["cache"], *steps, *resumed)) == 0
    results = json.loads((out / "all_results.json").read_text())
    assert results["training"]["completed_steps"] == 6 and results["data"]["validation_split"].endswith("(seed 7)")


def test_final_folder_loads_for_property_prediction(runs, caplog):
    out = runs["full"]
    pretrained = MoleBlendForPretraining.from_pretrained(out)
    with caplog.at_level(logging.WARNING):
        model = MoleBlendForPropertyPrediction.from_pretrained(out, num_labels=2)
    assert "dropped" in caplog.text and "pretrain_heads" in caplog.text  # the heads are reported as dropped
    assert not hasattr(model, "pretrain_heads")
    source = dict(pretrained.moleblend.named_parameters())
    for name, tensor in model.moleblend.named_parameters():
        torch.testing.assert_close(tensor, source[name], rtol=0, atol=0)
    featurizer = MoleBlendFeaturizer.from_pretrained(out)
    batch = featurizer(["CCO", "c1ccccc1O"], return_tensors="pt", conformer="none")
    assert model.eval()(**batch).logits.shape == (2, 2)


def test_finetune_script_accepts_the_pretrained_folder(runs):
    data = runs["base"] / "gap.sdf"
    with gzip.open(SAMPLE, "rt") as handle:
        records = handle.read().split("$$$$\n")[:40]
    data.write_text("$$$$\n".join(records) + "$$$$\n")
    out = runs["base"] / "finetuned"
    args = ["--train_file", str(data), "--label_columns", "gap_eV", "--model_name_or_path", str(runs["full"])]
    args += ["--seeds", "0", "--num_train_epochs", "1", "--baseline_estimators", "0", "--quiet"]
    args += ["--per_device_train_batch_size", "16", "--num_workers", "0", "--output_dir", str(out)]
    reset_accelerate()
    assert moleblend(["finetune", *args]) == 0
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["hidden_size"] == 32 and config["id2label"] == {"0": "gap_eV"}
    assert math.isfinite(json.loads((out / "results.json").read_text())["aggregate"]["test"]["rmse"]["mean"])


@pytest.mark.slow
def test_two_process_cpu_launch(runs):
    """accelerate launch with 2 CPU processes (gloo): --multi_gpu starts them (torchrun); ACCELERATE_USE_CPU=1
    keeps them on the CPU. (In accelerate 1.15, `--cpu --num_processes 2` alone starts a single process.)"""
    out = runs["base"] / "two_processes"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["--main_process_port", str(port), "-m", "modeling_moleblend.cli", "pretrain"]
    command += pretrain_args(out, runs["cache"], "--max_train_steps", "2")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "all_results.json").read_text())
    assert results["training"]["num_processes"] == 2 and results["training"]["completed_steps"] == 2
    assert results["training"]["total_batch_size"] == 32
    assert all(math.isfinite(v) for v in results["final_validation"].values())
    assert MoleBlendForPropertyPrediction.from_pretrained(out).config.hidden_size == 32
