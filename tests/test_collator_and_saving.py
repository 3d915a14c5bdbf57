"""MoleBlendCollator padding and labels; featurizer save/load and the Hub (remote-code) export."""

from __future__ import annotations

import inspect
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_moleblend import (
    PAD_VALUES,
    InvalidLabelError,
    MoleBlendCollator,
    MoleBlendConfig,
    MoleBlendFeaturizer,
    MoleBlendForPretraining,
    MoleBlendForPropertyPrediction,
    MoleBlendModel,
)
from modeling_moleblend import modeling_moleblend as modeling
from modeling_moleblend.tokenization import (
    BATCH_LAYOUT,
    FEATURE_COLUMNS,
    MODEL_INPUT_NAMES,
    STORAGE_DTYPES,
    batch_layout_moleblend,
    collating_moleblend,
    inputs_needed,
    molecular_graph_moleblend,
)

SMILES = ["CCO", "CC(=O)Nc1ccc(O)cc1", "[Na+].[Cl-]", "C", "OC1C(O)C(O)C(O)C(O)C1O"]


@pytest.fixture(scope="module")
def features():
    return MoleBlendFeaturizer(conformer="auto", num_workers=0).featurize(SMILES).features


def test_padding_keeps_every_real_value(features):
    batch = MoleBlendCollator()(features)
    n = max(f["num_atoms"] for f in features)
    assert batch["atom_ids"].shape == (5, n, 9) and batch["path_bonds"].shape == (5, n, n, 5)
    for row, f in enumerate(features):
        k, bonds = int(f["num_atoms"]), len(f["bond_features"])
        np.testing.assert_array_equal(batch["atom_ids"][row, :k].numpy(), f["atom_ids"])
        np.testing.assert_array_equal(batch["degree"][row, :k].numpy(), f["degree"])
        np.testing.assert_array_equal(batch["spd"][row, :k, :k].numpy(), f["spd"])
        np.testing.assert_array_equal(batch["path_bonds"][row, :k, :k].numpy(), f["path_bonds"])
        np.testing.assert_array_equal(batch["bond_features"][row, 1 : 1 + bonds].numpy(), f["bond_features"])
        np.testing.assert_array_equal(batch["coordinates"][row, :k].numpy(), f["coordinates"])
        assert batch["atom_mask"][row].tolist() == [True] * k + [False] * (n - k)
        # padding holds the documented pad values, and bond row 0 is the padding row path_bonds points at
        assert (batch["atom_ids"][row, k:] == PAD_VALUES["atom_ids"]).all()
        assert (batch["spd"][row, k:] == PAD_VALUES["spd"]).all() and (batch["spd"][row, :, k:] == -1).all()
        assert (batch["path_bonds"][row, k:] == 0).all() and (batch["coordinates"][row, k:] == 0).all()
        assert (batch["bond_features"][row, 0] == 0).all() and (batch["bond_features"][row, 1 + bonds :] == 0).all()
    assert batch["has_3d"].all() and batch["num_atoms"].tolist() == [3, 11, 2, 1, 12]
    assert batch["spd"].dtype == torch.int16 and batch["atom_ids"].dtype == torch.int64


def test_a_molecule_is_the_same_alone_and_in_a_batch(features):
    alone = MoleBlendCollator()([features[0]])
    together = MoleBlendCollator()(features)
    k = 3  # ethanol
    np.testing.assert_array_equal(alone["atom_ids"][0].numpy(), together["atom_ids"][0, :k].numpy())
    np.testing.assert_array_equal(alone["spd"][0].numpy(), together["spd"][0, :k, :k].numpy())
    np.testing.assert_array_equal(alone["path_bonds"][0].numpy(), together["path_bonds"][0, :k, :k].numpy())
    np.testing.assert_array_equal(alone["coordinates"][0].numpy(), together["coordinates"][0, :k].numpy())
    bonds = alone["bond_features"].shape[1]
    np.testing.assert_array_equal(alone["bond_features"][0].numpy(), together["bond_features"][0, :bonds].numpy())


