"""Hub round trips against a local Hub server (tests/hub_server.py): export, push, pull by branch / tag / sha with
trust_remote_code and without the package, the Trainer's checkpoint pushes, the model card, encode.py and the
molecular-property-prediction pipeline. Nothing here contacts huggingface.co.

Client code that talks to the server runs in subprocesses: huggingface_hub reads HF_ENDPOINT once, at import, and
this test process is offline (conftest sets HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from hub_server import LocalHub
from huggingface_hub import ModelCard

from modeling_moleblend import (
    MoleBlendConfig,
    MoleBlendFeaturizer,
    MoleBlendForPropertyPrediction,
)
from modeling_moleblend.cli.main import main as moleblend
from modeling_moleblend.hub import check_hub_folder, export_for_hub
from modeling_moleblend.hub_card import CardInfo, MetricSummary, write_model_card
from modeling_moleblend.training import FinetuneResult

ROOT = Path(__file__).resolve().parents[1]
SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C1CCNCC1"]
SECRET = "hf_Secret0Token1NeverWritten"
REPO = "tester/moleblend-tiny"
CODE_FILES = {"configuration_moleblend.py", "modeling_moleblend.py", "feature_extraction_moleblend.py"}
BLOCK_PACKAGE = """
import sys
class BlockMoleBlend:  # the code must come from the repo / folder, not from the installed package
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("modeling_moleblend", "tokenization", "hub_card"):
            raise ImportError("blocked in this test: " + name)
