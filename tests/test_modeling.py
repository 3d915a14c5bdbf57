"""MoleBlend model tests: invariances, attention backends, gradients, losses, saving and Hub export.

Tiny models (2 layers, width 32, 4 heads, 16 kernels) on a handful of real molecules; the file runs in well under
two minutes on 2 CPU cores.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import textwrap
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from rdkit import Chem
from rdkit.Chem import AllChem
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

from modeling_moleblend import (
    MoleBlendConfig,
    MoleBlendFeaturizer,
    MoleBlendForPretraining,
    MoleBlendForPropertyPrediction,
    MoleBlendModel,
)
from modeling_moleblend.modeling_moleblend import (
    IGNORE_INDEX,
    PAIR_SHOWS_3D,
    PAIR_SHOWS_EDGE,
    PAIR_SHOWS_SPD,
    MoleBlendAttentionBias,
    MoleBlendBondPathBias,
    MoleBlendDropPath,
    MoleBlendGaussianBasis,
    MoleBlendPairCrossEntropy,
    MoleBlendPairHead,
    MoleBlendTokenPacking,
    MoleBlendWeightedBags,
    attention_keep_mask,
    graph_pair_bias,
    hidden_pair_masks,
    sample_blend_masks,
)

SMILES = [
    "CCO",
    "c1ccccc1O",
    "CC(=O)Nc1ccc(O)cc1",
    "C[NH3+].[Cl-]",  # two fragments: unreachable pairs
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "O=C(O)c1ccccc1OC(C)=O",
    "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",  # 37 heavy atoms
]
TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    num_kernels=16,
    attention_dropout=0.0,
    activation_dropout=0.0,
    hidden_dropout=0.0,
    drop_path_rate=0.0,
)


def tiny_config(**overrides) -> MoleBlendConfig:
    return MoleBlendConfig(**{**TINY, **overrides})


def seeded(model_class, config, seed: int = 0):
    torch.manual_seed(seed)
    return model_class(config)


def random_rotation(seed: int) -> torch.Tensor:
    q, r = np.linalg.qr(np.random.RandomState(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return torch.tensor(q, dtype=torch.float32)


def move(batch: dict, rotation: torch.Tensor, shift: torch.Tensor) -> dict:
    """The batch with every real atom rotated and translated (padding stays at 0)."""
    moved = dict(batch)
    mask = batch["atom_mask"][..., None]
    moved["coordinates"] = torch.where(mask, batch["coordinates"] @ rotation.T + shift, 0.0)
    return moved


@pytest.fixture(scope="module")
def featurizer() -> MoleBlendFeaturizer:
    return MoleBlendFeaturizer(conformer="generate", num_workers=0, seed=0)


@pytest.fixture(scope="module")
def batch(featurizer) -> dict:
    """7 molecules with generated conformers, as tensors (a plain dict, so it can be copied and edited)."""
    return dict(featurizer(SMILES, return_tensors="pt"))


# ----------------------------------------------------------------------------------------------------------------
# Config


def test_config_validation_rejects_inconsistent_values():
    bad = [
        (dict(hidden_size=30, num_attention_heads=4), "divisible"),
        (dict(input_modality="1d"), "input_modality"),
        (dict(blend_spd_probability=0.5), "sum to 1"),
        (dict(blend_degree_probability=0.5), "sum to 1"),
        (dict(blend_mask_mode="per_atom"), "blend_mask_mode"),
        (dict(target_3d="angle"), "target_3d"),
        (dict(num_labels=2, problem_type="regression", target_mean=[0.0]), "num_labels"),
        (dict(num_labels=1, problem_type="regression", target_std=[0.0]), "target_std"),
        (dict(num_labels=1, problem_type="multi_label_classification", target_mean=[1.0]), "regression"),
        (dict(bond_vocab_size=14), "bond_vocab_size"),
        (dict(attention_dropout=1.5), "attention_dropout"),
        (dict(problem_type="single_label_classification", num_labels=1), "num_labels"),
    ]
    for overrides, message in bad:
        with pytest.raises((StrictDataclassError, ValueError), match=message):
            tiny_config(**overrides)
    with pytest.raises(StrictDataclassError):
        tiny_config(hidden_size="32")  # @strict type check
    with pytest.raises(ValueError, match="preset"):
        MoleBlendConfig.from_preset("huge")


def test_presets_and_auto_classes():
    small = MoleBlendConfig.from_preset("small", num_labels=3)
    assert (small.hidden_size, small.num_hidden_layers, small.num_labels) == (128, 4, 3)
    base = MoleBlendConfig.from_preset("base")
    assert (base.hidden_size, base.num_hidden_layers, base.num_attention_heads, base.intermediate_size) == (
        768,
        12,
        32,
        768,
    )
    config = AutoConfig.for_model("moleblend", **TINY)
    assert isinstance(config, MoleBlendConfig)
    assert type(AutoModel.from_config(config)) is MoleBlendModel
    assert type(AutoModelForSequenceClassification.from_config(config)) is MoleBlendForPropertyPrediction
    assert type(AutoModelForPreTraining.from_config(config)) is MoleBlendForPretraining
    with pytest.raises(ValueError, match="2d3d"):
        MoleBlendForPretraining(tiny_config(input_modality="2d"))


# ----------------------------------------------------------------------------------------------------------------
# Invariances


def test_graph_output_is_invariant_to_atom_order(featurizer):
    mol = Chem.AddHs(Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1"))  # ties between shortest paths share bond features
    AllChem.EmbedMolecule(mol, randomSeed=7)
    mol = Chem.RemoveHs(mol)
    order = [int(i) for i in np.random.RandomState(0).permutation(mol.GetNumAtoms())]
    permuted = Chem.RenumberAtoms(mol, order)
    batch = featurizer([mol, permuted], conformer="input", return_tensors="pt")
    assert batch["has_3d"].all()
    for modality in ("2d", "3d", "2d3d"):
        model = seeded(MoleBlendModel, tiny_config(input_modality=modality)).eval()
        with torch.no_grad():
            out = model(**batch)
        torch.testing.assert_close(out.pooler_output[0], out.pooler_output[1], atol=1e-5, rtol=0)
        atoms = out.last_hidden_state[:, 1:]
        torch.testing.assert_close(atoms[0, order], atoms[1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("modality", ["3d", "2d3d"])
def test_outputs_are_invariant_to_rotation_and_translation(batch, modality):
    model = seeded(MoleBlendModel, tiny_config(input_modality=modality)).eval()
    moved = move(batch, random_rotation(1), torch.tensor([30.0, -75.0, 120.0]))
    with torch.no_grad():
        reference, transformed = model(**batch), model(**moved)
    real = torch.cat([torch.ones_like(batch["atom_mask"][:, :1]), batch["atom_mask"]], dim=1)
    torch.testing.assert_close(transformed.pooler_output, reference.pooler_output, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        transformed.last_hidden_state[real], reference.last_hidden_state[real], atol=1e-5, rtol=0
    )


def test_denoising_head_is_rotation_equivariant(batch):
    model = seeded(MoleBlendForPretraining, tiny_config()).eval()
    rotation = random_rotation(2)
    pair_modality, atom_3d = sample_blend_masks(model.config, batch["atom_mask"], batch["has_3d"])
    predictions = []
    for coordinates in (batch["coordinates"], batch["coordinates"] @ rotation.T):
        with torch.no_grad():
            inputs = {**batch, "coordinates": coordinates, "blend_pair_modality": pair_modality}
            out = model.moleblend(**inputs, blend_atom_3d=atom_3d, output_attention_bias=True)
            predictions.append(
                model.pretrain_heads.denoise(
                    out.last_hidden_state[:, 1:], out.attention_bias[:, :, 1:, 1:], coordinates
                )
            )
    mask = batch["atom_mask"]
    torch.testing.assert_close(predictions[1][mask], (predictions[0] @ rotation.T)[mask], atol=1e-5, rtol=1e-4)


def test_a_molecule_is_unchanged_by_padding(featurizer, batch):
    model = seeded(MoleBlendModel, tiny_config()).eval()
    alone = dict(featurizer(SMILES[1], return_tensors="pt"))
    with torch.no_grad():
        single, batched = model(**alone), model(**batch)
    atoms = int(alone["num_atoms"][0])
    torch.testing.assert_close(batched.pooler_output[1], single.pooler_output[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        batched.last_hidden_state[1, : atoms + 1], single.last_hidden_state[0], atol=1e-5, rtol=0
    )


def padded_encoder_reference(model: MoleBlendModel, batch: dict) -> torch.Tensor:
    """The encoder as it ran before packing: every operation on the padded `[batch, tokens, hidden]` layout
    (eval mode, eager attention), from the same embeddings and bias."""
    captured = {}

    def capture(module, args, kwargs):
        captured["hidden"], captured["bias"] = args[0], args[1]

    handle = model.encoder.register_forward_pre_hook(capture, with_kwargs=True)
    model(**batch)
    handle.remove()
    hidden, bias = captured["hidden"], captured["bias"]
    b, t, _ = hidden.shape
    for layer in model.encoder.layers:
        attention = layer.attention

        def heads(projection, x=hidden, a=attention):
            return projection(x).view(b, t, a.num_heads, a.head_dim).transpose(1, 2)

        scores = heads(attention.q_proj) @ heads(attention.k_proj).transpose(2, 3) * attention.scaling + bias
        attended = (scores.softmax(-1) @ heads(attention.v_proj)).transpose(1, 2).reshape(b, t, -1)
        hidden = layer.attention_layer_norm(hidden + attention.o_proj(attended))
        hidden = layer.output_layer_norm(hidden + layer.feed_forward(hidden))
    return hidden


@pytest.mark.parametrize("modality", ["2d", "2d3d"])
@pytest.mark.parametrize("group_overhead", [None, 0])
def test_packed_encoder_equals_the_padded_one_in_outputs_and_gradients(batch, modality, group_overhead, monkeypatch):
    """Also with attention in length groups: `group_overhead` 0 gives every aligned size its own group."""
    if group_overhead is not None:
        monkeypatch.setattr(MoleBlendTokenPacking, "GROUP_OVERHEAD", group_overhead)
    model = seeded(MoleBlendModel, tiny_config(input_modality=modality)).eval()
    token_mask = torch.cat([torch.ones(len(SMILES), 1, dtype=torch.bool), batch["atom_mask"]], dim=1)
    assert token_mask.float().mean() < 0.6  # the batch has padding worth removing
    groups = MoleBlendTokenPacking(token_mask, heads=4, grouped=True).groups
    assert (groups is not None and len(groups) >= 3) == (group_overhead == 0)

    def loss_and_grads(forward):
        model.zero_grad()
        hidden = forward()
        real = hidden[token_mask]
        (real * torch.linspace(-1, 1, real.numel()).view_as(real)).sum().backward()
        return real.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    packed, packed_grads = loss_and_grads(lambda: model(**batch).last_hidden_state)
    padded, padded_grads = loss_and_grads(lambda: padded_encoder_reference(model, batch))
    torch.testing.assert_close(packed, padded, atol=2e-5, rtol=0)
    assert packed_grads.keys() == padded_grads.keys() and len(packed_grads) == len(list(model.parameters()))
    for name in packed_grads:
        torch.testing.assert_close(packed_grads[name], padded_grads[name], atol=1e-4, rtol=1e-4, msg=name)
    # without gradients (SDPA's fused kernel on CPU), grouped or not, and with the weights (one group)
    with torch.no_grad():
        inference = model(**batch).last_hidden_state[token_mask]
        with_weights = model(**batch, output_attentions=True)
    torch.testing.assert_close(inference, padded, atol=2e-5, rtol=0)
    torch.testing.assert_close(with_weights.last_hidden_state[token_mask], padded, atol=2e-5, rtol=0)
    # the padded layout users get back: zeros at padding, in every hidden state
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    for hidden in out.hidden_states:
        assert hidden.shape == (len(SMILES), token_mask.shape[1], 32) and hidden[~token_mask].abs().max() == 0
    torch.testing.assert_close(out.last_hidden_state, out.hidden_states[-1], atol=0, rtol=0)


@pytest.mark.parametrize("modality", ["2d", "2d3d"])
@pytest.mark.parametrize("group_overhead, num_groups", [(10**12, None), (None, 2), (0, 3)])
def test_graph_token_readout_skips_the_last_layers_atoms_with_the_same_logits_and_gradients(
    batch, modality, group_overhead, num_groups, monkeypatch
):
    """A graph-token head reads no last-layer atom state: the last layer computes the graph token alone. Logits and
    every gradient equal the full encoder's (forced by output_hidden_states), in one padded group (as on GPU) and in
    2 or 3 length groups, with and without gradients (eager / SDPA); the last feed-forward sees one row per
    molecule."""
    if group_overhead is not None:
        monkeypatch.setattr(MoleBlendTokenPacking, "GROUP_OVERHEAD", group_overhead)
    token_mask = torch.cat([torch.ones(len(SMILES), 1, dtype=torch.bool), batch["atom_mask"]], dim=1)
    groups = MoleBlendTokenPacking(token_mask, heads=4, grouped=True).groups
    assert (None if groups is None else len(groups)) == num_groups
    labels = torch.linspace(-1, 1, len(SMILES))[:, None]
    model = seeded(MoleBlendForPropertyPrediction, tiny_config(input_modality=modality, num_labels=1)).eval()
    model.config.problem_type = "regression"
    rows = []
    handle = model.moleblend.encoder.layers[-1].feed_forward.register_forward_hook(
        lambda module, inputs, output: rows.append(inputs[0].shape[0])
    )

    def logits_and_grads(**flags):
        model.zero_grad()
        out = model(**batch, labels=labels, **flags)
        out.loss.backward()
        return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    short, short_grads = logits_and_grads()
    full, full_grads = logits_and_grads(output_hidden_states=True)
    assert rows == [len(SMILES), int(batch["atom_mask"].sum()) + len(SMILES)]  # graph tokens only, then every token
    torch.testing.assert_close(short, full, atol=2e-5, rtol=0)
    assert short_grads.keys() == full_grads.keys()
    for name in short_grads:
        torch.testing.assert_close(short_grads[name], full_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, full, atol=2e-5, rtol=0)
        encoder = model.moleblend
        only = encoder(**batch, graph_token_only=True).last_hidden_state
        assert only.shape == (len(SMILES), 1, 32)
        torch.testing.assert_close(only[:, 0], encoder(**batch).last_hidden_state[:, 0], atol=2e-5, rtol=0)
    handle.remove()
    with pytest.raises(ValueError, match="graph_token_only"):
        encoder(**batch, graph_token_only=True, output_attentions=True)


def test_graph_token_last_layer_applies_dropout_and_stochastic_depth_per_molecule(batch, monkeypatch):
    """In training, the graph-token-only last layer keeps the full layer's dropout and per-molecule stochastic depth:
    with the branches' dropout at 1 (branches zeroed), and with a stochastic depth that keeps molecules 1 and 4 of
    the 7, both paths give the same graph-token states."""
    encoder = seeded(MoleBlendModel, tiny_config()).train()

    def both_paths() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            short = encoder(**batch, graph_token_only=True).last_hidden_state[:, 0]
            return short, encoder(**batch).last_hidden_state[:, 0]

    for layer in encoder.encoder.layers:
        layer.dropout.p = 1.0  # the config allows < 1
    short, full = both_paths()
    torch.testing.assert_close(short, full, atol=2e-5, rtol=0)
    for layer in encoder.encoder.layers:
        layer.dropout.p = 0.0

    def keep_some_molecules(self, branch, molecule, batch_size):
        return branch * (molecule % 3 == 1).to(branch.dtype)[:, None]  # no symmetry of the batch maps it to itself

    monkeypatch.setattr(MoleBlendDropPath, "forward", keep_some_molecules)
    kept, full = both_paths()
    torch.testing.assert_close(kept, full, atol=2e-5, rtol=0)
    monkeypatch.setattr(MoleBlendDropPath, "forward", lambda self, branch, molecule, size: branch)
    untouched, _ = both_paths()
    dropped = torch.tensor([0, 2, 3, 5, 6])
    assert (kept - untouched).abs().amax(dim=1)[dropped].min() > 1e-3  # their branches were dropped
    torch.testing.assert_close(kept[1::3], untouched[1::3], atol=0, rtol=0)


def dense_geometry_reference(module, coordinates, atom_types, atom_mask, has_3d):
    """The 3D relations on every padded pair, as the paper's formulas read: what the packed encoder must equal."""
    kernels = module.kernels
    atom_has_3d = atom_mask & has_3d[:, None]
    pair_has_3d = (atom_has_3d[:, :, None] & atom_has_3d[:, None, :])[..., None]
    distances = (coordinates[:, :, None, :] - coordinates[:, None, :, :]).norm(dim=-1)
    scale, shift = kernels.pair_scale[atom_types], kernels.pair_shift[atom_types]
    x = (scale[:, :, None] + scale[:, None, :]) * distances + shift[:, :, None] + shift[:, None, :]
    std = kernels.stds.abs() + 0.01
    psi = torch.exp(-0.5 * ((x[..., None] - kernels.means) / std) ** 2) / (math.sqrt(2 * math.pi) * std) * pair_has_3d
    bias = module.bias_mlp(psi) * pair_has_3d
    not_self = ~torch.eye(atom_mask.shape[1], dtype=torch.bool)[None, :, :, None]
    feature = module.atom_projection((psi * not_self).sum(dim=2)) * atom_has_3d[..., None] * module.atom_feature_scale
    return bias.permute(0, 3, 1, 2), feature