@pytest.mark.parametrize("multiple", [1, 8, 16])
def test_pad_to_multiple_of_counts_the_graph_token(features, multiple):
    batch = MoleBlendCollator(pad_to_multiple_of=multiple)(features)
    n = batch["atom_ids"].shape[1]
    assert (n + 1) % multiple == 0 and n >= 12
    np.testing.assert_array_equal(batch["spd"][4, :12, :12].numpy(), features[4]["spd"])
    assert batch["atom_mask"].sum().item() == sum(int(f["num_atoms"]) for f in features)


def test_labels_are_float_with_nan_for_missing(features):
    rows = [dict(f) for f in features[:3]]
    rows[0]["labels"], rows[1]["labels"], rows[2]["labels"] = [1.0, None], [float("nan"), 2], [0, 1]
    labels = MoleBlendCollator()(rows)["labels"]
    assert labels.dtype == torch.float32 and labels.shape == (3, 2)
    assert math.isnan(labels[0, 1]) and math.isnan(labels[1, 0]) and labels[1, 1] == 2 and labels[2].tolist() == [0, 1]
    scalar = [dict(f, labels=v) for f, v in zip(features[:2], [3.5, None])]
    assert MoleBlendCollator()(scalar)["labels"].shape == (2, 1)
    rows[2].pop("labels")
    with pytest.raises(ValueError, match=r"molecules \[2\] of the batch have no 'labels'"):
        MoleBlendCollator()(rows)


def test_labels_go_through_parse_label(features):
    rows = [dict(f) for f in features[:3]]
    rows[0]["labels"], rows[1]["labels"], rows[2]["labels"] = ["NA", " 1.5 "], ["", "nan"], np.array([0.0, 1.0])
    labels = MoleBlendCollator()(rows)["labels"]
    assert labels[0, 1] == 1.5 and labels[2].tolist() == [0.0, 1.0]
    assert math.isnan(labels[0, 0]) and torch.isnan(labels[1]).all()
    rows[1]["labels"], rows[1]["smiles"] = [1.0, "active"], "CC(=O)Nc1ccc(O)cc1"  # a cached table's row
    with pytest.raises(InvalidLabelError, match=r"input 1 \('CC\(=O\)Nc1ccc\(O\)cc1'\).*'label 1' = 'active'"):
        MoleBlendCollator()(rows)
    rows[1].pop("smiles")
    with pytest.raises(InvalidLabelError, match=r"input 1 \('batch row 1'\)"):
        MoleBlendCollator()(rows)


def test_rows_from_a_datasets_table_collate_the_same(features):
    """``datasets`` hands rows back as nested lists (and flattened matrices are reshaped by num_atoms)."""
    as_lists = [{k: np.asarray(v).tolist() for k, v in f.items()} for f in features]
    flattened = [{k: (np.asarray(v).ravel().tolist() if np.ndim(v) > 1 else v) for k, v in f.items()} for f in features]
    reference = MoleBlendCollator()(features)
    for rows in (as_lists, flattened):
        batch = MoleBlendCollator()(rows)
        for key in reference:
            torch.testing.assert_close(batch[key], reference[key], rtol=0, atol=0)


def test_numpy_output_and_bad_arguments(features):
    batch = MoleBlendCollator(return_tensors="np")(features)
    assert isinstance(batch["spd"], np.ndarray)
    with pytest.raises(ValueError, match="empty list"):
        MoleBlendCollator()([])
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        MoleBlendCollator(pad_to_multiple_of=0)


def test_featurizer_call_matches_featurize_then_collate():
    featurizer = MoleBlendFeaturizer(conformer="none", pad_to_multiple_of=8)
    batch = featurizer(SMILES, return_tensors="pt")
    manual = MoleBlendCollator(pad_to_multiple_of=8)(featurizer.featurize(SMILES).features)
    for key in manual:
        torch.testing.assert_close(batch[key], manual[key], rtol=0, atol=0)
    assert batch.input_indices == list(range(5)) and batch.report.num_featurized == 5


# ---------------------------------------------------------------- the batch layout