sys.meta_path.insert(0, BlockMoleBlend())
"""


def tiny_model(seed: int, **overrides) -> MoleBlendForPropertyPrediction:
    torch.manual_seed(seed)
    settings = dict(num_labels=1, problem_type="regression", target_mean=[-2.5], target_std=[1.7])
    settings |= dict(id2label={0: "logS"}, label2id={"logS": 0}, input_modality="2d3d") | overrides
    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, num_kernels=16)
    return MoleBlendForPropertyPrediction(MoleBlendConfig.from_preset("small", **sizes, **settings)).eval()


def tiny_featurizer() -> MoleBlendFeaturizer:
    return MoleBlendFeaturizer(conformer="generate", mmff=False, num_workers=0, seed=0)


@torch.no_grad()
def predictions(folder: Path) -> np.ndarray:
    model = MoleBlendForPropertyPrediction.from_pretrained(folder).eval()
    return model(**MoleBlendFeaturizer.from_pretrained(folder)(SMILES)).logits.numpy()


def run_client(code: str, env: dict, cwd: Path, block_package: bool = False) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last, which is returned."""
    prefix = BLOCK_PACKAGE if block_package else ""
    completed = subprocess.run(
        [sys.executable, "-c", prefix + textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def client_env(hub: LocalHub | None, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != "PYTHONPATH"}
    env |= dict(HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    env |= dict(TRANSFORMERS_VERBOSITY="error", OMP_NUM_THREADS="1", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    if hub is None:
        env["HF_HUB_OFFLINE"] = "1"
    else:  # HF_HUB_OFFLINE stays unset: this client talks to the local server only
        env |= dict(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_TOKEN="dummy-token")
    return env


# ---------------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def hub():
    with LocalHub() as server:
        yield server


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Two trained folders as `moleblend finetune` leaves them: v1 with its card (and a stray pickle), v2 (other
    weights) without a card but with the run's results.json (a FinetuneResult) next to it."""
    root = tmp_path_factory.mktemp("trained")
    v1, v2 = root / "v1" / "model", root / "v2" / "model"
    for seed, folder in ((0, v1), (1, v2)):
        tiny_model(seed).save_pretrained(folder)
        tiny_featurizer().save_pretrained(folder)
    (v1 / "training_args.bin").write_bytes(b"not shipped")
    metrics = [MetricSummary("rmse", 0.91, 0.05, [0.86, 0.96]), MetricSummary("mae", 0.7, 0.02, [0.68, 0.72])]
    write_model_card(v1, CardInfo("moleblend-tiny", "A tiny test model.", task_names=["logS"], metrics=metrics))
    aggregate = {"test": {"rmse": {"mean": 1.25, "std": 0.1, "values": [1.15, 1.35]}}}
    data = {"tasks": ["logS"], "file": "esol.csv", "problem_type": "regression", "split": {"description": "scaffold"}}
    training = {"seeds": [0, 1], "epochs": 1, "learning_rate": 1e-4, "batch_size": 8, "early_stopping_patience": 0}
    architecture = {"Hidden size": 32}
    run = FinetuneResult(data, "validation only", {"start": "scratch"}, training, [], aggregate, 0, 1.0, "CPU")
    run.architecture = architecture
    run.save(v2.parent)
    (v2.parent / "splits.json").write_text(json.dumps({"train": [], "validation": [], "test": []}))
    return {"v1": v1, "v2": v2, "root": root}


@pytest.fixture(scope="module")
def pushed(hub, trained) -> dict:
    """`moleblend export`, three runs in one client process: v1 (tagged "v1"), then v2, to REPO's main; and v1
    to the branch "dev" of a new private repo."""
    root = trained["root"]
    runs = [
        [trained["v1"], root / "hub_v1", "--hub_model_id", REPO, "--hub_tag", "v1"],
        [trained["v2"], root / "hub_v2", "--hub_model_id", REPO, "--regenerate_card"],
        [trained["v1"], root / "hub_private", "--hub_model_id", "tester/private-tiny"]
        + ["--hub_private_repo", "--hub_revision", "dev"],
    ]
    argv = [
        ["--model_name_or_path", str(run[0]), "--output_dir", str(run[1]), "--push_to_hub"] + run[2:] for run in runs
    ]
    run_client(
        f"""
        import json
        from modeling_moleblend.cli.main import main
        print(json.dumps([main(["export", *args]) for args in {argv!r}]))
        """,
        client_env(hub, root / "push_home"),
        cwd=root,
    )
    history = hub.history(REPO)
    return {"v1_sha": hub.repo(REPO).tags["v1"], "main_sha": history[0].sha, "history": history, **trained}


# ---------------------------------------------------------------------------------------------------------- hub


def test_push_makes_the_expected_commits_and_files(hub, pushed):
    titles = [commit.title for commit in pushed["history"]]
    assert titles == [
        "Upload MoleBlend model: model card",  # v2: the card is always the last commit
        "Upload MoleBlend model",
        "Upload MoleBlend model: model card",  # v1
        "Upload MoleBlend model",
        "initial commit",
    ]
    assert pushed["history"][2].sha == pushed["v1_sha"]
    files = hub.files(REPO)
    assert CODE_FILES | {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= set(files)
    assert "training_args.bin" not in files and not any(name.endswith(".pyc") for name in files)
    auto_map = json.loads(hub.file_bytes(REPO, "config.json"))["auto_map"]
    assert {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification"} <= set(auto_map)
    extractor = json.loads(hub.file_bytes(REPO, "preprocessor_config.json"))["auto_map"]
    assert extractor == {"AutoFeatureExtractor": "feature_extraction_moleblend.MoleBlendFeaturizer"}
    # the weights changed between the revisions, the code did not
    assert hub.files(REPO, "v1")["model.safetensors"] != files["model.safetensors"]
    assert hub.files(REPO, "v1")["modeling_moleblend.py"] == files["modeling_moleblend.py"]
    assert hub.unhandled == []


def test_private_repo_on_a_branch(hub, pushed):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    repo = hub.repo("tester/private-tiny")
    assert repo.private and set(repo.branches) == {"main", "dev"}
    assert "model.safetensors" in hub.files("tester/private-tiny", "dev")
    assert set(hub.files("tester/private-tiny", "main")) == {".gitattributes"}
    url = f"{hub.url}/tester/private-tiny/resolve/dev/config.json"
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        opener.open(urllib.request.Request(url, method="HEAD"))
    assert anonymous.value.headers["X-Error-Code"] == "RepoNotFound"
    authorized = urllib.request.Request(url, method="HEAD", headers={"Authorization": "Bearer dummy-token"})
    with opener.open(authorized) as response:
        assert response.headers["X-Repo-Commit"] == repo.branches["dev"]


def test_fresh_process_loads_every_revision_by_repo_id(hub, pushed, tmp_path):
    result = run_client(
        f"""
        import json, torch
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForSequenceClassification

        def predict(**revision):
            model = AutoModelForSequenceClassification.from_pretrained({REPO!r}, trust_remote_code=True, **revision)
            featurizer = AutoFeatureExtractor.from_pretrained({REPO!r}, trust_remote_code=True, **revision)
            with torch.no_grad():
                return model.eval()(**featurizer({SMILES!r})).logits.tolist(), type(model).__module__

        out = {{name: predict(**kwargs) for name, kwargs in [
            ("main", {{}}), ("tag", {{"revision": "v1"}}), ("sha", {{"revision": {pushed["v1_sha"]!r}}})]}}
        encoder = AutoModel.from_pretrained({REPO!r}, trust_remote_code=True).eval()
        config = AutoConfig.from_pretrained({REPO!r}, trust_remote_code=True)
        featurizer = AutoFeatureExtractor.from_pretrained({REPO!r}, trust_remote_code=True)
        with torch.no_grad():
            out["pooled"] = encoder(**featurizer({SMILES!r})).pooler_output.tolist()
        out["types"] = [type(encoder).__name__, type(config).__name__, type(featurizer).__name__]
        print(json.dumps(out))
        """,
        client_env(hub, tmp_path / "home"),
        cwd=tmp_path,
        block_package=True,
    )
    first, second = predictions(pushed["v1"]), predictions(pushed["v2"])
    assert not np.allclose(first, second, atol=1e-4)
    for name, expected in (("main", second), ("tag", first), ("sha", first)):
        logits, module = result[name]
        assert module.startswith("transformers_modules."), module  # the repo's code, not the package
        np.testing.assert_allclose(np.array(logits), expected, rtol=0, atol=1e-5, err_msg=name)
    model = MoleBlendForPropertyPrediction.from_pretrained(pushed["v2"]).eval()
    with torch.no_grad():
        pooled = model.moleblend(**MoleBlendFeaturizer.from_pretrained(pushed["v2"])(SMILES)).pooler_output
    np.testing.assert_allclose(np.array(result["pooled"]), pooled.numpy(), rtol=0, atol=1e-5)
    assert result["types"] == ["MoleBlendModel", "MoleBlendConfig", "MoleBlendFeaturizer"]
    assert hub.unhandled == []


def test_exported_folder_works_without_the_package(pushed, tmp_path):
    folder = pushed["root"] / "hub_v1"
    assert check_hub_folder(folder) == []
    result = run_client(
        f"""
        import json, torch
        from transformers import AutoFeatureExtractor, AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        featurizer = AutoFeatureExtractor.from_pretrained({str(folder)!r}, trust_remote_code=True)
        with torch.no_grad():
            print(json.dumps(model(**featurizer({SMILES!r})).logits.tolist()))
        """,
        client_env(None, tmp_path / "home"),
        cwd=tmp_path,
        block_package=True,
    )
    np.testing.assert_allclose(np.array(result), predictions(pushed["v1"]), rtol=0, atol=1e-5)


def test_trainer_checkpoint_push(hub, tmp_path):
    """TrainingArguments(push_to_hub=True, hub_strategy="checkpoint"): every save is pushed (the model files to the
    root, the whole checkpoint to last-checkpoint/; hub_always_push: even while the previous push still runs),
    and trainer.push_to_hub() completes the root."""
    result = run_client(
        f"""
        import json, torch
        from huggingface_hub import HfApi
        from transformers import Trainer, TrainingArguments
        from modeling_moleblend import MoleBlendCollator, MoleBlendConfig, MoleBlendFeaturizer
        from modeling_moleblend import MoleBlendForPropertyPrediction

        torch.manual_seed(0)
        config = MoleBlendConfig.from_preset("small", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, num_kernels=16, num_labels=1, problem_type="regression", target_mean=[-2.0],
            target_std=[1.5], input_modality="2d")
        featurizer = MoleBlendFeaturizer(conformer="none")
        smiles = {SMILES * 2!r}
        features = featurizer.featurize(smiles, labels=[[-1.0 - 0.1 * i] for i in range(len(smiles))]).features
        args = TrainingArguments(output_dir={str(tmp_path / "run")!r}, push_to_hub=True,
            hub_model_id="tester/trainer-run", hub_strategy="checkpoint", hub_always_push=True, save_strategy="steps",
            save_steps=1, max_steps=2, per_device_train_batch_size=4, report_to="none", use_cpu=True,
            remove_unused_columns=False, label_names=["labels"], logging_strategy="no", disable_tqdm=True)
        trainer = Trainer(model=MoleBlendForPropertyPrediction(config), args=args, train_dataset=features,
            data_collator=MoleBlendCollator(), processing_class=featurizer)
        trainer.train()
        trainer._finish_current_push()
        after_train = HfApi().list_repo_files("tester/trainer-run")
        trainer.push_to_hub(commit_message="End of training")
        print(json.dumps({{"after_train": after_train}}))
        """,
        client_env(hub, tmp_path / "home"),
        cwd=tmp_path,
    )
    titles = [commit.title for commit in hub.history("tester/trainer-run")]
    assert titles[0] == "End of training" and "Training in progress, step 2, checkpoint" in titles
    checkpoint = {p.split("/", 1)[1] for p in result["after_train"] if p.startswith("last-checkpoint/")}
    assert CODE_FILES | {"config.json", "model.safetensors", "preprocessor_config.json"} <= checkpoint
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= set(result["after_train"])
    files = hub.files("tester/trainer-run")
    assert CODE_FILES | {"config.json", "model.safetensors", "README.md"} <= set(files)
    assert "library_name: transformers" in hub.file_bytes("tester/trainer-run", "README.md").decode()
    assert hub.unhandled == []


# ---------------------------------------------------------------------------------------------------------- card


def test_cards_parse_and_carry_the_metrics(hub, pushed):
    kept = ModelCard.load(pushed["root"] / "hub_v1" / "README.md")
    assert kept.data.library_name == "transformers" and "moleblend" in kept.data.tags
    assert {(r.metric_type, r.metric_value) for r in kept.data.eval_results} == {("rmse", 0.91), ("mae", 0.7)}
    assert f'from_pretrained("{REPO}")' in kept.text and "REPO_OR_FOLDER" not in kept.text
    generated = ModelCard.load(pushed["root"] / "hub_v2" / "README.md")  # --regenerate_card: from results.json
    assert [(r.metric_type, r.metric_value, r.dataset_split) for r in generated.data.eval_results] == [
        ("rmse", 1.25, "test")
    ]
    assert "logS" in generated.text and "Hidden size: 32" in generated.text
    assert hub.file_bytes(REPO, "README.md") == (pushed["root"] / "hub_v2" / "README.md").read_bytes()


def test_card_metadata_names_a_base_model_only_when_it_is_a_hub_id(tmp_path):
    """The card's text says where training started; its YAML ``base_model`` (a Hub link) takes Hub ids only."""
    from modeling_moleblend.hub_card.model_card import card_data

    folder = tmp_path / "local_model"
    folder.mkdir()
    for start, expected in [
        ("builtin:small", None),
        (str(folder), None),
        ("./x", None),
        ("owner/moleblend", "owner/moleblend"),
    ]:
        assert card_data(CardInfo(model_name="m", summary="s", base_model=start)).base_model == expected, start
    shipped = ModelCard.load(Path(__file__).parents[1] / "modeling_moleblend" / "pretrained" / "small" / "README.md")
    assert shipped.data.base_model is None and "builtin:small" in shipped.text


def test_export_refuses_a_non_empty_folder_and_keeps_no_pickle(trained, tmp_path):
    folder = export_for_hub(trained["v1"], tmp_path / "export")
    assert not (folder / "training_args.bin").exists()
    with pytest.raises(FileExistsError):
        export_for_hub(trained["v1"], folder)
    assert check_hub_folder(trained["root"]) == ["no config.json", "no model.safetensors"]


# ---------------------------------------------------------------------------------------------------------- encode


@pytest.mark.parametrize("suffix", [".parquet", ".npy"])
def test_encode_keeps_row_order_and_marks_failures(trained, tmp_path, suffix):
    inputs = ["c1ccccc1O", "not a molecule", "CCO", "", "CC(=O)Nc1ccc(O)cc1"]
    data = tmp_path / "input.csv"
    with open(data, "w", newline="") as handle:
        csv.writer(handle).writerows([["id", "smiles"], *[[i, s] for i, s in enumerate(inputs)]])
    output = tmp_path / f"embeddings{suffix}"
    args = ["--model_name_or_path", str(trained["v1"]), "--input", str(data), "--output", str(output), "--per_atom"]
    assert moleblend(["encode", *args, "--batch_size", "2"]) == 0

    model = MoleBlendForPropertyPrediction.from_pretrained(trained["v1"]).eval()
    featurizer = MoleBlendFeaturizer.from_pretrained(trained["v1"])
    valid = [0, 2, 4]
    with torch.no_grad():
        expected = {row: model.moleblend(**featurizer([inputs[row]])) for row in valid}
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(output).to_pydict()
        assert table["row"] == list(range(5)) and table["smiles"] == inputs
        assert [e is None for e in table["embedding"]] == [False, True, False, True, False]
        assert [e is not None for e in table["error"]] == [False, True, False, True, False]
        assert "InvalidMoleculeError" in table["error"][1]
        pooled = {row: np.array(table["embedding"][row]) for row in valid}
        atoms = {row: np.array(table["atom_embeddings"][row]) for row in valid}
    else:
        embeddings = np.load(output)
        assert embeddings.shape == (5, 32) and np.isnan(embeddings[[1, 3]]).all()
        with open(tmp_path / "embeddings_errors.csv") as handle:
            errors = list(csv.DictReader(handle))
        assert [int(e["row"]) for e in errors] == [1, 3] and errors[0]["smiles"] == "not a molecule"
        per_atom = np.load(tmp_path / "embeddings_atoms.npz")
        offsets = per_atom["offsets"]
        assert offsets[2] == offsets[1] and offsets[4] == offsets[3]  # no atoms for failed rows
        pooled = {row: embeddings[row] for row in valid}
        atoms = {row: per_atom["embeddings"][offsets[row] : offsets[row + 1]] for row in valid}
    for row in valid:  # same numbers as encoding each molecule alone (padding and batching do not leak)
        np.testing.assert_allclose(pooled[row], expected[row].pooler_output[0].numpy(), atol=1e-5)
        n = int(featurizer([inputs[row]])["num_atoms"][0])
        assert atoms[row].shape == (n, 32)
        np.testing.assert_allclose(atoms[row], expected[row].last_hidden_state[0, 1 : 1 + n].numpy(), atol=1e-5)


# ---------------------------------------------------------------------------------------------------------- pipeline


def test_pipeline_regression_in_real_units_with_an_error_entry(trained):
    from transformers import pipeline

    import modeling_moleblend.pipeline_moleblend  # noqa: F401  (registers the task)

    predict = pipeline("molecular-property-prediction", model=str(trained["v1"]))
    outputs = predict([SMILES[0], "C1CC(", SMILES[1]], batch_size=2)
    expected = predictions(trained["v1"])[:2, 0]
    assert [o["index"] for o in outputs] == [0, 1, 2]
    assert outputs[0]["logS"] == pytest.approx(expected[0], abs=1e-5)
    assert outputs[2]["logS"] == pytest.approx(expected[1], abs=1e-5)
    assert set(outputs[1]) == {"index", "error"} and "InvalidMoleculeError" in outputs[1]["error"]
    single = predict(SMILES[0])
    assert single["index"] == 0 and single["logS"] == pytest.approx(expected[0], abs=1e-5)


def test_pipeline_classification_probabilities_from_sdf_and_mol(tmp_path):
    from rdkit import Chem
    from rdkit.Chem import AllChem
    from transformers import pipeline

    import modeling_moleblend.pipeline_moleblend  # noqa: F401

    labels = {"id2label": {0: "toxic", 1: "active"}, "label2id": {"toxic": 0, "active": 1}}
    task = dict(num_labels=2, problem_type="multi_label_classification", target_mean=None, target_std=None)
    model = tiny_model(2, **task, **labels)
    model.save_pretrained(tmp_path / "clf")
    tiny_featurizer().save_pretrained(tmp_path / "clf")
    sdf = tmp_path / "set.sdf"
    with Chem.SDWriter(str(sdf)) as writer:
        for smiles in SMILES[:2]:
            mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
            AllChem.EmbedMolecule(mol, randomSeed=0)
            writer.write(Chem.RemoveHs(mol))
    predict = pipeline("molecular-property-prediction", model=str(tmp_path / "clf"))
    from_sdf = predict(sdf)
    assert [o["index"] for o in from_sdf] == [0, 1]
    assert all(set(o) == {"index", "toxic", "active"} and 0 <= o["toxic"] <= 1 for o in from_sdf)
    logits = predict(sdf, return_logits=True)
    assert from_sdf[0]["active"] == pytest.approx(1 / (1 + np.exp(-logits[0]["active"])), abs=1e-6)
    from_mol = predict(next(iter(Chem.SDMolSupplier(str(sdf)))))
    assert from_mol["toxic"] == pytest.approx(from_sdf[0]["toxic"], abs=1e-5)


def test_finetune_and_pretrain_push_their_final_model(hub, tmp_path, esol_rows):
    """--push_to_hub --hub_token on `moleblend finetune` (with per-seed pushes during training) and `moleblend
    pretrain`: the exported final model lands on the Hub, code files and card included; and no file of any commit
    of any branch or tag holds the token or is a pickle (checkpoints, training_args.bin, optimizer states)."""
    data = tmp_path / "data.csv"
    data.write_text("smiles,logS\n" + "\n".join(f"{r['smiles']},{r['logS']}" for r in esol_rows[:40]) + "\n")
    sample = ROOT / "modeling_moleblend" / "data" / "qm9_sample.sdf.gz"
    tiny = "hidden_size=32,num_hidden_layers=2,num_attention_heads=4,intermediate_size=64,num_kernels=16"
    finetune = ["--train_file", str(data), "--label_columns", "logS", "--seeds", "0", "--num_train_epochs", "1"]
    finetune += [
        "--config_name",
        "small",
        "--baseline_estimators",
        "5",
        "--quiet",
        "--output_dir",
        str(tmp_path / "ft"),
    ]
    finetune += ["--push_to_hub", "--hub_model_id", "tester/ft-push", "--hub_strategy", "every_save"]
    finetune += ["--hub_token", SECRET, "--num_train_epochs", "2"]
    pretrain = ["--train_file", str(sample), "--config_overrides", tiny, "--max_train_samples", "64"]
    pretrain += ["--max_train_steps", "2", "--per_device_train_batch_size", "16", "--quiet"]
    pretrain += ["--output_dir", str(tmp_path / "pre"), "--push_to_hub", "--hub_model_id", "tester/pre-push"]
    pretrain += ["--hub_token", SECRET, "--with_tracking", "--report_to", "tensorboard"]
    run_client(
        f"""
        import json
        from modeling_moleblend.cli.main import main
        print(json.dumps([main(["finetune", *{finetune!r}]), main(["pretrain", *{pretrain!r}])]))
        """,
        client_env(hub, tmp_path / "home"),
        cwd=tmp_path,
    )
    pushed_models = (
        ("tester/ft-push", "MoleBlendForPropertyPrediction"),
        ("tester/pre-push", "MoleBlendForPretraining"),
    )
    for repo, weights_class in pushed_models:
        files = hub.files(repo)
        for name in (
            "model.safetensors",
            "config.json",
            "modeling_moleblend.py",
            "configuration_moleblend.py",
            "preprocessor_config.json",
            "feature_extraction_moleblend.py",
            "README.md",
        ):
            assert name in files, (repo, sorted(files))
        assert not any(name.endswith((".bin", ".pt", ".pkl", ".pth")) or name.startswith("step_") for name in files)
        config = json.loads(hub.file_bytes(repo, "config.json"))
        assert config["architectures"] == [weights_class]
        assert config["auto_map"]["AutoModelForSequenceClassification"].endswith("MoleBlendForPropertyPrediction")
    for repo, _ in pushed_models:  # every file of every commit (so every branch and tag), downloaded
        stored = hub.repo(repo)
        assert "seed-0" in stored.branches or repo == "tester/pre-push"
        for commit in stored.commits.values():
            assert SECRET not in commit.message and SECRET not in commit.title
            for path, oid in commit.files.items():
                assert not path.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle")), (repo, commit.title, path)
                assert SECRET.encode() not in hub.blobs[oid], (repo, commit.title, path)
    for path in tmp_path.rglob("*"):  # nor any local file the runs wrote (logs, tracker events, checkpoints)
        if path.is_file() and "home" not in path.parts:
            assert SECRET.encode() not in path.read_bytes(), path
    seed_branch = set(hub.files("tester/ft-push", revision="seed-0"))  # the per-seed pushes (every_save)
    assert {"model.safetensors", "config.json", "modeling_moleblend.py", "configuration_moleblend.py"} <= seed_branch