def test_geometry_encoder_on_real_pairs_equals_the_dense_one_in_values_and_gradients(batch):
    """Kernels on the real 3D pairs only, the bias MLP only where its output is used (blending): same values and
    gradients as the dense [batch, atoms, atoms, kernels] computation; one molecule without 3D gets zeros."""
    model = seeded(MoleBlendModel, tiny_config(input_modality="2d3d"))
    module = model.geometry
    coordinates, atom_mask = batch["coordinates"].float(), batch["atom_mask"].bool()
    atom_types = batch["atom_ids"][..., 0].long()
    has_3d = batch["has_3d"].bool().clone()
    has_3d[2] = False  # a 2D molecule in a 3D batch
    shows_3d = sample_blend_masks(model.config, atom_mask, has_3d, torch.Generator().manual_seed(0))[0] == PAIR_SHOWS_3D
    weights = torch.linspace(-1, 1, 4 * atom_mask.shape[1] ** 2 * len(SMILES)).view(len(SMILES), 4, *shows_3d.shape[1:])

    def run(forward, bias_pairs):
        module.zero_grad()
        bias, feature = forward()
        keep = torch.ones_like(bias) if bias_pairs is None else bias_pairs[:, None].expand_as(bias).float()
        ((bias * keep * weights).sum() + (feature * feature.detach().sign()).sum()).backward()
        return (bias * keep).detach(), feature.detach(), {n: p.grad.clone() for n, p in module.named_parameters()}

    def dense():
        return dense_geometry_reference(module, coordinates, atom_types, atom_mask, has_3d)

    for bias_pairs in (None, shows_3d):
        packed = functools.partial(module, coordinates, atom_types, atom_mask, has_3d, bias_pairs)
        packed_bias, packed_feature, packed_grads = run(packed, bias_pairs)
        dense_bias, dense_feature, dense_grads = run(dense, bias_pairs)
        torch.testing.assert_close(packed_bias, dense_bias, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(packed_feature, dense_feature, atol=1e-5, rtol=1e-5)
        for name in dense_grads:
            torch.testing.assert_close(packed_grads[name], dense_grads[name], atol=1e-5, rtol=1e-4, msg=name)
        assert packed_bias[2].abs().max() == 0 and packed_feature[2].abs().max() == 0
        if bias_pairs is not None:  # outside the pairs that show 3D the packed bias is exactly zero
            assert module(coordinates, atom_types, atom_mask, has_3d, bias_pairs)[0][~bias_pairs[:, None].expand(
                -1, 4, -1, -1)].abs().max() == 0  # fmt: skip
    # no molecule with 3D: zeros
    bias, feature = module(coordinates, atom_types, atom_mask, torch.zeros_like(has_3d))
    assert bias.abs().max() == 0 and feature.abs().max() == 0


@pytest.mark.parametrize(
    "dense_values, chunk_values, saved_values",
    # chunked: one chunk, or one or two molecules each, kept for the backward pass, made again there, or
    # the first kept and the rest made again; materialised
    [(0, 1 << 22, 1 << 26), (0, 3000, 1 << 26), (0, 3000, 0), (0, 3000, 2000), (1 << 22, 1 << 22, 1 << 26)],
)
def test_pair_head_cross_entropy_equals_the_materialised_logits_in_values_and_gradients(
    monkeypatch, dense_values, chunk_values, saved_values
):
    """The chunked, never-materialised cross-entropy of the relation heads (and its small-batch path) equals
    F.cross_entropy on the full `[batch, atoms, atoms, slots, classes]` logits (ignored entries, padding, a
    molecule with nothing scored)."""
    monkeypatch.setattr(MoleBlendPairCrossEntropy, "DENSE_VALUES", dense_values)
    monkeypatch.setattr(MoleBlendPairCrossEntropy, "CHUNK_VALUES", chunk_values)
    monkeypatch.setattr(MoleBlendPairCrossEntropy, "SAVED_VALUES", saved_values)
    config = tiny_config(relation_head_dim=8)
    slots, classes = 3, 7
    torch.manual_seed(4)
    head = MoleBlendPairHead(config, 5 * classes)  # more outputs than the slots used, as the bond-path head
    torch.nn.init.normal_(head.output.weight, std=0.3)
    torch.nn.init.normal_(head.output.bias)
    sizes = [5, 2, 9, 0, 7]  # atoms per molecule; one empty (nothing scored)
    states = torch.randn(len(sizes), 9, 32, requires_grad=True)
    target = torch.randint(0, classes, (len(sizes), 9, 9, slots))
    target[torch.rand(target.shape) < 0.3] = IGNORE_INDEX
    for b, n in enumerate(sizes):
        target[b, n:] = IGNORE_INDEX
        target[b, :, n:] = IGNORE_INDEX

    def dense():
        logits = head(states)[..., : slots * classes].reshape(-1, classes)
        per_entry = torch.nn.functional.cross_entropy(logits, target.reshape(-1), ignore_index=IGNORE_INDEX,
                                                      reduction="none")  # fmt: skip
        valid = (target != IGNORE_INDEX).reshape(-1).float()
        return (per_entry * valid).sum() / valid.sum()

    def run(loss_fn):
        head.zero_grad()
        states.grad = None
        loss = loss_fn()
        (loss * 3).backward()
        return loss.detach(), states.grad.clone(), {n: p.grad.clone() for n, p in head.named_parameters()}

    chunked, chunked_states, chunked_grads = run(lambda: head.cross_entropy(states, target, classes))
    expected, expected_states, expected_grads = run(dense)
    torch.testing.assert_close(chunked, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked_states, expected_states, atol=1e-5, rtol=1e-4)
    for name in expected_grads:
        torch.testing.assert_close(chunked_grads[name], expected_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    assert chunked_grads["output.weight"][slots * classes :].abs().max() == 0  # unused outputs get no gradient
    nothing = torch.full_like(target, IGNORE_INDEX)
    assert head.cross_entropy(states, nothing, classes).item() == 0
    with torch.no_grad():  # validation: the same value (and nothing kept for a backward pass)
        torch.testing.assert_close(head.cross_entropy(states, target, classes), expected, atol=1e-5, rtol=1e-5)
    head.zero_grad()
    states.grad = None
    loss = head.cross_entropy(states, target, classes)
    loss.backward(retain_graph=True)  # a second pass through a retained graph (kept chunks made again) adds the same
    loss.backward()
    torch.testing.assert_close(states.grad, 2 * expected_states / 3, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(head.output.weight.grad, 2 * expected_grads["output.weight"] / 3, atol=1e-5, rtol=1e-4)


def test_attention_groups_split_a_batch_by_size_where_the_padding_costs_more_than_the_calls():
    # 8 molecules: graph token + 30, 29, 5, 4, 3, 3, 2, 2 atoms, padded to 32 atoms (33 tokens)
    atoms = torch.tensor([3, 30, 2, 5, 29, 3, 4, 2])
    token_mask = torch.arange(33)[None, :] <= atoms[:, None]
    packing = MoleBlendTokenPacking(token_mask, heads=8, grouped=True)
    # aligned sizes 33 (30, 29 atoms) and 9 (the rest): two groups, the large ones first, each by size
    assert [(molecules.tolist(), tokens) for molecules, tokens in packing.groups] == [
        ([1, 4], 33),
        ([3, 6, 0, 5, 2, 7], 9),
    ]
    hidden = torch.randn(int(token_mask.sum()), 5)
    grouped = packing.unpack_groups(hidden)
    assert [tuple(part.shape) for part in grouped] == [(2, 33, 5), (6, 9, 5)]
    padded = packing.unpack(hidden)
    torch.testing.assert_close(grouped[1][2], padded[0, :9])  # molecule 0, zeros beyond its 4 tokens
    assert packing.pack_groups(grouped).equal(hidden)  # round trip
    bias = torch.randn(8, 8, 33, 33)
    assert packing.group_bias(bias)[1][0].equal(bias[3, :, :9, :9])
    # a large fixed cost per group keeps the batch whole; so does grouped=False
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MoleBlendTokenPacking, "GROUP_OVERHEAD", 10**9)
        assert MoleBlendTokenPacking(token_mask, heads=8, grouped=True).groups is None
    assert MoleBlendTokenPacking(token_mask, heads=8, grouped=False).groups is None


def test_stochastic_depth_drops_whole_molecules_of_the_packed_tokens(batch):
    model = seeded(MoleBlendModel, tiny_config(drop_path_rate=0.5)).train()
    layer = model.encoder.layers[-1]
    molecule = torch.tensor([0, 0, 0, 1, 1, 2])
    torch.manual_seed(3)
    dropped = layer.drop_path(torch.ones(6, 4), molecule, batch=3)
    per_molecule = [dropped[molecule == m] for m in range(3)]
    assert all(((rows == 0).all() or (rows == 2).all()) for rows in per_molecule)  # 1 / keep = 2, or 0


def test_attention_dropout_keeps_the_configured_fraction_and_is_seeded():
    weights = torch.ones(64, 48, 48)
    torch.manual_seed(0)
    keep, scale = attention_keep_mask(weights, 0.1)
    torch.manual_seed(0)
    again, _ = attention_keep_mask(weights, 0.1)
    assert keep.shape == weights.shape and keep.dtype == torch.bool and torch.equal(keep, again)
    assert abs(keep.float().mean().item() - 0.9) < 0.003  # 147k draws: 0.003 is over 4 standard deviations
    assert scale == pytest.approx(1 / 0.9, rel=1e-4)
    assert keep.float().mean(dim=(1, 2)).std() < 0.02  # no molecule or head gets a biased share
    torch.manual_seed(1)
    assert not torch.equal(attention_keep_mask(weights, 0.1)[0], keep)


def test_bond_path_bias_equals_the_per_pair_sum_in_values_and_gradients(batch):
    """The bias of pair (i, j) is the mean over its path's hops k of bond_k @ hop_matrix_k: checked against an
    explicit loop over molecules, pairs and hops on the 7 test molecules (two fragments, rings, a 37-atom drug)."""
    config = tiny_config(max_hops=3)
    module = seeded(MoleBlendBondPathBias, config)
    torch.nn.init.normal_(module.hop_matrices)
    path_bonds, bond_features = batch["path_bonds"], batch["bond_features"]
    bias = module(path_bonds, bond_features)
    bonds = module.bond_embedding(bond_features.long()).mean(dim=-2)
    expected = torch.zeros_like(bias)
    for b in range(path_bonds.shape[0]):
        for i in range(path_bonds.shape[1]):
            for j in range(path_bonds.shape[2]):
                rows = [(k, int(r)) for k, r in enumerate(path_bonds[b, i, j, :3]) if r > 0]
                if rows:
                    terms = [bonds[b, r] @ module.hop_matrices[k] for k, r in rows]
                    expected[b, :, i, j] = torch.stack(terms).sum(0) / len(rows)
    torch.testing.assert_close(bias, expected, rtol=1e-5, atol=1e-6)
    weights = torch.randn_like(bias)
    got = torch.autograd.grad((bias * weights).sum(), [module.hop_matrices, module.bond_embedding.weight])
    want = torch.autograd.grad((expected * weights).sum(), [module.hop_matrices, module.bond_embedding.weight])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_weighted_bags_have_the_values_and_gradient_of_an_explicit_weighted_sum():
    """Bags of different sizes (one empty), repeated rows, weights 0.5 / -2: values and gradients equal the loop."""
    table = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    rows = torch.tensor([0, 3, 3, 6, 1, 2, 2, 2, 5])
    counts = torch.tensor([3, 2, 0, 3, 1])
    weights = torch.tensor([1.0, 0.5, 0.5, -2.0, 1.0, 0.25, 0.25, 0.25, 3.0], dtype=torch.float64)
    bags = torch.repeat_interleave(torch.arange(len(counts)), counts)
    expected = torch.zeros(len(counts), 3, dtype=torch.float64).index_add(0, bags, table[rows] * weights[:, None])
    torch.testing.assert_close(MoleBlendWeightedBags.apply(table, rows, counts, weights), expected)
    assert torch.equal(
        MoleBlendWeightedBags.apply(table, rows, counts, weights)[2], torch.zeros(3, dtype=torch.float64)
    )
    assert torch.autograd.gradcheck(lambda t: MoleBlendWeightedBags.apply(t, rows, counts, weights), (table,))


def test_2d_bias_on_real_pairs_equals_the_padded_terms_in_values_and_gradients(batch):
    """The model computes the shortest-path and bond-path biases on real pairs only, in one weighted bag, and
    with blending weights: on every real pair (and so in every output) it equals the padded modules' sum, times
    the blend masks; the parameters get the same gradients."""
    config = tiny_config(input_modality="2d3d")
    model = seeded(MoleBlendModel, config)
    torch.nn.init.normal_(model.bond_path_bias.hop_matrices)
    atom_mask = batch["atom_mask"].bool()
    batch_size, atoms = atom_mask.shape
    real = atom_mask[:, :, None] & atom_mask[:, None, :]
    pairs = real.flatten().nonzero().squeeze(1)
    has_3d = batch["has_3d"].bool()
    shown = sample_blend_masks(config, atom_mask, has_3d, torch.Generator().manual_seed(0))[0].expand_as(real)
    parameters = [model.shortest_path_bias.embedding.weight, model.bond_path_bias.hop_matrices,
                  model.bond_path_bias.bond_embedding.weight]  # fmt: skip
    for blended in (False, True):
        spd_weight = edge_weight = None
        if blended:
            spd_weight = (shown.flatten()[pairs] == PAIR_SHOWS_SPD).float()
            edge_weight = (shown.flatten()[pairs] == PAIR_SHOWS_EDGE).float()
        got = graph_pair_bias(model.shortest_path_bias, model.bond_path_bias, batch["spd"], batch["path_bonds"],
                              batch["bond_features"], pairs, spd_weight, edge_weight)  # fmt: skip
        spd_term = model.shortest_path_bias(batch["spd"]).permute(0, 2, 3, 1).reshape(-1, config.num_attention_heads)
        path_term = model.bond_path_bias(batch["path_bonds"], batch["bond_features"])
        path_term = path_term.permute(0, 2, 3, 1).reshape(-1, config.num_attention_heads)
        if blended:
            spd_term = spd_term * (shown.flatten() == PAIR_SHOWS_SPD)[:, None]
            path_term = path_term * (shown.flatten() == PAIR_SHOWS_EDGE)[:, None]
        expected = (spd_term + path_term)[pairs]
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        weights = torch.randn_like(got)
        grads = torch.autograd.grad((got * weights).sum(), parameters)
        reference = torch.autograd.grad((expected * weights).sum(), parameters)
        for g, r in zip(grads, reference):
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


def test_molecules_without_3d_get_no_3d_signal(batch):
    model = seeded(MoleBlendModel, tiny_config(input_modality="2d3d")).eval()
    flat = {**batch, "has_3d": torch.zeros_like(batch["has_3d"])}
    scrambled = {**flat, "coordinates": torch.randn_like(batch["coordinates"])}
    two_d = seeded(MoleBlendModel, tiny_config(input_modality="2d")).eval()
    two_d.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        a, b, c = model(**flat), model(**scrambled), two_d(**batch)
    torch.testing.assert_close(a.last_hidden_state, b.last_hidden_state, atol=0, rtol=0)
    torch.testing.assert_close(a.last_hidden_state, c.last_hidden_state, atol=1e-6, rtol=0)


def test_a_graph_token_row_bias_could_not_change_anything(batch, monkeypatch):
    """The dropped row bias (the graph token attending to atoms) added one constant per head to a whole query
    row: the softmax over keys cancels it. Re-adding it in the old formulation, at any value, changes nothing."""
    model = seeded(MoleBlendModel, tiny_config()).eval()
    model.set_attn_implementation("eager")
    assert not any("graph_token_row" in name for name in model.state_dict())
    new_forward = MoleBlendAttentionBias.forward

    def old_forward(self, pair_bias, token_mask, dtype):
        bias = new_forward(self, pair_bias, token_mask, dtype).clone()
        bias[:, :, 0, :] += torch.where(token_mask[:, None, :], self.row_value.view(1, -1, 1), 0.0)  # real keys
        return bias

    outputs = []
    for row_value in ([0.0] * 4, [3.0, -2.0, 0.5, 9.0], [-40.0] * 4):
        model.attention_bias.row_value = torch.tensor(row_value)
        with monkeypatch.context() as patch:
            patch.setattr(MoleBlendAttentionBias, "forward", old_forward)
            with torch.no_grad():
                outputs.append(model(**batch, output_attentions=True))
    for other in outputs[1:]:
        torch.testing.assert_close(other.last_hidden_state, outputs[0].last_hidden_state, atol=1e-5, rtol=0)
        torch.testing.assert_close(other.attentions[0], outputs[0].attentions[0], atol=1e-6, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).last_hidden_state, outputs[0].last_hidden_state, atol=1e-5, rtol=0)


def test_an_old_checkpoint_with_the_row_bias_loads(tmp_path, batch):
    from safetensors.torch import load_file, save_file

    model = seeded(MoleBlendForPretraining, tiny_config()).eval()
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    weights["moleblend.attention_bias.graph_token_row"] = torch.randn(4)  # what older checkpoints hold
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    for model_class in (MoleBlendForPretraining, MoleBlendModel, MoleBlendForPropertyPrediction):
        loaded, info = model_class.from_pretrained(tmp_path, output_loading_info=True)
        assert not info["unexpected_keys"], (model_class.__name__, info["unexpected_keys"])
        assert not info["missing_keys"] or model_class is MoleBlendForPropertyPrediction  # its new head
    encoder = MoleBlendModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder(**batch).last_hidden_state, model.moleblend(**batch).last_hidden_state)