def test_batch_layout_tables():
    assert [key.name for key in BATCH_LAYOUT] == [
        "atom_ids", "degree", "atom_mask", "spd", "path_bonds", "bond_features", "coordinates", "has_3d",
        "num_atoms", "labels",
    ]  # fmt: skip
    assert FEATURE_COLUMNS == (
        "atom_ids", "degree", "spd", "path_bonds", "bond_features", "coordinates", "has_3d", "num_atoms",
    )  # fmt: skip
    assert STORAGE_DTYPES == {
        "atom_ids": "int16", "degree": "int16", "spd": "int16", "path_bonds": "int16", "bond_features": "int16",
        "coordinates": "float32", "has_3d": "bool", "num_atoms": "int64", "labels": "float32",
    }  # fmt: skip
    expected_pad = {"atom_ids": 0, "degree": 0, "spd": -1, "path_bonds": 0, "bond_features": 0, "coordinates": 0.0}
    assert PAD_VALUES == expected_pad and PAD_VALUES is collating_moleblend.PAD_VALUES
    assert PAD_VALUES is batch_layout_moleblend.PAD_VALUES
    assert MODEL_INPUT_NAMES == (
        "atom_ids", "degree", "atom_mask", "spd", "path_bonds", "bond_features", "coordinates", "has_3d", "num_atoms",
    )  # fmt: skip
    assert MoleBlendFeaturizer.model_input_names == list(MODEL_INPUT_NAMES)  # has_3d included, atom_ids first
    assert inputs_needed("2d") == ["atom_ids", "degree", "spd", "path_bonds", "bond_features"]
    assert inputs_needed("3d") == ["atom_ids", "coordinates"]
    assert inputs_needed("2d3d") == ["atom_ids", "degree", "spd", "path_bonds", "bond_features", "coordinates"]
    with pytest.raises(ValueError, match=r"input_modality must be one of \('2d', '3d', '2d3d'\), got '1d'"):
        inputs_needed("1d")
    layout = batch_layout_moleblend.LAYOUT_BY_NAME
    assert layout["spd"].shape == "[B, N, N]" and layout["path_bonds"].shape == "[B, N, N, H]"
    assert layout["spd"].torch_dtype == torch.int16 and layout["atom_mask"].storage_dtype is None


def test_collated_batch_follows_the_layout(features):
    rows = [dict(f, labels=[1.0, None]) for f in features]
    for return_tensors in ("np", "pt"):
        batch = MoleBlendCollator(return_tensors=return_tensors)(rows)
        sizes = {"B": 5, "N": 12, "E": 1 + 12, "H": 5, "T": 2}  # inositol: 12 atoms, 12 bonds
        assert list(batch) == [key.name for key in BATCH_LAYOUT]
        for key in BATCH_LAYOUT:
            value = batch[key.name]
            assert tuple(value.shape) == tuple(sizes.get(d, d) for d in key.dims), key.name
            expected = key.torch_dtype if return_tensors == "pt" else key.numpy_dtype
            assert value.dtype == expected, key.name
    # what the featurizer returns per molecule is what a cache stores: the storage dtypes, no conversion
    for name in FEATURE_COLUMNS:
        assert np.asarray(features[0][name]).dtype == np.dtype(STORAGE_DTYPES[name]), name


def test_layout_table_is_the_documented_one():
    assert batch_layout_moleblend.layout_table() in batch_layout_moleblend.__doc__
    docs = Path(__file__).resolve().parents[1] / "docs" / "featurizer.md"
    assert batch_layout_moleblend.layout_table("`") in docs.read_text()


def test_model_inputs_match_the_layout():
    """The model file is exported alone, so it repeats the per-modality inputs: they must be the layout's."""
    assert set(modeling.MODALITY_INPUTS) == set(batch_layout_moleblend.MODALITIES)
    for modality, needed in modeling.MODALITY_INPUTS.items():
        assert list(needed) == inputs_needed(modality), modality
    for model_class in (MoleBlendModel, MoleBlendForPropertyPrediction, MoleBlendForPretraining):
        parameters = inspect.signature(model_class.forward).parameters
        missing = [name for name in MODEL_INPUT_NAMES if name not in parameters]
        assert missing == [], (model_class.__name__, missing)
        if model_class is not MoleBlendModel:
            assert "labels" in parameters
    assert MoleBlendModel.main_input_name == MODEL_INPUT_NAMES[0]


