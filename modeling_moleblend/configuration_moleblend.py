"""MoleBlend model configuration.

The vocabulary sizes below match the featurizer's (``tokenization/molecular_graph_moleblend.py``); they are repeated
here, not imported, because a Hub export copies this file without the package around it (a test keeps them equal).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

INPUT_MODALITIES = ("2d", "3d", "2d3d")
BLEND_MASK_MODES = ("per_molecule", "per_batch")
TARGETS_3D = ("distance", "direction")
PROBLEM_TYPES = (None, "regression", "multi_label_classification", "single_label_classification")
READOUTS = ("graph_token", "mean", "sum", "graph_token+mean")
REGRESSION_LOSSES = ("mse", "l1", "huber")

# Architecture presets. "base" is the paper's model (about 47M parameters); "small" trains on a CPU.
MOLEBLEND_PRESETS: dict[str, dict[str, Any]] = {
    "base": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 32,
        "intermediate_size": 768,
        "num_kernels": 128,
    },
    "small": {
        "hidden_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "intermediate_size": 256,
        "num_kernels": 64,
    },
}


@strict
class MoleBlendConfig(PreTrainedConfig):
    r"""Configuration of a MoleBlend model (MoleBLEND, Yu et al., ICLR 2024): a post-LN Transformer over the atoms
    of a molecule plus a graph token, whose attention logits get per-head biases from the 2D graph (shortest-path
    length, bonds along the shortest path) and from the 3D structure (Gaussian kernels on interatomic distances).

    Architecture:
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size: the encoder's sizes.
        hidden_act: activation of the feed-forward blocks and kernel MLP ("gelu").
        attention_dropout, activation_dropout, hidden_dropout: dropout on attention weights, inside the FFN, and
            on each sublayer's output. drop_path_rate: stochastic depth of the last layer (per molecule, linearly
            increasing from 0 at the first layer). classifier_dropout: before the property head.
        layer_norm_eps, initializer_range: as usual.
        num_kernels: Gaussian basis kernels on interatomic distances (K).
        atom_3d_feature_scale: factor on the 3D atom feature before it is added to the atom embedding (0.01 as in
            the reference implementation).
        input_modality: which relations the encoder sees: "2d" (shortest paths + bonds + degree), "3d" (distance
            kernels + 3D atom feature) or "2d3d" (both, summed). Pretraining needs "2d3d".

    Vocabularies (must match the featurizer):
        atom_vocab_size: the shared table of the 9 atom features (row 0 = padding).
        bond_vocab_size: the shared table of the 3 bond features (row 0 = padding); bond_feature_sizes: the raw
            size of each bond feature, in order (type, stereo, conjugated).
        num_degrees: graph-degree embedding rows (0..8).
        num_atom_types: atomic-number rows for the 3D pair affine (0 = padding, 1..119).
        max_spd: shortest-path lengths above it share the last bucket; unreachable pairs have their own index.
        max_hops: bonds along a shortest path used by the edge bias.

    Pretraining (modality blending):
        blend_spd_probability, blend_edge_probability, blend_3d_probability: for each atom pair, the probability
            that it shows its shortest-path, bond-path or 3D bias (sum to 1).
        blend_degree_probability, blend_atom_3d_probability: for each atom, the probability of the degree
            embedding vs the 3D atom feature (sum to 1).
        blend_mask_mode: "per_molecule" (default; one symmetric mask per molecule) or "per_batch" (the reference:
            one asymmetric mask shared by the batch).
        score_hidden_pairs_only: score each relation head only on the pairs that hid that relation: neither (i, j)
            nor (j, i) showed it, which matters for the asymmetric "per_batch" mask (ablation; the reference scores
            every valid pair).
        relation_head_dim: width of the pair projections whose outer product feeds the relation heads.
        num_spd_classes: classes of the shortest-path head (1..num_spd_classes-1, and a last "longer" class).
        target_3d: "distance" (default: regress d_ij) or "direction" (the reference: 1 - cos with p_j - p_i).
        noise_std: Gaussian noise (angstrom) added to the input coordinates for the denoising head.
        denoise_loss_weight, spd_loss_weight, edge_loss_weight, distance_loss_weight: the total loss's weights.
        num_descriptors: 0 (the paper) or the number of standardised RDKit 2D descriptors that a head on the graph
            token's final state regresses (MSE, weight ``descriptor_loss_weight``); ``moleblend pretrain
            --descriptor_loss_weight`` sets both (going beyond the paper: a molecule-level target).

    Property prediction:
        num_labels, id2label, problem_type ("regression", "multi_label_classification" (also single binary
            tasks, with num_labels=1) or "single_label_classification").
        target_mean, target_std: per-task statistics of regression targets; the loss is computed on standardised
            targets and the logits are returned in real units.
        readout: what the property head reads: "graph_token" (the paper), "mean" or "sum" over the atoms' final
            states, or "graph_token+mean" (both, concatenated).
        regression_loss: "mse" (default), "l1" or "huber" (``huber_delta``, on standardised targets).
        label_values: per task mapped from text labels, ``{"0": "inactive", "1": "active"}`` (informational).
        molecule_feature_names, molecule_feature_center, molecule_feature_scale, molecule_feature_clip: RDKit 2D
            descriptors the head reads beside the readout (``moleblend finetune --molecule_descriptors``; None =
            none, the paper): the featurizer supplies their raw values, the model standardises them (signed
            log1p, then ``(x - center) / scale`` fitted on the training rows, clipped to +-clip, missing -> 0).

    Use ``MoleBlendConfig.from_preset("small", num_labels=2)`` for the preset sizes in ``MOLEBLEND_PRESETS``.
    """

    model_type: ClassVar[str] = "moleblend"

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 32
    intermediate_size: int = 768
    hidden_act: str = "gelu"
    attention_dropout: float | int = 0.1
    activation_dropout: float | int = 0.1
    hidden_dropout: float | int = 0.0
    drop_path_rate: float | int = 0.1
    classifier_dropout: float | int = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    num_kernels: int = 128
    atom_3d_feature_scale: float | int = 0.01
    input_modality: str = "2d3d"

    atom_vocab_size: int = 175
    bond_vocab_size: int = 15
    bond_feature_sizes: list[int] | tuple[int, ...] = (5, 7, 2)
    num_degrees: int = 9
    num_atom_types: int = 120
    max_spd: int = 20
    max_hops: int = 5

    blend_spd_probability: float | int = 0.2
    blend_edge_probability: float | int = 0.2
    blend_3d_probability: float | int = 0.6
    blend_degree_probability: float | int = 0.4
    blend_atom_3d_probability: float | int = 0.6
    blend_mask_mode: str = "per_molecule"
    score_hidden_pairs_only: bool = False
    relation_head_dim: int = 32
    num_spd_classes: int = 11
    target_3d: str = "distance"
    noise_std: float | int = 0.2
    denoise_loss_weight: float | int = 6.0
    spd_loss_weight: float | int = 0.1
    edge_loss_weight: float | int = 0.1
    distance_loss_weight: float | int = 0.5
    num_descriptors: int = 0
    descriptor_loss_weight: float | int = 1.0

    target_mean: list[float | int] | None = None
    target_std: list[float | int] | None = None
    readout: str = "graph_token"
    regression_loss: str = "mse"
    huber_delta: float | int = 1.0
    label_values: dict | None = None
    molecule_feature_names: list[str] | None = None
    molecule_feature_center: list[float | int] | None = None
    molecule_feature_scale: list[float | int] | None = None
    molecule_feature_clip: float | int = 5.0
    tie_word_embeddings: bool = False

    @classmethod
    def from_preset(cls, name: str, **overrides) -> MoleBlendConfig:
        """A config with the sizes of preset ``name`` ("base" or "small"), then ``overrides``."""
        if name not in MOLEBLEND_PRESETS:
            raise ValueError(f"unknown MoleBlend preset {name!r}; choose one of {sorted(MOLEBLEND_PRESETS)}")
        return cls(**{**MOLEBLEND_PRESETS[name], **overrides})

    @property
    def num_edge_classes(self) -> int:
        """Joint bond classes (type x stereo x conjugated) plus one "other" class."""
        return math.prod(self.bond_feature_sizes) + 1

    def validate_architecture(self):
        super().validate_architecture()
        positive = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "num_kernels")
        positive += ("atom_vocab_size", "num_degrees", "num_atom_types", "max_spd", "max_hops", "relation_head_dim")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if self.input_modality not in INPUT_MODALITIES:
            raise ValueError(f"input_modality must be one of {INPUT_MODALITIES}, got {self.input_modality!r}")
        if self.bond_vocab_size != 1 + sum(self.bond_feature_sizes):
            raise ValueError(
                f"bond_vocab_size ({self.bond_vocab_size}) must be 1 + sum(bond_feature_sizes) "
                f"({1 + sum(self.bond_feature_sizes)})"
            )
        if self.num_spd_classes < 2:
            raise ValueError(f"num_spd_classes must be >= 2, got {self.num_spd_classes}")

    def validate_rates(self):
        for name in ("attention_dropout", "activation_dropout", "hidden_dropout", "drop_path_rate"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.classifier_dropout < 1:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {self.classifier_dropout}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")

    def validate_blending(self):
        pair = (self.blend_spd_probability, self.blend_edge_probability, self.blend_3d_probability)
        atom = (self.blend_degree_probability, self.blend_atom_3d_probability)
        for kind, probabilities in (("pair", pair), ("atom", atom)):
            if any(p < 0 for p in probabilities) or not math.isclose(sum(probabilities), 1.0, abs_tol=1e-6):
                raise ValueError(
                    f"the {kind}-level blending probabilities must be >= 0 and sum to 1, got {probabilities}"
                )
        if self.blend_mask_mode not in BLEND_MASK_MODES:
            raise ValueError(f"blend_mask_mode must be one of {BLEND_MASK_MODES}, got {self.blend_mask_mode!r}")
        if self.target_3d not in TARGETS_3D:
            raise ValueError(f"target_3d must be one of {TARGETS_3D}, got {self.target_3d!r}")
        weights = ("denoise_loss_weight", "spd_loss_weight", "edge_loss_weight", "distance_loss_weight")
        weights += ("descriptor_loss_weight", "num_descriptors")
        for name in weights:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def validate_task(self):
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if self.regression_loss not in REGRESSION_LOSSES:
            raise ValueError(f"regression_loss must be one of {REGRESSION_LOSSES}, got {self.regression_loss!r}")
        if self.huber_delta <= 0:
            raise ValueError(f"huber_delta must be > 0, got {self.huber_delta}")
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {self.problem_type!r}")
        for name in ("target_mean", "target_std"):
            values = getattr(self, name)
            if values is None:
                continue
            if self.problem_type not in (None, "regression"):
                raise ValueError(f"{name} is only used with problem_type='regression', got {self.problem_type!r}")
            if len(values) != self.num_labels:
                raise ValueError(f"{name} has {len(values)} values but num_labels is {self.num_labels}")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"{name} must be finite, got {values}")
        if self.target_std is not None and any(v <= 0 for v in self.target_std):
            raise ValueError(f"target_std must be > 0, got {self.target_std}")
        names = self.molecule_feature_names or []
        for name in ("molecule_feature_center", "molecule_feature_scale"):
            values = getattr(self, name)
            if len(values or []) != len(names):
                raise ValueError(f"{name} has {len(values or [])} values for {len(names)} molecule_feature_names")
        if any(v <= 0 for v in self.molecule_feature_scale or []):
            raise ValueError("molecule_feature_scale must be > 0")

    @property
    def num_molecule_features(self) -> int:
        return len(self.molecule_feature_names or [])


__all__ = ["MOLEBLEND_PRESETS", "MoleBlendConfig"]