# ----------------------------------------------------------------------------------------------------------------
# Attention backends, gradients


def test_eager_and_sdpa_agree(batch):
    model = seeded(MoleBlendModel, tiny_config()).eval()
    assert model.config._attn_implementation == "sdpa"
    assert all(layer.attention.is_causal is False for layer in model.encoder.layers)
    with torch.no_grad():
        sdpa = model(**batch)
        model.set_attn_implementation("eager")
        eager = model(**batch, output_attentions=True, output_hidden_states=True)
    torch.testing.assert_close(eager.last_hidden_state, sdpa.last_hidden_state, atol=1e-5, rtol=0)
    assert len(eager.attentions) == 2 and len(eager.hidden_states) == 3
    weights = eager.attentions[0]
    tokens = batch["atom_mask"].shape[1] + 1
    assert weights.shape == (len(SMILES), 4, tokens, tokens)
    padded_keys = ~batch["atom_mask"][:, None, None, :].expand(-1, 4, tokens, -1)
    assert weights[:, :, :, 1:][padded_keys].abs().max() == 0
    as_tuple = model(**batch, return_dict=False)
    assert isinstance(as_tuple, tuple) and as_tuple[0].shape == sdpa.last_hidden_state.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run by hand on one)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_memory_efficient_sdpa_with_bias_matches_eager(featurizer, dtype):
    """On a GPU the float bias must go through SDPA's memory-efficient kernel (flash takes no bias) and agree
    with eager attention, forward and backward, in float32 and under bf16 autocast."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from modeling_moleblend import MoleBlendCollator

    config = MoleBlendConfig.from_preset("small", input_modality="2d3d", num_labels=1, problem_type="regression")
    features = featurizer.featurize(SMILES, progress=False).features
    batch = {k: v.cuda() for k, v in MoleBlendCollator(pad_to_multiple_of=8)(features).items()}
    labels = torch.linspace(-1, 1, len(SMILES), device="cuda")[:, None]
    results = {}
    for implementation in ("sdpa", "eager"):
        model = seeded(MoleBlendForPropertyPrediction, config).cuda().eval()  # eval: no dropout
        model.set_attn_implementation(implementation)
        only_efficient = sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]) if implementation == "sdpa" else nullcontext()
        with only_efficient, torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            output = model(**batch, labels=labels)  # raises if the efficient kernel cannot take this bias
        output.loss.backward()
        gradient = model.moleblend.embeddings.atom_embedding.weight.grad.float()
        results[implementation] = (output.logits.float(), gradient)
    tolerance = 1e-4 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(results["sdpa"][0], results["eager"][0], atol=tolerance, rtol=tolerance)
    torch.testing.assert_close(results["sdpa"][1], results["eager"][1], atol=tolerance, rtol=tolerance)


def parameters_without_gradient(model) -> list[str]:
    return [
        name
        for name, parameter in model.named_parameters()
        if parameter.requires_grad and (parameter.grad is None or not parameter.grad.abs().sum() > 0)
    ]


@pytest.mark.parametrize("modality", ["2d", "3d", "2d3d"])
def test_gradient_reaches_every_parameter(batch, modality):
    model = seeded(MoleBlendModel, tiny_config(input_modality=modality)).train()
    out = model(**batch)
    torch.manual_seed(1)
    (out.last_hidden_state * torch.randn_like(out.last_hidden_state)).sum().backward()
    assert parameters_without_gradient(model) == []


def test_gradient_reaches_every_pretraining_parameter(batch):
    torch.manual_seed(0)
    model = seeded(MoleBlendForPretraining, tiny_config()).train()
    model(**batch).loss.backward()
    assert parameters_without_gradient(model) == []


def test_gradient_checkpointing_gives_the_same_gradients(batch):
    gradients = []
    for checkpointing in (False, True):
        model = seeded(MoleBlendForPropertyPrediction, tiny_config(num_labels=1, problem_type="regression")).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert all(layer.gradient_checkpointing for layer in model.moleblend.encoder.layers)
        model(**batch, labels=torch.arange(len(SMILES), dtype=torch.float32)[:, None]).loss.backward()
        gradients.append({name: p.grad.clone() for name, p in model.named_parameters()})
    for name, gradient in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], gradient, atol=1e-6, rtol=1e-5, msg=name)


# ----------------------------------------------------------------------------------------------------------------
# Pretraining


def test_blend_masks():
    config = tiny_config()
    atom_mask = torch.ones(4, 12, dtype=torch.bool)
    atom_mask[3, 8:] = False
    has_3d = torch.tensor([True, True, True, False])
    torch.manual_seed(0)
    pairs, atom_3d = sample_blend_masks(config, atom_mask, has_3d)
    assert pairs.shape == (4, 12, 12) and set(pairs.unique().tolist()) <= {0, 1, 2}
    assert torch.equal(pairs, pairs.transpose(1, 2))  # symmetric per molecule
    assert not torch.equal(pairs[0], pairs[1])
    assert not (pairs[3] == 2).any() and not atom_3d[3].any()  # no 3D relation for a molecule without 3D
    batch_mode = tiny_config(blend_mask_mode="per_batch")
    pairs, atom_3d = sample_blend_masks(batch_mode, atom_mask, has_3d)
    assert torch.equal(pairs[0], pairs[1]) and torch.equal(atom_3d[0], atom_3d[2])
    assert not torch.equal(pairs[0], pairs[0].T)  # the reference's mask is asymmetric
    big = torch.ones(1, 200, dtype=torch.bool)
    pairs, atom_3d = sample_blend_masks(config, big, torch.tensor([True]))
    shares = torch.bincount(pairs.flatten(), minlength=3).float() / pairs.numel()
    torch.testing.assert_close(shares, torch.tensor([0.2, 0.2, 0.6]), atol=0.02, rtol=0)
    assert abs(atom_3d.float().mean().item() - 0.6) < 0.1


def test_hidden_pair_masks_are_symmetric():
    """With the asymmetric per_batch mask a pair counts as hidden only if neither (i, j) nor (j, i) showed it."""
    shown = torch.tensor([[[1, 2, 0], [0, 1, 2], [2, 2, 1]]])  # [1, atoms, atoms], as per_batch draws
    pair_mask = torch.ones(2, 3, 3, dtype=torch.bool)
    pair_mask[1, 2, :] = pair_mask[1, :, 2] = False  # molecule 1 has 2 atoms
    masks = hidden_pair_masks(shown, pair_mask)
    for k in (PAIR_SHOWS_SPD, PAIR_SHOWS_EDGE, PAIR_SHOWS_3D):
        assert torch.equal(masks[k], masks[k].transpose(1, 2)), k
    # (0, 1) shows 3D and (1, 0) shortest path: neither is hidden for either relation
    assert masks[PAIR_SHOWS_3D][0].tolist() == [[True, False, False], [False, True, False], [False, False, True]]
    assert masks[PAIR_SHOWS_SPD][0].tolist() == [[True, False, False], [False, True, True], [False, True, True]]
    assert masks[PAIR_SHOWS_EDGE][0].tolist() == [[False, True, True], [True, False, True], [True, True, False]]
    assert masks[PAIR_SHOWS_EDGE][1].tolist() == [[False, True, False], [True, False, False], [False, False, False]]


def test_score_hidden_pairs_only_with_the_per_batch_mask(batch):
    """Upper triangle shows 3D, lower shows the shortest path, the diagonal the bond path: every off-diagonal
    pair showed 3D or spd one way round, so neither relation has a hidden pair left to score."""
    config = tiny_config(blend_mask_mode="per_batch", score_hidden_pairs_only=True)
    model = seeded(MoleBlendForPretraining, config).eval()
    atoms = batch["atom_mask"].shape[1]
    upper = torch.ones(atoms, atoms, dtype=torch.bool).triu(1)
    shown = torch.where(upper, PAIR_SHOWS_3D, PAIR_SHOWS_SPD).fill_diagonal_(PAIR_SHOWS_EDGE)[None]
    fixed = dict(batch, blend_pair_modality=shown, blend_atom_3d=batch["atom_mask"])
    with torch.no_grad():
        out = model(**fixed)
        every_pair = seeded(MoleBlendForPretraining, tiny_config(blend_mask_mode="per_batch")).eval()(**fixed)
    assert out.distance_loss == 0 and out.spd_loss == 0  # the one-sided mask scored the lower triangle for 3D
    assert out.edge_loss > 0 and every_pair.distance_loss > 0 and every_pair.spd_loss > 0
    torch.testing.assert_close(out.edge_loss, every_pair.edge_loss)  # every off-diagonal pair hid the bond path


def test_pretraining_overfits_every_loss_component(batch):
    """50 Adam steps on 7 molecules with a fixed blend and noise draw: every component goes down."""
    config = tiny_config()
    model = seeded(MoleBlendForPretraining, config).train()
    torch.manual_seed(0)
    pairs, atom_3d = sample_blend_masks(config, batch["atom_mask"], batch["has_3d"])
    noise = torch.randn_like(batch["coordinates"]) * config.noise_std
    fixed = dict(batch, blend_pair_modality=pairs, blend_atom_3d=atom_3d, coordinate_noise=noise)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    names = ("loss", "spd_loss", "edge_loss", "distance_loss", "denoise_loss")
    history = []
    for _ in range(50):
        out = model(**fixed)
        history.append([out[name].item() for name in names])
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    first, last = np.array(history[0]), np.array(history[-5:]).mean(axis=0)
    weights = np.array([6.0, 0.1, 0.1, 0.5])  # denoise, spd, edge, distance (the config defaults)
    assert first[0] == pytest.approx(weights @ first[[4, 1, 2, 3]], rel=1e-5)
    for name, before, after in zip(names, first, last):
        assert after < 0.85 * before, (name, before, after)


def test_descriptor_head_adds_a_masked_mse_on_the_graph_token(batch):
    """The descriptor loss is the MSE over known targets (NaN not scored), weighted into the total; without targets
    the paper's loss is unchanged; its gradient reaches the graph token's path."""
    config = tiny_config(num_descriptors=3, descriptor_loss_weight=2.0)
    model = seeded(MoleBlendForPretraining, config).train()
    torch.manual_seed(0)
    pairs, atom_3d = sample_blend_masks(config, batch["atom_mask"], batch["has_3d"])
    noise = torch.randn_like(batch["coordinates"]) * config.noise_std
    fixed = dict(batch, blend_pair_modality=pairs, blend_atom_3d=atom_3d, coordinate_noise=noise)
    targets = torch.randn(batch["atom_ids"].shape[0], 3)
    targets[0, 1] = targets[2] = float("nan")
    model.eval()
    with torch.no_grad():
        plain = model(**fixed)
        out = model(**fixed, descriptors=targets, output_hidden_states=True)
        predicted = model.pretrain_heads.descriptors(out.hidden_states[-1][:, 0])
    known = ~targets.isnan()
    expected = (predicted - targets)[known].square().mean()
    assert plain.descriptor_loss is None
    torch.testing.assert_close(out.descriptor_loss, expected)
    torch.testing.assert_close(out.loss, plain.loss + 2.0 * expected)
    model.train()
    model(**fixed, descriptors=targets).loss.backward()
    assert parameters_without_gradient(model) == []
    assert model.moleblend.embeddings.graph_token.grad.abs().sum() > 0


def test_pretraining_skips_3d_losses_without_3d(batch):
    model = seeded(MoleBlendForPretraining, tiny_config()).eval()
    flat = {**batch, "has_3d": torch.zeros_like(batch["has_3d"]), "coordinates": torch.zeros_like(batch["coordinates"])}
    with torch.no_grad():
        out = model(**flat)
    assert out.distance_loss == 0 and out.denoise_loss == 0
    assert out.spd_loss > 0 and out.edge_loss > 0 and torch.isfinite(out.loss)
    direction = seeded(MoleBlendForPretraining, tiny_config(target_3d="direction")).eval()
    with torch.no_grad():
        out = direction(**batch)
    assert 0 < out.distance_loss < 2 and torch.isfinite(out.loss)


# ----------------------------------------------------------------------------------------------------------------
# Property prediction


def test_the_head_reads_standardised_descriptors_beside_the_readout(featurizer):
    """Raw descriptors -> signed log1p -> (x - center) / scale, clipped, NaN -> 0, concatenated to the readout;
    the values come from RDKit by name (exact on CCO: MolLogP -0.0014, TPSA 20.23)."""
    names = DESCRIPTOR_FIELDS["molecule_feature_names"]
    with_descriptors = MoleBlendFeaturizer(conformer="none", molecule_descriptors=names)
    batch = with_descriptors(["CCO", "c1ccccc1O"], return_tensors="pt")
    raw = batch["molecule_descriptors"]
    assert raw.dtype == torch.float64 and raw.shape == (2, 3)
    np.testing.assert_allclose(raw[0, :2].numpy(), [-0.0014, 20.23], atol=1e-4)
    model = seeded(MoleBlendForPropertyPrediction, tiny_config(num_labels=1, **DESCRIPTOR_FIELDS)).eval()
    assert model.classifier.dense.in_features == 32 + 3
    standardised = model.molecule_features(torch.tensor([[math.e - 1, 0.0, float("nan")], [-1e40, 1e40, 0.0]]),
                                           torch.float32)  # fmt: skip
    torch.testing.assert_close(standardised, torch.tensor([[0.0, -3.0, 0.0], [-5.0, 5.0, -0.5]]))
    seen = {}
    model.classifier.register_forward_pre_hook(lambda module, inputs: seen.update(pooled=inputs[0]))
    with torch.no_grad():
        model(**batch)
    torch.testing.assert_close(seen["pooled"][:, 32:], model.molecule_features(raw, torch.float32))
    batch.pop("molecule_descriptors")
    with pytest.raises(ValueError, match="reads 3 RDKit descriptors"):
        model(**batch)
    assert MoleBlendModel(model.config)(**with_descriptors(["CCO"], return_tensors="pt")).pooler_output.shape == (
        1, 32,
    )  # fmt: skip
    with pytest.raises(ValueError, match="does not compute"):
        MoleBlendFeaturizer(molecule_descriptors=["NotADescriptor"])


def test_morgan_count_bits_are_named_features_beside_the_descriptors():
    """`MorganCount2_<bit>` = bit `<bit>` of RDKit's radius-2, 2,048-bit Morgan count fingerprint, in the order asked,
    mixed with descriptors; phenol's counts sum to 20 (its atom environments of radius 0-2, RDKit 2026.09)."""
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    from modeling_moleblend.tokenization.descriptors_moleblend import (
        descriptor_values,
        morgan_names,
        unknown_descriptors,
    )

    mol = Chem.MolFromSmiles("c1ccccc1O")
    counts = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048).GetCountFingerprintAsNumPy(mol)
    assert counts.sum() == 20
    bit = int(np.flatnonzero(counts)[0])
    names = [f"MorganCount2_{bit + 1}", "TPSA", f"MorganCount2_{bit}"]
    np.testing.assert_allclose(descriptor_values(mol, names), [counts[bit + 1], 20.23, counts[bit]], atol=1e-4)
    assert descriptor_values(mol, morgan_names()).sum() == 20 and len(morgan_names()) == 2048
    assert unknown_descriptors([*names, "MorganCount2_2048", "MorganCount2_x"]) == [
        "MorganCount2_2048",
        "MorganCount2_x",
    ]
    batch = MoleBlendFeaturizer(conformer="none", molecule_descriptors=names)(["c1ccccc1O"], return_tensors="pt")
    assert batch["molecule_descriptors"][0, 2] == counts[bit] > 0