def test_config_vocabularies_match_the_featurizer():
    graph = molecular_graph_moleblend
    config = MoleBlendConfig()
    assert config.atom_vocab_size == graph.ATOM_VOCAB_SIZE == 175
    assert config.bond_vocab_size == graph.BOND_VOCAB_SIZE == 15
    assert tuple(config.bond_feature_sizes) == graph.BOND_FEATURE_SIZES
    assert config.num_degrees == graph.MAX_DEGREE + 1  # degree ids 0..MAX_DEGREE
    assert config.num_atom_types == graph.ATOM_FEATURE_SIZES[0] + 1  # atom_ids[..., 0]: 0 = pad, 1..119
    assert config.max_hops == graph.MAX_HOPS
    assert config.num_edge_classes == math.prod(graph.BOND_FEATURE_SIZES) + 1
    # the edge head reads raw bond features back from the same offsets the featurizer adds
    sizes = config.bond_feature_sizes
    assert [1 + sum(sizes[:f]) for f in range(len(sizes))] == [1 + o for o in graph.BOND_FEATURE_OFFSETS]
    # unreachable pairs (spd < 0) get the shortest-path bias's own row, above the max_spd bucket
    assert graph.SPD_UNREACHABLE < 0 and config.max_spd < np.iinfo(np.dtype(STORAGE_DTYPES["spd"])).max


# ---------------------------------------------------------------- save / load


def test_save_and_load_round_trip(tmp_path):
    featurizer = MoleBlendFeaturizer(
        conformer="generate", max_atoms=64, errors="skip", num_workers=0, seed=3, mmff=False, allowed_elements=["O"]
    )
    featurizer.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["feature_extractor_type"] == "MoleBlendFeaturizer" and saved["max_atoms"] == 64
    loaded = MoleBlendFeaturizer.from_pretrained(tmp_path)
    assert loaded.to_dict() == featurizer.to_dict()
    a, b = featurizer(["CCO", "OCC(O)CO", "O"]), loaded(["CCO", "OCC(O)CO", "O"])
    assert a.input_indices == b.input_indices == [2]  # carbon is not in allowed_elements: both skip the same
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_bad_saved_config_is_an_error_at_load(tmp_path):
    MoleBlendFeaturizer().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    config["conformer"] = "magic"
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="conformer must be one of"):
        MoleBlendFeaturizer.from_pretrained(tmp_path)


BLOCK_PACKAGE = textwrap.dedent(
    """
    import sys
    class BlockMoleBlend:  # the exported folder must work without the installed package
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("modeling_moleblend", "tokenization", "hub_card"):
                raise ImportError("blocked in this test: " + name)
    sys.meta_path.insert(0, BlockMoleBlend())
    """
)


def run_isolated(code: str, cwd, home) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(home))
    completed = subprocess.run(
        [sys.executable, "-c", BLOCK_PACKAGE + textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def test_remote_code_export_loads_without_the_package(tmp_path):
    export = tmp_path / "export"
    featurizer = MoleBlendFeaturizer(conformer="none", max_atoms=100)
    type(featurizer).register_for_auto_class("AutoFeatureExtractor")
    featurizer.save_pretrained(export)
    files = sorted(p.name for p in export.iterdir())
    for name in (
        "feature_extraction_moleblend.py",
        "batch_layout_moleblend.py",
        "collating_moleblend.py",
        "conformers_moleblend.py",
        "errors_moleblend.py",
        "labels_moleblend.py",
        "molecular_graph_moleblend.py",
        "sdf_moleblend.py",
    ):
        assert name in files, files
    config = json.loads((export / "preprocessor_config.json").read_text())
    assert config["auto_map"]["AutoFeatureExtractor"] == "feature_extraction_moleblend.MoleBlendFeaturizer"

    output = run_isolated(
        f"""
        import json
        from transformers import AutoFeatureExtractor
        fe = AutoFeatureExtractor.from_pretrained({str(export)!r}, trust_remote_code=True)
        assert type(fe).__module__.startswith("transformers_modules"), type(fe).__module__
        batch = fe(["CCO", "c1ccccc1"], return_tensors="pt")
        print(json.dumps({{k: v.tolist() for k, v in batch.items()}}))
        """,
        cwd=tmp_path,
        home=tmp_path / "hf_home",
    )
    remote = json.loads(output.strip().splitlines()[-1])
    local = featurizer(["CCO", "c1ccccc1"], return_tensors="pt")
    assert remote.keys() == local.keys()
    for key in local:
        assert remote[key] == local[key].tolist(), key