def test_nan_labels_never_reach_the_loss(batch):
    config = tiny_config(num_labels=2, problem_type="multi_label_classification")
    model = seeded(MoleBlendForPropertyPrediction, config).eval()
    labels = torch.tensor(
        [[1.0, 0.0], [np.nan, 1.0], [0.0, 0.0], [1.0, np.nan], [np.nan, np.nan], [0.0, 1.0], [np.nan, 0.0]]
    )
    with torch.no_grad():
        out = model(**batch, labels=labels)
    valid = ~torch.isnan(labels)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits[valid], labels[valid])
    assert torch.isfinite(out.loss)
    torch.testing.assert_close(out.loss, expected)
    # the loss still trains through the valid entries only
    model.train()
    model(**batch, labels=labels).loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_regression_logits_are_in_real_units(batch):
    mean, std = [100.0, -3.0], [20.0, 0.5]
    config = tiny_config(num_labels=2, problem_type="regression", target_mean=mean, target_std=std)
    model = seeded(MoleBlendForPropertyPrediction, config).eval()
    labels = torch.tensor(
        [[110.0, -3.2], [90.0, np.nan], [95.0, -2.5], [np.nan, -3.0], [130.0, -4.0], [99.0, -3.1], [np.nan, np.nan]]
    )
    with torch.no_grad():
        out = model(**batch, labels=labels)
        standardised = model.classifier(model.moleblend(**batch).pooler_output)
    mean_t, std_t = torch.tensor(mean), torch.tensor(std)
    torch.testing.assert_close(out.logits, standardised * std_t + mean_t)
    assert (out.logits[:, 0] - 100).abs().max() < 20  # near the target mean at initialisation
    valid = ~torch.isnan(labels)
    expected = (((out.logits - labels) / std_t)[valid] ** 2).mean()
    torch.testing.assert_close(out.loss, expected)


def test_single_label_classification(batch):
    config = tiny_config(num_labels=3, problem_type="single_label_classification")
    model = seeded(MoleBlendForPropertyPrediction, config).eval()
    labels = torch.tensor([0.0, 2.0, np.nan, 1.0, 1.0, 0.0, 2.0])
    with torch.no_grad():
        out = model(**batch, labels=labels)
    valid = ~torch.isnan(labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits[valid], labels[valid].long()))
    with pytest.raises(ValueError, match="problem_type"):
        seeded(MoleBlendForPropertyPrediction, tiny_config(num_labels=1))(**batch, labels=labels[:, None])


# ----------------------------------------------------------------------------------------------------------------
# Saving and loading


def test_save_and_load_round_trip_is_exact(tmp_path, batch):
    config = tiny_config(num_labels=2, problem_type="regression", target_mean=[1.0, 2.0], target_std=[3.0, 4.0])
    model = seeded(MoleBlendForPropertyPrediction, config).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    loaded = MoleBlendForPropertyPrediction.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)
    state = model.state_dict()
    assert all(torch.equal(value, state[name]) for name, value in loaded.state_dict().items())


def test_pretraining_checkpoint_into_property_model_keeps_the_encoder(tmp_path, batch, caplog):
    pretrained = seeded(MoleBlendForPretraining, tiny_config())
    pretrained.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING):
        model = MoleBlendForPropertyPrediction.from_pretrained(
            tmp_path, num_labels=1, problem_type="multi_label_classification"
        )
    encoder = pretrained.moleblend.state_dict()
    for name, value in model.moleblend.state_dict().items():
        assert torch.equal(value, encoder[name]), name
    assert "pretraining-head tensors" in caplog.text and "denoise" in caplog.text
    base = AutoModel.from_pretrained(tmp_path)
    assert type(base) is MoleBlendModel
    assert all(torch.equal(value, encoder[name]) for name, value in base.state_dict().items())


EXPORT_CHECK = """
import json, sys

class BlockPackage:
    # the installed (editable) package must not be importable: only the exported folder's code may run
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("modeling_moleblend", "tokenization"):
            raise ImportError("blocked: " + name)
        return None

sys.meta_path.insert(0, BlockPackage())
import torch
from transformers import AutoFeatureExtractor, AutoModel, AutoModelForSequenceClassification

folder = sys.argv[1]
featurizer = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
batch = featurizer(json.loads(sys.argv[2]), return_tensors="pt")
head = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
base = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
with torch.no_grad():
    logits, pooled = head(**batch).logits, base(**batch).pooler_output
modules = [type(featurizer).__module__, type(head).__module__, type(base).__module__]
assert all(m.startswith("transformers_modules") for m in modules), modules
assert not any(name.split(".")[0] in ("modeling_moleblend", "tokenization") for name in sys.modules)
print(json.dumps({"logits": logits.tolist(), "pooled": pooled.tolist(), "modules": modules,
                  "coordinates": batch["coordinates"].tolist()}))
"""


DESCRIPTOR_FIELDS = dict(
    molecule_feature_names=["MolLogP", "TPSA", "Ipc"],
    molecule_feature_center=[1.0, 3.0, 2.0],
    molecule_feature_scale=[2.0, 1.0, 4.0],
)


@pytest.mark.parametrize("descriptors", [False, True], ids=["graph", "graph+descriptors"])
def test_hub_export_loads_without_the_package(tmp_path, featurizer, descriptors):
    """The exported folder alone (trust_remote_code) featurizes and predicts as the package does; with RDKit
    descriptors, its featurizer computes them and its head reads them."""
    extra = DESCRIPTOR_FIELDS if descriptors else {}
    config = tiny_config(
        num_labels=2, problem_type="regression", target_mean=[1.0, 2.0], target_std=[3.0, 4.0], **extra
    )
    model = seeded(MoleBlendForPropertyPrediction, config).eval()
    if descriptors:
        featurizer = MoleBlendFeaturizer(
            conformer="generate", num_workers=0, seed=0, molecule_descriptors=extra["molecule_feature_names"]
        )
    export = tmp_path / "export"
    model.save_pretrained(export)
    featurizer.save_pretrained(export)
    auto_map = json.loads((export / "config.json").read_text())["auto_map"]
    assert {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification"} <= set(auto_map)
    assert "auto_map" in json.loads((export / "preprocessor_config.json").read_text())
    for name in ("modeling_moleblend.py", "configuration_moleblend.py", "feature_extraction_moleblend.py"):
        assert (export / name).exists(), name

    elsewhere = tmp_path / "elsewhere" / "moleblend_export"
    shutil.copytree(export, elsewhere)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), TRANSFORMERS_VERBOSITY="error")
    smiles = SMILES[:3]
    result = subprocess.run(
        [sys.executable, "-I", "-c", textwrap.dedent(EXPORT_CHECK), str(elsewhere), json.dumps(smiles)],
        cwd=tmp_path / "elsewhere",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])

    batch = featurizer(smiles, return_tensors="pt")
    assert np.allclose(remote["coordinates"], batch["coordinates"].numpy(), atol=1e-6)
    with torch.no_grad():
        logits, pooled = model(**batch).logits, model.moleblend(**batch).pooler_output
    np.testing.assert_allclose(remote["logits"], logits.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(remote["pooled"], pooled.numpy(), atol=1e-5, rtol=0)


def test_gaussian_basis_has_the_values_and_gradients_of_the_formula():
    x = torch.tensor([0.0, 0.7, 1.5, 3.2, 9.0], dtype=torch.float64, requires_grad=True)
    means = torch.tensor([0.5, 1.5, 4.0], dtype=torch.float64, requires_grad=True)
    stds = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64, requires_grad=True)
    formula = torch.exp(-0.5 * ((x[:, None] - means) / stds) ** 2) / (math.sqrt(2 * math.pi) * stds)
    torch.testing.assert_close(MoleBlendGaussianBasis.apply(x, means, stds), formula)
    assert torch.autograd.gradcheck(MoleBlendGaussianBasis.apply, (x, means, stds))


def test_the_attention_bias_is_the_same_with_and_without_gradients(batch):
    """Built in place without gradients and by concatenation with them (no CopySlices backward): equal tensors,
    padded keys at finfo.min, the graph token's row 0 on real keys, its column the learned scalars."""
    model = seeded(MoleBlendModel, tiny_config(input_modality="2d3d")).eval()
    with torch.no_grad():
        in_place = model(**batch, output_attention_bias=True).attention_bias
    concatenated = model(**batch, output_attention_bias=True).attention_bias
    assert concatenated.requires_grad and torch.equal(in_place, concatenated.detach())
    token_mask = torch.cat([torch.ones(len(SMILES), 1, dtype=torch.bool), batch["atom_mask"].bool()], dim=1)
    keys = token_mask[:, None, None, :].expand_as(in_place)
    assert (in_place[~keys] == torch.finfo(in_place.dtype).min).all()
    assert (in_place[:, :, 0][token_mask[:, None, :].expand(-1, in_place.shape[1], -1)] == 0).all()
    column = model.attention_bias.graph_token_column.detach()
    torch.testing.assert_close(in_place[:, :, 1:, 0], column[None, :, None].expand_as(in_place[:, :, 1:, 0]))
