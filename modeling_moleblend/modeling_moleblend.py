"""PyTorch MoleBlend: a Transformer over atoms whose attention is biased by 2D and 3D molecular relations, with
the MoleBLEND "blend-then-predict" pretraining objective (Yu et al., ICLR 2024).

Notation in shapes: ``batch`` molecules, ``atoms`` padded atoms, ``tokens`` = atoms + 1 (the graph token comes
first), ``heads`` attention heads, ``hidden`` the model width, ``kernels`` Gaussian distance kernels.

Inputs are the keys of ``MoleBlendFeaturizer(...)(molecules, return_tensors="pt")``: ``model(**batch)`` works.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, can_return_tuple, logging

from .configuration_moleblend import MoleBlendConfig

logger = logging.get_logger(__name__)

# Which relation an atom pair shows under modality blending.
PAIR_SHOWS_SPD, PAIR_SHOWS_EDGE, PAIR_SHOWS_3D = 0, 1, 2
IGNORE_INDEX = -100
# The batch keys each input_modality cannot run without. This file is exported alone (no tokenization import):
# a test keeps it equal to `tokenization.batch_layout_moleblend.inputs_needed`.
MODALITY_INPUTS: dict[str, tuple[str, ...]] = {
    "2d": ("atom_ids", "degree", "spd", "path_bonds", "bond_features"),
    "3d": ("atom_ids", "coordinates"),
    "2d3d": ("atom_ids", "degree", "spd", "path_bonds", "bond_features", "coordinates"),
}
# Keys of the pretraining heads; a property-prediction model drops them on load (and says so).
PRETRAINING_HEADS_PREFIX = "pretrain_heads."
# Parameters of older checkpoints that no longer exist (they could not change the outputs): ignored on load.
DROPPED_PARAMETERS = (r"(^|\.)attention_bias\.graph_token_row$",)
# Every MoleBlend class a Hub export should be loadable with (``auto_map`` lists only saved classes otherwise).
EXPORTED_AUTO_CLASSES = {
    "AutoConfig": "configuration_moleblend.MoleBlendConfig",
    "AutoModel": "modeling_moleblend.MoleBlendModel",
    "AutoModelForSequenceClassification": "modeling_moleblend.MoleBlendForPropertyPrediction",
    "AutoModelForPreTraining": "modeling_moleblend.MoleBlendForPretraining",
}


# ----------------------------------------------------------------------------------------------------------------
# Outputs


@dataclass
class MoleBlendModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state: `[batch, tokens, hidden]`, token 0 is the graph token (`[batch, 1, hidden]`, the graph
            token alone, when the model was called with `graph_token_only=True`).
        pooler_output: `[batch, hidden]`, the graph token's final state (the molecule's embedding).
        hidden_states: tuple of `[batch, tokens, hidden]`, the embeddings and every layer's output.
        attentions: tuple of `[batch, heads, tokens, tokens]` per layer (eager attention only).
        attention_bias: `[batch, heads, tokens, tokens]`, the bias every layer adds to its attention logits
            (padded keys hold `finfo.min`); returned with `output_attention_bias=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    attention_bias: torch.FloatTensor | None = None


@dataclass
class MoleBlendPropertyPredictionOutput(ModelOutput):
    """
    Args:
        loss: scalar, over the non-missing (non-NaN) labels only.
        logits: `[batch, num_labels]`; regression values are in the labels' real units.
        hidden_states, attentions: as in `MoleBlendModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class MoleBlendForPretrainingOutput(ModelOutput):
    """
    Args:
        loss: the weighted sum of the four components below (weights from the config).
        spd_loss: cross-entropy of the shortest-path-length head.
        edge_loss: cross-entropy of the bond-along-the-path head.
        distance_loss: loss of the 3D relation head (distance regression, or 1 - cos for "direction").
        denoise_loss: 1 - cos between predicted and true coordinate noise.
        descriptor_loss: MSE of the descriptor head on the standardised descriptors (only with
            `config.num_descriptors > 0` and `descriptors` given; otherwise None).
        hidden_states, attentions: as in `MoleBlendModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    spd_loss: torch.FloatTensor | None = None
    edge_loss: torch.FloatTensor | None = None
    distance_loss: torch.FloatTensor | None = None
    denoise_loss: torch.FloatTensor | None = None
    descriptor_loss: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ----------------------------------------------------------------------------------------------------------------
# Relations -> attention biases


class MoleBlendShortestPathBias(nn.Module):
    """Per-head bias from the shortest-path bond count. Counts above `max_spd` share its bucket; unreachable pairs
    (other fragment, or padding) have their own row."""

    def __init__(self, config: MoleBlendConfig):
        super().__init__()
        self.max_spd = config.max_spd
        self.embedding = nn.Embedding(config.max_spd + 2, config.num_attention_heads)

    def rows(self, spd: torch.Tensor) -> torch.Tensor:
        """`spd` `[...]` (-1 = unreachable) -> the embedding row of each count `[...]`."""
        spd = spd.long()
        return torch.where(spd < 0, self.max_spd + 1, spd.clamp(max=self.max_spd))

    def forward(self, spd: torch.Tensor) -> torch.Tensor:
        """`spd` `[batch, atoms, atoms]` (-1 = unreachable) -> `[batch, heads, atoms, atoms]`."""
        return self.embedding(self.rows(spd)).permute(0, 3, 1, 2)


class MoleBlendWeightedBags(torch.autograd.Function):
    """`out[p] = sum_e weights[e] * table[rows[e]]` over the entries e of bag p: `table` `[rows, width]`, `rows`
    (None: entry e is row e) and `weights` `[entries]` grouped by bag, `counts` `[bags]` (entries per bag, 0
    allowed) -> `[bags, width]`. Forward by one `embedding_bag` (a pass in C, no `[entries, width]` intermediate);
    backward by one `index_add_` (autograd's `embedding_bag` backward sorts the indices and costs 4x the forward on
    CPU). No gradient for `weights` (constants: blend masks and 1 / hops)."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, rows: torch.Tensor | None, counts: torch.Tensor, weights: torch.Tensor):
        identity = rows is None  # entry e is table row e (a segment sum over consecutive rows)
        if identity:
            rows = torch.arange(table.shape[0], device=table.device)
        ctx.save_for_backward(None if identity else rows, counts, weights)
        ctx.table_rows = table.shape[0]
        offsets = counts.cumsum(0) - counts
        return F.embedding_bag(rows, table, offsets, mode="sum", per_sample_weights=weights.to(table.dtype))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        rows, counts, weights = ctx.saved_tensors
        per_entry = grad.repeat_interleave(counts, dim=0, output_size=len(weights)) * weights.to(grad.dtype)[:, None]
        if rows is None:
            return per_entry, None, None, None
        grad_table = grad.new_zeros(ctx.table_rows, grad.shape[1]).index_add_(0, rows, per_entry)
        return grad_table, None, None, None


class MoleBlendBondPathBias(nn.Module):
    """Per-head bias from the bonds along a shortest path (multi-hop edge encoding).

    Hop k embeds its bond's 3 features (mean), multiplies by a hop-specific `[heads, heads]` matrix; the hops are
    summed and divided by their number, min(spd, max_hops).
    """

    def __init__(self, config: MoleBlendConfig):
        super().__init__()
        self.max_hops = config.max_hops
        self.bond_embedding = nn.Embedding(config.bond_vocab_size, config.num_attention_heads, padding_idx=0)
        self.hop_matrices = nn.Parameter(
            torch.empty(config.max_hops, config.num_attention_heads, config.num_attention_heads)
        )

    def bond_table(self, bond_features: torch.Tensor, hops: int) -> torch.Tensor:
        """`bond_features` `[batch, bonds, 3]` -> each bond times each hop's matrix, `[batch * hops * bonds, heads]`
        (row (b * hops + k) * bonds + r: bond r of molecule b at hop k): the few bonds are transformed once per
        hop, never a `[batch, atoms, atoms, hops, heads]` tensor."""
        bonds = self.bond_embedding(bond_features.long()).mean(dim=-2)  # [batch, bonds, heads]
        per_bond = torch.einsum("bnh,khg->bkng", bonds, self.hop_matrices[:hops])  # [batch, hops, bonds, heads]
        return per_bond.reshape(-1, per_bond.shape[-1])

    def forward(self, path_bonds: torch.Tensor, bond_features: torch.Tensor) -> torch.Tensor:
        """`path_bonds` `[batch, atoms, atoms, hops]` (1-based bond rows, 0 = no bond), `bond_features`
        `[batch, bonds, 3]` -> `[batch, heads, atoms, atoms]` for every pair (the model computes its real pairs
        only, with `graph_pair_bias`)."""
        batch, atoms = path_bonds.shape[:2]
        pairs = torch.arange(batch * atoms * atoms, device=path_bonds.device)
        bias = graph_pair_bias(None, self, None, path_bonds, bond_features, pairs)
        return bias.view(batch, atoms, atoms, -1).permute(0, 3, 1, 2)


def graph_pair_bias(
    shortest_path: MoleBlendShortestPathBias | None,
    bond_path: MoleBlendBondPathBias,
    spd: torch.Tensor | None,
    path_bonds: torch.Tensor,
    bond_features: torch.Tensor,
    pairs: torch.Tensor,
    spd_weight: torch.Tensor | None = None,
    edge_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The 2D relations' bias on the chosen atom pairs only: the shortest-path row (if `shortest_path` is given)
    plus the bond-path bias (the mean over the path's hops k of bond_k @ hop_matrix_k), by one weighted
    `embedding_bag` over both tables. Padding pairs and absent hops cost nothing.

    `spd` `[batch, atoms, atoms]`, `path_bonds` `[batch, atoms, atoms, hops]`, `bond_features` `[batch, bonds, 3]`,
    `pairs` `[pairs]` flat (b, i, j) indices into `[batch, atoms, atoms]`; `spd_weight` / `edge_weight` `[pairs]`
    scale each term per pair (modality blending: 1 where the pair shows the relation, else 0; default 1)
    -> `[pairs, heads]`.
    """
    batch, atoms = path_bonds.shape[:2]
    hops = min(bond_path.max_hops, path_bonds.shape[-1])
    num_bonds = bond_features.shape[1]
    path = path_bonds.reshape(batch * atoms * atoms, -1).index_select(0, pairs)[:, :hops].long()  # [pairs, hops]
    present = path > 0
    hop_weight = 1.0 / present.sum(1, keepdim=True).clamp(min=1)  # [pairs, 1]
    if edge_weight is not None:
        hop_weight = hop_weight * edge_weight[:, None]
        present = present & (edge_weight[:, None] != 0)
    first_row = (pairs[:, None] // (atoms * atoms) * hops + torch.arange(hops, device=pairs.device)) * num_bonds
    tables, rows = [bond_path.bond_table(bond_features, hops)], [first_row + path]
    weights, kept = [hop_weight.expand(-1, hops)], [present]
    if shortest_path is not None:  # its rows after the bond table's
        tables.append(shortest_path.embedding.weight)
        rows.append(tables[0].shape[0] + shortest_path.rows(spd.reshape(-1)[pairs])[:, None])
        if spd_weight is None:
            weights.append(hop_weight.new_ones(len(pairs), 1))
            kept.append(present.new_ones(len(pairs), 1))
        else:
            weights.append(spd_weight[:, None].to(hop_weight))
            kept.append(weights[-1] != 0)
    kept = torch.cat(kept, 1)  # [pairs, entries per pair]
    entries = kept.flatten().nonzero().squeeze(1)  # in pair order, as the bags need
    rows = torch.cat(rows, 1).flatten().index_select(0, entries)
    weights = torch.cat(weights, 1).flatten().index_select(0, entries)
    return MoleBlendWeightedBags.apply(torch.cat(tables), rows, kept.sum(1), weights)


class MoleBlendGaussianBasis(torch.autograd.Function):
    """psi_k(x) = exp(-((x - mean_k) / std_k)^2 / 2) / (sqrt(2 pi) std_k) for `x` `[pairs]`, `means` and `stds`
    `[kernels]` -> `[pairs, kernels]`, in three passes over the output (two fused multiply-adds and an exp) and
    an analytic backward over the saved z = (x - mean) / std and psi: autograd's version of the formula makes
    about twenty passes over `[pairs, kernels]`, the largest cost of 3D finetuning at the small preset."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, means: torch.Tensor, stds: torch.Tensor) -> torch.Tensor:
        inverse = stds.reciprocal()
        z = torch.addcmul((-means * inverse)[None], x[:, None], inverse[None])  # [pairs, kernels]
        log_norm = (inverse / math.sqrt(2 * math.pi)).log()
        psi = torch.addcmul(log_norm[None], z, z, value=-0.5).exp_()
        ctx.save_for_backward(z, psi, inverse)
        return psi

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z, psi, inverse = ctx.saved_tensors
        weighted = grad * psi  # dL/dpsi * psi
        slope = weighted * z  # dpsi/dz = -z psi
        grad_x = -(slope @ inverse)
        grad_means = slope.sum(0) * inverse
        grad_stds = (torch.linalg.vecdot(slope, z, dim=0) - weighted.sum(0)) * inverse  # psi (z^2 - 1) / std
        return grad_x, grad_means, grad_stds


class MoleBlendGaussianKernels(nn.Module):
    """Gaussian basis functions of interatomic distances: psi_k(a_ij d_ij + b_ij) with a learned affine per
    atom-pair type (a_ij = a[z_i] + a[z_j], likewise b) and learned means and widths (sigma = |s| + 0.01)."""

    def __init__(self, config: MoleBlendConfig):
        super().__init__()
        self.pair_scale = nn.Parameter(torch.empty(config.num_atom_types))
        self.pair_shift = nn.Parameter(torch.empty(config.num_atom_types))
        self.means = nn.Parameter(torch.empty(config.num_kernels))
        self.stds = nn.Parameter(torch.empty(config.num_kernels))

    def forward(self, distances: torch.Tensor, first_types: torch.Tensor, second_types: torch.Tensor) -> torch.Tensor:
        """`distances`, `first_types`, `second_types` (the two atoms' types) of the same shape `[...]` ->
        `[..., kernels]` (the encoder passes its real pairs only, `[pairs]`)."""
        # float32 even in a bf16 model: distances need the precision
        scale, shift = self.pair_scale.float(), self.pair_shift.float()
        x = (scale[first_types] + scale[second_types]) * distances.float() + shift[first_types] + shift[second_types]
        std = self.stds.float().abs() + 0.01
        psi = MoleBlendGaussianBasis.apply(x.reshape(-1), self.means.float(), std)
        psi = psi.view(*x.shape, self.means.shape[0])
        return psi.to(self.means.dtype)


class MoleBlendGeometryEncoder(nn.Module):
    """The 3D relations: a per-head attention bias from distance kernels, and a per-atom feature (the kernels
    summed over the other atoms). Both are zero for molecules without 3D coordinates.

    Padding-free: the kernels run on the atom pairs of molecules with 3D only (`[pairs, kernels]`, not
    `[batch, atoms, atoms, kernels]`), and the bias MLP (a kernels x kernels layer per pair, as costly as the whole
    encoder at the small preset) only on the pairs whose bias is used (`bias_pairs`: under modality blending, the
    pairs that show 3D). Values and gradients equal the padded computation.
    """

    def __init__(self, config: MoleBlendConfig):
        super().__init__()
        self.kernels = MoleBlendGaussianKernels(config)
        self.bias_mlp = nn.Sequential(
            nn.Linear(config.num_kernels, config.num_kernels),
            ACT2FN[config.hidden_act],
            nn.Linear(config.num_kernels, config.num_attention_heads),
        )
        self.atom_projection = nn.Linear(config.num_kernels, config.hidden_size)
        self.atom_feature_scale = config.atom_3d_feature_scale

    def forward(
        self,
        coordinates: torch.Tensor,
        atom_types: torch.Tensor,
        atom_mask: torch.Tensor,
        has_3d: torch.Tensor,
        bias_pairs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`coordinates` `[batch, atoms, 3]`, `atom_types` and `atom_mask` `[batch, atoms]`, `has_3d` `[batch]`,
        `bias_pairs` `[batch or 1, atoms, atoms]` bool (default: all) -> the bias `[batch, heads, atoms, atoms]`
        (zero outside `bias_pairs`) and the atom feature `[batch, atoms, hidden]`."""
        batch, atoms = atom_mask.shape
        atom_has_3d = atom_mask & has_3d[:, None]
        pair_has_3d = atom_has_3d[:, :, None] & atom_has_3d[:, None, :]
        pairs = pair_has_3d.flatten().nonzero().squeeze(1)  # flat (b, i, j) of the real pairs with 3D
        molecule, first, second = pairs // (atoms * atoms), pairs // atoms % atoms, pairs % atoms
        coordinates = coordinates.float()
        # explicit differences: cdist's matmul shortcut (over 25 atoms) loses precision far from the origin
        distances = (coordinates[molecule, first] - coordinates[molecule, second]).norm(dim=-1)
        psi = self.kernels(distances, atom_types[molecule, first], atom_types[molecule, second])  # [pairs, kernels]
        if bias_pairs is not None:  # the MLP only where its output is used
            chosen = bias_pairs.expand(batch, atoms, atoms).flatten()[pairs].nonzero().squeeze(1)
            pairs, psi_biased = pairs[chosen], psi[chosen]
        else:
            psi_biased = psi
        pair_bias = self.bias_mlp(psi_biased)
        bias = pair_bias.new_zeros(batch * atoms * atoms, pair_bias.shape[-1]).index_copy(0, pairs, pair_bias)
        # the pairs are in (b, i, j) order, so each atom's pairs are one run of rows: a segment sum, not a scatter
        per_atom = pair_has_3d.sum(-1).flatten()  # [batch * atoms]
        neighbour_sum = MoleBlendWeightedBags.apply(psi, None, per_atom, (first != second).to(psi.dtype))
        atom_feature = self.atom_projection(neighbour_sum.view(batch, atoms, -1))
        atom_feature = atom_feature * atom_has_3d[..., None] * self.atom_feature_scale
        return bias.view(batch, atoms, atoms, -1).permute(0, 3, 1, 2), atom_feature


class MoleBlendAttentionBias(nn.Module):
    """Completes the atom-pair bias to all tokens: one learned scalar per head for the graph token's column (atoms
    attending to it); the graph token's own row is 0; padded keys get `finfo.min` (never -inf).

    A bias on the graph token's row (the reference's second scalar) is a constant over that query's keys, which
    the softmax cancels: it never changes attention, so it is not a parameter here (older checkpoints holding it
    load; the tensor is ignored).
    """

    def __init__(self, config: MoleBlendConfig):
        super().__init__()
        self.graph_token_column = nn.Parameter(torch.empty(config.num_attention_heads))

    def forward(self, pair_bias: torch.Tensor, token_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """`pair_bias` `[batch, heads, atoms, atoms]`, `token_mask` `[batch, tokens]` (the graph token and the real
        atoms) -> `[batch, heads, tokens, tokens]` in `dtype`."""
        batch, heads, atoms, _ = pair_bias.shape
        padded_key = ~token_mask[:, None, None, :]
        column = self.graph_token_column.to(dtype)
        if not (torch.is_grad_enabled() and (pair_bias.requires_grad or column.requires_grad)):
            bias = pair_bias.new_empty(batch, heads, atoms + 1, atoms + 1, dtype=dtype)  # in place: fewest passes
            bias[:, :, 0] = 0.0
            bias[:, :, 1:, 0] = column[None, :, None]
            bias[:, :, 1:, 1:] = pair_bias
            return bias.masked_fill_(padded_key, torch.finfo(dtype).min)
        # with gradients, no slice assignment: its backward (CopySlices) clones the whole gradient once per slice
        column = column.view(1, heads, 1, 1).expand(batch, heads, atoms, 1)
        atom_rows = torch.cat([column, pair_bias.to(dtype)], dim=3).masked_fill(padded_key, torch.finfo(dtype).min)
        graph_row = torch.where(padded_key, torch.finfo(dtype).min, 0.0).to(dtype).expand(batch, heads, 1, atoms + 1)
        return torch.cat([graph_row, atom_rows], dim=2)


class MoleBlendEmbeddings(nn.Module):
    """Atom tokens: the sum of the 9 atom-feature embeddings plus the structural atom feature (degree embedding
    and/or 3D atom feature, decided by the model), with the graph token prepended; then LayerNorm and dropout."""

    def __init__(self, config: MoleBlendConfig):
        super().__init__()
        self.atom_embedding = nn.Embedding(config.atom_vocab_size, config.hidden_size, padding_idx=0)
        uses_2d = config.input_modality in ("2d", "2d3d")
        self.degree_embedding = nn.Embedding(config.num_degrees, config.hidden_size) if uses_2d else None
        self.graph_token = nn.Parameter(torch.empty(config.hidden_size))
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def embed_degree(self, degree: torch.Tensor) -> torch.Tensor:
        """`degree` `[batch, atoms]` -> `[batch, atoms, hidden]` (degrees above the table share its last row)."""
        return self.degree_embedding(degree.long().clamp(0, self.degree_embedding.num_embeddings - 1))

    def forward(self, atom_ids: torch.Tensor, structure_feature: torch.Tensor | None) -> torch.Tensor:
        """`atom_ids` `[batch, atoms, 9]`, `structure_feature` `[batch, atoms, hidden]` -> `[batch, tokens, hidden]`."""
        batch, num_atoms, num_features = atom_ids.shape
        # one gather-and-sum (never a [batch, atoms, 9, hidden] tensor); row 0 (padding) is zero
        flat_ids = atom_ids.reshape(-1, num_features).long()
        atoms = F.embedding_bag(flat_ids, self.atom_embedding.weight, mode="sum", padding_idx=0)
        atoms = atoms.view(batch, num_atoms, -1)
        if structure_feature is not None:
            atoms = atoms + structure_feature
        graph_token = self.graph_token.to(atoms.dtype).expand(atoms.shape[0], 1, -1)
        return self.dropout(self.layer_norm(torch.cat([graph_token, atoms], dim=1)))


# ----------------------------------------------------------------------------------------------------------------
# Encoder


def attention_keep_mask(weights: torch.Tensor, p: float) -> tuple[torch.Tensor, float]:
    """The dropout keep mask of the `[batch * heads, tokens, tokens]` attention weights and its rescaling factor.

    Drawn 16 bits at a time from 64-bit random words (the torch generator, so seeded as usual): on CPU,
    `bernoulli_` costs more than the attention products at molecule sizes. An entry is kept with probability
    1 - round(p * 2^16) / 2^16."""
    level = round(p * 65536)
    count = weights.numel()
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=weights.device).random_(-(2**63), 2**63 - 1)
    keep = (words.view(torch.int16)[:count] >= level - 32768).view(weights.shape)
    return keep, 65536 / (65536 - level)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    position_bias: torch.Tensor | None = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention with an additive per-head bias (added inside the score product). `query`/`key`/`value`
    `[batch, heads, tokens, head_dim]`, `position_bias` `[batch, heads, tokens, tokens]`; returns
    `[batch, tokens, heads, head_dim]` and the weights."""
    batch, heads, tokens, head_dim = query.shape
    bias = position_bias if position_bias is not None else query.new_zeros(1, 1, 1, 1)
    if attention_mask is not None:
        bias = bias + attention_mask
    bias = bias.expand(batch, heads, tokens, key.shape[2]).reshape(batch * heads, tokens, -1)
    flat_query = query.reshape(batch * heads, tokens, head_dim)
    flat_key = key.reshape(batch * heads, -1, head_dim)
    scores = torch.baddbmm(bias.to(query.dtype), flat_query, flat_key.transpose(1, 2), alpha=scaling)
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    flat_value = value.reshape(batch * heads, -1, head_dim)
    if module.training and dropout > 0:
        keep, scale = attention_keep_mask(weights, dropout)
        weights = torch.where(keep, weights, 0.0)
        output = torch.bmm(weights, flat_value) * scale  # the rescaling on the smaller product
    else:
        output = torch.bmm(weights, flat_value)
    output = output.view(batch, heads, tokens, head_dim).transpose(1, 2).contiguous()
    return output, weights.view(batch, heads, tokens, -1)


class MoleBlendTokenPacking:
    """Where the real tokens of a padded batch are: every token-wise operation (projections, FFN, LayerNorm,
    dropout) runs on the packed `[real_tokens, hidden]` rows; only attention needs a padded
    `[molecules, heads, tokens, tokens]` layout, so the encoder unpacks for it and packs the result again.

    Attention in length groups (CPU): the molecules of a batch are sorted by size and split into groups, each
    padded only to its own longest molecule, so the score products, softmax and dropout do not run on the padding a
    batch's largest molecule imposes on its small ones. The split minimises `sum over groups (molecules x tokens^2
    x heads + GROUP_OVERHEAD)`: a group pays a fixed cost in calls. Keys beyond a molecule's atoms are masked
    either way, so the outputs are the same (to float rounding) as one group of the whole batch.

    `token_mask` `[batch, tokens]` True for the graph token and the real atoms; `heads` the attention heads (for the
    cost); `grouped` False keeps the whole batch as one group in its own order (needed to return attention weights
    in the `[batch, heads, tokens, tokens]` layout).
    """

    GROUP_OVERHEAD: int = 16384  # score entries a group's extra calls cost, measured on CPU; see docs/benchmarks.md
    ALIGN: int = 8  # a group pads its atoms to a multiple of this, as the collator does

    def __init__(self, token_mask: torch.Tensor, heads: int = 1, grouped: bool = False):
        self.batch, self.tokens = token_mask.shape
        flat = token_mask.reshape(-1)
        self.is_dense = bool(flat.all())  # no padding: packing would only copy
        self.index = None if self.is_dense else flat.nonzero().squeeze(1)  # [real_tokens]
        positions = torch.arange(flat.numel(), device=token_mask.device)
        # the molecule of each packed row (for per-molecule stochastic depth)
        self.molecule = (positions if self.is_dense else self.index) // self.tokens
        counts = token_mask.sum(1)
        self.graph_rows = torch.cumsum(counts, 0) - counts  # [batch] the packed row of each molecule's graph token
        self.groups: list[tuple[torch.Tensor, int]] | None = None  # (molecules, tokens) per group; None: one
        if grouped and not self.is_dense and self.batch > 1:
            self.groups = self._length_groups(counts, heads)
        if self.groups is not None:
            # where each row of the groups' padded layouts comes from: a packed row, or `real_tokens` (a zero row)
            row_of = torch.full((flat.numel(),), self.index.numel(), dtype=torch.long, device=token_mask.device)
            row_of[self.index] = torch.arange(self.index.numel(), device=token_mask.device)
            sources = [
                (molecules[:, None] * self.tokens + torch.arange(tokens, device=molecules.device)).flatten()
                for molecules, tokens in self.groups
            ]
            self.group_rows = row_of[torch.cat(sources)]  # [sum of molecules x tokens over groups]
            real = self.group_rows < self.index.numel()
            self.packed_rows = torch.empty_like(self.index)  # packed row -> its row in the groups' layouts
            self.packed_rows[self.group_rows[real]] = real.nonzero().squeeze(1)

    def _length_groups(self, lengths: torch.Tensor, heads: int) -> list[tuple[torch.Tensor, int]] | None:
        """Contiguous runs of the molecules sorted by size; a cut only where the aligned size changes."""
        order = torch.argsort(lengths, descending=True, stable=True)
        atoms = (lengths[order] - 1).tolist()  # graph token excluded
        sizes = [min(1 + -(-a // self.ALIGN) * self.ALIGN, self.tokens) for a in atoms]
        starts = [i for i in range(len(sizes)) if i == 0 or sizes[i] != sizes[i - 1]] + [len(sizes)]
        if len(starts) == 2:
            return None  # one size: the whole batch is one group
        # best[e]: the cheapest split of the molecules before starts[e]; a group from starts[b] has sizes[starts[b]]
        best, cut = [0.0] + [math.inf] * (len(starts) - 1), [0] * len(starts)
        for e in range(1, len(starts)):
            for b in range(e):
                cost = best[b] + (starts[e] - starts[b]) * sizes[starts[b]] ** 2 * heads + self.GROUP_OVERHEAD
                if cost < best[e]:
                    best[e], cut[e] = cost, b
        groups, e = [], len(starts) - 1
        while e > 0:
            b = cut[e]
            groups.append((order[starts[b] : starts[e]], sizes[starts[b]]))
            e = b
        return groups[::-1] if len(groups) > 1 else None

    def pack(self, padded: torch.Tensor) -> torch.Tensor:
        """`[batch, tokens, ...]` -> `[real_tokens, ...]`."""
        flat = padded.reshape(self.batch * self.tokens, *padded.shape[2:])
        return flat if self.is_dense else flat.index_select(0, self.index)

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """`[real_tokens, ...]` -> `[batch, tokens, ...]`, zeros at padding."""
        if not self.is_dense:
            padded = packed.new_zeros(self.batch * self.tokens, *packed.shape[1:])
            packed = padded.index_copy_(0, self.index, packed)  # in place: no second [batch * tokens] copy
        return packed.reshape(self.batch, self.tokens, *packed.shape[1:])

    def unpack_groups(self, packed: torch.Tensor) -> list[torch.Tensor]:
        """`[real_tokens, features]` -> per attention group `[molecules, tokens, features]`, zeros at padding."""
        if self.groups is None:
            return [self.unpack(packed)]
        rows = torch.cat([packed, packed.new_zeros(1, packed.shape[1])]).index_select(0, self.group_rows)
        sizes = [len(molecules) * tokens for molecules, tokens in self.groups]
        return [
            part.view(len(molecules), tokens, -1)
            for part, (molecules, tokens) in zip(rows.split(sizes), self.groups, strict=True)
        ]

    def pack_groups(self, grouped: list[torch.Tensor]) -> torch.Tensor:
        """Per attention group `[molecules, tokens, features]` -> `[real_tokens, features]`."""
        if self.groups is None:
            return self.pack(grouped[0])
        rows = torch.cat([part.reshape(-1, part.shape[-1]) for part in grouped])
        return rows.index_select(0, self.packed_rows)

    def group_molecules(self) -> list[torch.Tensor | None]:
        """The molecules of each attention group, in the groups' order (None: the whole batch in its order)."""
        return [None] if self.groups is None else [molecules for molecules, _ in self.groups]

    def group_bias(self, position_bias: torch.Tensor) -> list[torch.Tensor]:
        """`[batch, heads, tokens, tokens]` -> per attention group `[molecules, heads, tokens, tokens]` (computed once
        per forward; every layer reuses it)."""
        if self.groups is None:
            return [position_bias]
        return [position_bias[:, :, :tokens, :tokens].index_select(0, molecules) for molecules, tokens in self.groups]


class MoleBlendSelfAttention(nn.Module):
    """Multi-head self-attention over all tokens with the relation bias; dispatched to eager, SDPA or flex. The
    projections run on the packed tokens; only the products of attention see the padded layout."""

    def __init__(self, config: MoleBlendConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = False  # SDPA defaults to causal when a module lacks this attribute
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def _attention_interface(self, position_bias: torch.Tensor) -> Callable:
        implementation = self.config._attn_implementation
        if implementation == "sdpa" and position_bias.device.type == "cpu" and position_bias.requires_grad:
            # CPU SDPA falls back to its unfused math path when the bias needs a gradient: the eager path is faster
            implementation = "eager"
        return ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_bias: list[torch.Tensor],
        packing: MoleBlendTokenPacking,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`hidden_states` `[real_tokens, hidden]` (packed), `position_bias` per attention group of `packing`
        `[molecules, heads, tokens, tokens]` -> `[real_tokens, hidden]` and the weights `[batch, heads, tokens,
        tokens]` if asked (one group)."""
        # one product for query, key and value (the three weights stay separate parameters)
        weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
        bias = torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
        projected = F.linear(hidden_states, weight, bias)  # [real_tokens, 3 * hidden]
        attention_interface = self._attention_interface(position_bias[0])
        outputs, weights = [], None
        for group, group_bias in zip(packing.unpack_groups(projected), position_bias, strict=True):
            molecules, tokens = group.shape[:2]
            # [3, molecules, heads, tokens, head_dim]
            query, key, value = group.view(molecules, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            output, weights = attention_interface(
                self,
                query,
                key,
                value,
                None,  # key padding is folded into position_bias
                dropout=self.attention_dropout if self.training else 0.0,
                scaling=self.scaling,
                position_bias=group_bias,
                is_causal=False,
                output_attentions=output_attentions,
            )
            outputs.append(output.reshape(molecules, tokens, -1))
        output = self.o_proj(packing.pack_groups(outputs))
        return output, (weights if output_attentions else None)

    def forward_graph_token(
        self, hidden_states: torch.Tensor, position_bias: list[torch.Tensor], packing: MoleBlendTokenPacking
    ) -> torch.Tensor:
        """The attention output of each molecule's graph token only (its query against every token's key and
        value): what the last layer needs when the head reads the graph token alone. `hidden_states`
        `[real_tokens, hidden]` (packed) -> `[batch, hidden]`."""
        weight = torch.cat([self.k_proj.weight, self.v_proj.weight])
        bias = torch.cat([self.k_proj.bias, self.v_proj.bias])
        projected = F.linear(hidden_states, weight, bias)  # [real_tokens, 2 * hidden]
        query = self.q_proj(hidden_states.index_select(0, packing.graph_rows))  # [batch, hidden]
        attention_interface = self._attention_interface(position_bias[0])
        outputs, group_molecules = [], packing.group_molecules()
        groups = zip(group_molecules, packing.unpack_groups(projected), position_bias, strict=True)
        for molecules, group, group_bias in groups:
            count, tokens = group.shape[:2]
            key, value = group.view(count, tokens, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            group_query = query if molecules is None else query.index_select(0, molecules)
            output, _ = attention_interface(
                self,
                group_query.view(count, 1, self.num_heads, self.head_dim).transpose(1, 2),  # [count, heads, 1, dim]
                key,
                value,
                None,
                dropout=self.attention_dropout if self.training else 0.0,
                scaling=self.scaling,
                position_bias=group_bias[:, :, :1],  # the graph token's row
                is_causal=False,
            )
            outputs.append(output.reshape(count, -1))
        output = torch.cat(outputs)
        if packing.groups is not None:  # back to batch order
            output = output.index_select(0, torch.argsort(torch.cat(group_molecules)))
        return self.o_proj(output)


class MoleBlendFeedForward(nn.Module):
    def __init__(self, config: MoleBlendConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.activation_dropout = nn.Dropout(config.activation_dropout)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_dropout(self.activation(self.fc1(hidden_states))))


class MoleBlendDropPath(nn.Module):
    """Stochastic depth per molecule: in training, a molecule's whole residual branch is dropped with probability
    `rate` (the reference drops per token, a bug)."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, branch: torch.Tensor, molecule: torch.Tensor, batch: int) -> torch.Tensor:
        """`branch` `[real_tokens, hidden]` (packed), `molecule` `[real_tokens]` the molecule of each row."""
        if not self.training or self.rate == 0:
            return branch
        keep = 1.0 - self.rate
        mask = branch.new_empty(batch).bernoulli_(keep)
        return branch * mask[molecule, None] / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class MoleBlendLayer(GradientCheckpointingLayer):
    """Post-LN Transformer layer: x = LN(x + DropPath(Drop(MHA(x)))); x = LN(x + DropPath(Drop(FFN(x)))), on the
    packed tokens `[real_tokens, hidden]`."""

    def __init__(self, config: MoleBlendConfig, drop_path_rate: float):
        super().__init__()
        self.attention = MoleBlendSelfAttention(config)
        self.attention_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = MoleBlendFeedForward(config)
        self.output_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.drop_path = MoleBlendDropPath(drop_path_rate)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_bias: list[torch.Tensor],
        packing: MoleBlendTokenPacking,
        output_attentions: bool = False,
        graph_token_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`[real_tokens, hidden]` (packed) -> `[real_tokens, hidden]` and the attention weights if asked; with
        `graph_token_only`, `[batch, hidden]`: the graph tokens' rows alone (the same values as rows
        `packing.graph_rows` of the full output), from their queries against every token's key and value."""
        if graph_token_only:
            attended, weights = self.attention.forward_graph_token(hidden_states, position_bias, packing), None
            hidden_states = hidden_states.index_select(0, packing.graph_rows)
            molecule = torch.arange(packing.batch, device=hidden_states.device)
        else:
            attended, weights = self.attention(hidden_states, position_bias, packing, output_attentions)
            molecule = packing.molecule
        attended = self.drop_path(self.dropout(attended), molecule, packing.batch)
        hidden_states = self.attention_layer_norm(hidden_states + attended)
        transformed = self.drop_path(self.dropout(self.feed_forward(hidden_states)), molecule, packing.batch)
        hidden_states = self.output_layer_norm(hidden_states + transformed)
        return hidden_states, weights


class MoleBlendEncoder(nn.Module):
    """The layers, padding-free: the real tokens are packed once after the embeddings and unpacked (zeros at
    padding) for the outputs."""

    def __init__(self, config: MoleBlendConfig):
        super().__init__()
        layers = config.num_hidden_layers
        # drop-path grows linearly from 0 (first layer) to drop_path_rate (last layer)
        rates = [config.drop_path_rate * i / max(layers - 1, 1) for i in range(layers)]
        self.layers = nn.ModuleList([MoleBlendLayer(config, rate) for rate in rates])
        self.num_heads = config.num_attention_heads

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_bias: torch.Tensor,
        token_mask: torch.Tensor,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        graph_token_only: bool = False,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        """`hidden_states` `[batch, tokens, hidden]`, `token_mask` `[batch, tokens]` -> the last hidden state
        `[batch, tokens, hidden]` (zeros at padding), every layer's (if asked) and the attention weights.
        `graph_token_only`: the last layer computes the graph token alone (its query, every token's key and value)
        and the last hidden state is `[batch, 1, hidden]`; not with `output_attentions` or `output_hidden_states`."""
        if graph_token_only and (output_attentions or output_hidden_states):
            raise ValueError("graph_token_only computes no last-layer states for the atoms: not with output_* flags")
        # attention in length groups on CPU (on GPU the calls cost more than the padding); one group when the
        # weights are returned, so that they keep the [batch, heads, tokens, tokens] layout
        grouped = hidden_states.device.type == "cpu" and not output_attentions
        packing = MoleBlendTokenPacking(token_mask, self.num_heads, grouped)
        group_bias = packing.group_bias(position_bias)
        packed = packing.pack(hidden_states)
        all_hidden_states = (packing.unpack(packed),) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            # hidden states positional, the rest by keyword: what GradientCheckpointingLayer expects
            packed, weights = layer(
                packed,
                position_bias=group_bias,
                packing=packing,
                output_attentions=output_attentions,
                graph_token_only=graph_token_only and index == last,
            )
            if output_hidden_states:
                all_hidden_states += (packing.unpack(packed),)
            if output_attentions:
                all_attentions += (weights,)
        if graph_token_only:
            return packed[:, None], None, None  # the last layer gave the graph tokens alone: [batch, 1, hidden]
        last_hidden_state = all_hidden_states[-1] if output_hidden_states else packing.unpack(packed)
        return last_hidden_state, all_hidden_states, all_attentions


# ----------------------------------------------------------------------------------------------------------------
# Models


class MoleBlendPreTrainedModel(PreTrainedModel):
    config_class = MoleBlendConfig
    base_model_prefix = "moleblend"
    main_input_name = "atom_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MoleBlendLayer"]
    _supports_sdpa = True
    _supports_flex_attn = True  # GPU only in practice: flex has no CPU backward and no dropout
    _supports_flash_attn = False  # flash kernels take no arbitrary float bias
    _keys_to_ignore_on_load_unexpected = [re.escape(PRETRAINING_HEADS_PREFIX), *DROPPED_PARAMETERS]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        # transformers.initialization functions skip tensors already loaded from a checkpoint
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, MoleBlendEmbeddings):
            init.normal_(module.graph_token, std=std)
        elif isinstance(module, MoleBlendAttentionBias):
            init.normal_(module.graph_token_column, std=std)
        elif isinstance(module, MoleBlendBondPathBias):
            init.normal_(module.hop_matrices, std=std)
        elif isinstance(module, MoleBlendGaussianKernels):
            init.constant_(module.pair_scale, 0.5)  # a_ij = 1 and b_ij = 0 for every pair type at first
            init.zeros_(module.pair_shift)
            init.uniform_(module.means, 0.0, 10.0)  # angstrom: bonded to across a drug-like molecule
            init.uniform_(module.stds, 0.5, 3.0)

    def _adjust_missing_and_unexpected_keys(self, loading_info, *args, **kwargs):
        # Pretraining heads are dropped quietly by `_keys_to_ignore_on_load_unexpected`; say which ones.
        unexpected = getattr(loading_info, "unexpected_keys", None) or ()
        dropped = sorted(key for key in unexpected if key.startswith(PRETRAINING_HEADS_PREFIX))
        if dropped:
            heads = sorted({key.split(".")[1] for key in dropped if key.count(".") >= 1})
            logger.warning(
                f"{type(self).__name__}: dropped {len(dropped)} pretraining-head tensors from the checkpoint "
                f"(pretrain_heads: {', '.join(heads)}); the encoder weights were loaded."
            )
        return super()._adjust_missing_and_unexpected_keys(loading_info, *args, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        if self.is_remote_code():
            # `auto_map` only lists the classes of saved objects: name them all, so AutoModel & co load the export
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            for auto_class, reference in EXPORTED_AUTO_CLASSES.items():
                auto_map.setdefault(auto_class, reference)
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)


class MoleBlendModel(MoleBlendPreTrainedModel):
    """The MoleBlend encoder. `config.input_modality` decides what it sees: "2d" (shortest-path and bond-path
    biases, degree embedding), "3d" (distance-kernel bias, 3D atom feature) or "2d3d" (both, summed). Molecules
    with `has_3d` False get no 3D bias and no 3D atom feature in any mode.

    Under modality blending (pretraining) `blend_pair_modality` picks one relation per atom pair and
    `blend_atom_3d` picks, per atom, the 3D atom feature instead of the degree embedding.
    """

    def __init__(self, config: MoleBlendConfig):
        super().__init__(config)
        self.uses_2d = config.input_modality in ("2d", "2d3d")
        self.uses_3d = config.input_modality in ("3d", "2d3d")
        self.embeddings = MoleBlendEmbeddings(config)
        self.shortest_path_bias = MoleBlendShortestPathBias(config) if self.uses_2d else None
        self.bond_path_bias = MoleBlendBondPathBias(config) if self.uses_2d else None
        self.geometry = MoleBlendGeometryEncoder(config) if self.uses_3d else None
        self.attention_bias = MoleBlendAttentionBias(config)
        self.encoder = MoleBlendEncoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.atom_embedding

    def set_input_embeddings(self, value: nn.Embedding):
        self.embeddings.atom_embedding = value

    def _check_inputs(self, **inputs):
        missing = [name for name in MODALITY_INPUTS[self.config.input_modality] if inputs[name] is None]
        if missing:
            raise ValueError(
                f"MoleBlendModel with input_modality={self.config.input_modality!r} needs {missing}; pass the "
                "whole batch of MoleBlendFeaturizer(...)(molecules, return_tensors='pt')"
            )

    @can_return_tuple
    def forward(
        self,
        atom_ids: torch.LongTensor,
        degree: torch.LongTensor | None = None,
        atom_mask: torch.BoolTensor | None = None,
        spd: torch.Tensor | None = None,
        path_bonds: torch.Tensor | None = None,
        bond_features: torch.LongTensor | None = None,
        coordinates: torch.FloatTensor | None = None,
        has_3d: torch.BoolTensor | None = None,
        num_atoms: torch.LongTensor | None = None,
        blend_pair_modality: torch.LongTensor | None = None,
        blend_atom_3d: torch.BoolTensor | None = None,
        molecule_descriptors: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attention_bias: bool = False,
        graph_token_only: bool = False,
        return_dict: bool | None = None,
    ) -> MoleBlendModelOutput:
        r"""
        Args:
            atom_ids: `[batch, atoms, 9]` offset ids of the 9 atom features (0 = padding).
            degree: `[batch, atoms]` graph degree.
            atom_mask: `[batch, atoms]` True for real atoms (default: `atom_ids[..., 0] != 0`).
            spd: `[batch, atoms, atoms]` shortest-path bond counts, -1 = unreachable / padding.
            path_bonds: `[batch, atoms, atoms, hops]` 1-based rows of `bond_features` along a shortest path.
            bond_features: `[batch, bonds, 3]` offset ids of the bond features (row 0 = padding).
            coordinates: `[batch, atoms, 3]` angstrom.
            has_3d: `[batch]` whether a molecule's coordinates are real (default: any non-zero coordinate).
            num_atoms: `[batch]` accepted and ignored (`atom_mask` carries it), so that a collated batch can be
                passed whole with `**batch`.
            molecule_descriptors: `[batch, features]` accepted and ignored (a property head reads them), likewise.
            blend_pair_modality: `[batch or 1, atoms, atoms]` 0 = shortest path, 1 = bond path, 2 = 3D: the one
                relation each pair shows (modality blending; needs input_modality "2d3d").
            blend_atom_3d: `[batch or 1, atoms]` True where an atom gets the 3D atom feature instead of its degree
                embedding (modality blending).
            output_attention_bias: also return the `[batch, heads, tokens, tokens]` bias.
            graph_token_only: the last layer computes the graph token alone (all that a graph-token readout reads;
                the same values, less work): `last_hidden_state` is then `[batch, 1, hidden]`. Not with
                `output_attentions` or `output_hidden_states`.
        """
        self._check_inputs(
            atom_ids=atom_ids,
            degree=degree,
            spd=spd,
            path_bonds=path_bonds,
            bond_features=bond_features,
            coordinates=coordinates,
        )
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        blending = blend_pair_modality is not None or blend_atom_3d is not None
        if blending and not (self.uses_2d and self.uses_3d):
            raise ValueError("modality blending needs input_modality='2d3d'")
        if atom_mask is None:
            atom_mask = atom_ids[..., 0] != 0
        atom_mask = atom_mask.bool()

        pair_biases: list[torch.Tensor] = []  # [batch, heads, atoms, atoms] each, summed
        degree_feature = atom_3d_feature = None
        if self.uses_2d:
            batch, atoms = atom_mask.shape
            pairs = (atom_mask[:, :, None] & atom_mask[:, None, :]).flatten().nonzero().squeeze(1)  # real pairs
            spd_weight = edge_weight = None
            if blend_pair_modality is not None:  # each pair shows one relation
                shown = blend_pair_modality.expand(batch, atoms, atoms).flatten()[pairs]
                spd_weight, edge_weight = (shown == PAIR_SHOWS_SPD).float(), (shown == PAIR_SHOWS_EDGE).float()
            values = graph_pair_bias(
                self.shortest_path_bias, self.bond_path_bias, spd, path_bonds, bond_features, pairs, spd_weight,
                edge_weight,
            )  # fmt: skip
            padded = values.new_zeros(batch * atoms * atoms, values.shape[-1]).index_copy(0, pairs, values)
            pair_biases.append(padded.view(batch, atoms, atoms, -1).permute(0, 3, 1, 2))
            degree_feature = self.embeddings.embed_degree(degree)
        if self.uses_3d:
            if has_3d is None:
                has_3d = coordinates.flatten(1).abs().amax(dim=1) > 0
            if not self.uses_2d and not has_3d.all():
                logger.warning_once(
                    "input_modality='3d' but some molecules have no 3D coordinates (has_3d False): they get no "
                    "structural information at all. Use input_modality='2d3d', or give them conformers."
                )
            shows_3d = None if blend_pair_modality is None else blend_pair_modality == PAIR_SHOWS_3D
            geometry_bias, atom_3d_feature = self.geometry(  # zero outside shows_3d
                coordinates, atom_ids[..., 0].long(), atom_mask, has_3d.bool(), shows_3d
            )
            pair_biases.append(geometry_bias)
        pair_bias = pair_biases[0] if len(pair_biases) == 1 else pair_biases[0] + pair_biases[1]
        if blend_atom_3d is not None:
            structure_feature = torch.where(blend_atom_3d[..., None].bool(), atom_3d_feature, degree_feature)
        else:
            features = [f for f in (degree_feature, atom_3d_feature) if f is not None]
            structure_feature = sum(features) if features else None

        hidden_states = self.embeddings(atom_ids, structure_feature)
        token_mask = torch.cat([atom_mask.new_ones(atom_mask.shape[0], 1), atom_mask], dim=1)  # graph token first
        position_bias = self.attention_bias(pair_bias, token_mask, hidden_states.dtype)
        hidden_states, all_hidden_states, all_attentions = self.encoder(
            hidden_states, position_bias, token_mask, output_attentions, output_hidden_states, graph_token_only
        )
        return MoleBlendModelOutput(
            last_hidden_state=hidden_states,
            pooler_output=hidden_states[:, 0],
            hidden_states=all_hidden_states,
            attentions=all_attentions,
            attention_bias=position_bias if output_attention_bias else None,
        )


# ----------------------------------------------------------------------------------------------------------------
# Property prediction


class MoleBlendReadout(nn.Module):
    """The molecule vector the property head reads, by `config.readout`: the graph token's final state (the
    paper), the mean or the sum of the atoms' final states, or the graph token and the atom mean concatenated."""

    def __init__(self, config: MoleBlendConfig):
        super().__init__()
        self.kind = config.readout
        self.output_size = 2 * config.hidden_size if self.kind == "graph_token+mean" else config.hidden_size

    def forward(self, last_hidden_state: torch.Tensor, atom_mask: torch.Tensor) -> torch.Tensor:
        """`last_hidden_state` `[batch, 1 + atoms, hidden]` (token 0: the graph token; `[batch, 1, hidden]` is enough
        for the "graph_token" readout), `atom_mask` `[batch, atoms]`
        -> `[batch, output_size]`."""
        graph_token = last_hidden_state[:, 0]
        if self.kind == "graph_token":
            return graph_token
        mask = atom_mask.to(last_hidden_state.dtype).unsqueeze(-1)
        total = (last_hidden_state[:, 1:] * mask).sum(dim=1)
        if self.kind == "sum":
            return total
        mean = total / mask.sum(dim=1).clamp(min=1)
        return mean if self.kind == "mean" else torch.cat([graph_token, mean], dim=-1)


class MoleBlendPropertyHead(nn.Module):
    """Readout -> Dropout -> Linear(r, d) -> GELU -> Linear(d, num_labels)."""

    def __init__(self, config: MoleBlendConfig, input_size: int | None = None):
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.dense = nn.Linear(input_size or config.hidden_size, config.hidden_size)
        self.activation = ACT2FN[config.hidden_act]
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.activation(self.dense(self.dropout(pooled))))


class MoleBlendMoleculeFeatures(nn.Module):
    """Raw RDKit descriptors `[batch, features]` -> standardised `[batch, features]`: signed log1p (in float64: raw
    values such as Ipc pass float32's range), `(x - center) / scale` with the training rows' statistics, clipped to
    +-clip; a missing value (NaN) becomes 0, the training mean."""

    def __init__(self, config: MoleBlendConfig):
        super().__init__()
        # statistics live in the config, not in buffers: no weights to load, and a bf16 cast leaves them exact
        self.clip = float(config.molecule_feature_clip)
        self.center = list(config.molecule_feature_center)
        self.scale = list(config.molecule_feature_scale)

    def forward(self, raw: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        raw = raw.to(torch.float64)
        center = torch.tensor(self.center, dtype=torch.float64, device=raw.device)
        scale = torch.tensor(self.scale, dtype=torch.float64, device=raw.device)
        transformed = torch.sign(raw) * torch.log1p(raw.abs())
        standardised = ((transformed - center) / scale).clamp(-self.clip, self.clip)
        return torch.nan_to_num(standardised, nan=0.0).to(dtype)


class MoleBlendForPropertyPrediction(MoleBlendPreTrainedModel):
    """MoleBlend with a molecule-level head on the readout (`config.readout`: the graph token by default; registered
    for `AutoModelForSequenceClassification`).

    `config.problem_type`:
        "regression": MSE on targets standardised with `config.target_mean` / `target_std` (if set); the logits
            are returned in real units (`standardised * std + mean`).
        "multi_label_classification": binary cross-entropy with logits per task (one binary task: num_labels=1).
        "single_label_classification": cross-entropy; labels `[batch]` or `[batch, 1]` hold the class index.
    Missing labels (NaN) are left out of the loss, whatever the problem type. Regression uses
    `config.regression_loss` ("mse", "l1", "huber") on the standardised targets.
    """

    accepts_loss_kwargs = False  # the loss is a per-batch mean: let Trainer scale it for gradient accumulation

    def __init__(self, config: MoleBlendConfig):
        super().__init__(config)
        self.moleblend = MoleBlendModel(config)
        self.readout = MoleBlendReadout(config)
        extra = config.num_molecule_features
        self.molecule_features = MoleBlendMoleculeFeatures(config) if extra else None
        self.classifier = MoleBlendPropertyHead(config, self.readout.output_size + extra)
        self.post_init()

    def _target_statistics(self, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        labels = self.config.num_labels
        mean = self.config.target_mean if self.config.target_mean is not None else [0.0] * labels
        std = self.config.target_std if self.config.target_std is not None else [1.0] * labels
        as_tensor = lambda values: torch.tensor(values, dtype=reference.dtype, device=reference.device)  # noqa: E731
        return as_tensor(mean), as_tensor(std)

    def compute_loss(self, standardised_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The mean loss over non-NaN labels. `standardised_logits` `[batch, num_labels]` before de-standardising."""
        problem_type = self.config.problem_type
        labels = labels.to(standardised_logits.device, standardised_logits.dtype)
        if problem_type == "single_label_classification":
            target = labels.reshape(-1)
            valid = ~torch.isnan(target)
            safe = torch.nan_to_num(target, nan=0.0).long()
            per_item = F.cross_entropy(standardised_logits, safe, reduction="none")
            return (per_item * valid).sum() / valid.sum().clamp(min=1)
        labels = labels.reshape(standardised_logits.shape)
        valid = ~torch.isnan(labels)
        safe = torch.nan_to_num(labels, nan=0.0)  # NaN * 0 is NaN: zero the labels before the loss
        if problem_type == "regression":
            mean, std = self._target_statistics(standardised_logits)
            error = standardised_logits - (safe - mean) / std
            if self.config.regression_loss == "l1":
                per_item = error.abs()
            elif self.config.regression_loss == "huber":
                per_item = F.huber_loss(error, torch.zeros_like(error), reduction="none", delta=self.config.huber_delta)
            else:
                per_item = error**2
        elif problem_type == "multi_label_classification":
            per_item = F.binary_cross_entropy_with_logits(standardised_logits, safe, reduction="none")
        else:
            raise ValueError(
                "set config.problem_type to 'regression', 'multi_label_classification' or "
                f"'single_label_classification' to train with labels (got {problem_type!r})"
            )
        return (per_item * valid).sum() / valid.sum().clamp(min=1)

    @can_return_tuple
    def forward(
        self,
        atom_ids: torch.LongTensor,
        degree: torch.LongTensor | None = None,
        atom_mask: torch.BoolTensor | None = None,
        spd: torch.Tensor | None = None,
        path_bonds: torch.Tensor | None = None,
        bond_features: torch.LongTensor | None = None,
        coordinates: torch.FloatTensor | None = None,
        has_3d: torch.BoolTensor | None = None,
        num_atoms: torch.LongTensor | None = None,
        labels: torch.FloatTensor | None = None,
        molecule_descriptors: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MoleBlendPropertyPredictionOutput:
        r"""
        Args:
            (the featurizer's batch, as in `MoleBlendModel.forward`)
            labels: `[batch, num_labels]` float, NaN = missing.
            molecule_descriptors: `[batch, config.num_molecule_features]` raw RDKit descriptor values (NaN =
                missing), required when the config names molecule features (its featurizer adds them).
        """
        if self.molecule_features is not None and molecule_descriptors is None:
            raise ValueError(
                f"this model reads {self.config.num_molecule_features} RDKit descriptors beside the graph: featurize "
                "with its own featurizer (saved with it), which adds `molecule_descriptors`"
            )
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        outputs = self.moleblend(
            atom_ids=atom_ids,
            degree=degree,
            atom_mask=atom_mask,
            spd=spd,
            path_bonds=path_bonds,
            bond_features=bond_features,
            coordinates=coordinates,
            has_3d=has_3d,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            # a graph-token readout needs no last-layer atom states
            graph_token_only=self.readout.kind == "graph_token" and not (output_attentions or output_hidden_states),
            return_dict=True,
        )
        if atom_mask is None:
            atom_mask = atom_ids[..., 0] != 0
        pooled = self.readout(outputs.last_hidden_state, atom_mask.bool())
        if self.molecule_features is not None:
            pooled = torch.cat([pooled, self.molecule_features(molecule_descriptors, pooled.dtype)], dim=-1)
        standardised_logits = self.classifier(pooled)
        loss = self.compute_loss(standardised_logits, labels) if labels is not None else None
        logits = standardised_logits
        if self.config.problem_type == "regression":
            mean, std = self._target_statistics(standardised_logits)
            logits = standardised_logits * std + mean
        return MoleBlendPropertyPredictionOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


# ----------------------------------------------------------------------------------------------------------------
# Pretraining


def sample_blend_masks(
    config: MoleBlendConfig, atom_mask: torch.Tensor, has_3d: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draws modality blending: which relation every atom pair shows and which atoms get the 3D atom feature.

    Returns `pair_modality` `[batch, atoms, atoms]` (0 shortest path, 1 bond path, 2 3D) and `atom_3d`
    `[batch, atoms]` bool. "per_molecule" (default): one symmetric pair mask per molecule. "per_batch" (the
    reference): one asymmetric mask shared by the batch. Molecules without 3D draw only between the 2D relations.
    """
    batch, atoms = atom_mask.shape
    device = atom_mask.device
    rows = batch if config.blend_mask_mode == "per_molecule" else 1
    pair_draw = torch.rand(rows, atoms, atoms, device=device, generator=generator)
    if config.blend_mask_mode == "per_molecule":
        pair_draw = pair_draw.triu() + pair_draw.triu(1).transpose(1, 2)  # S_ij = S_ji
    pair_draw = pair_draw.expand(batch, atoms, atoms)

    probabilities = torch.tensor(
        [config.blend_spd_probability, config.blend_edge_probability, config.blend_3d_probability], device=device
    ).repeat(batch, 1)
    without_3d = ~has_3d.to(device).bool()
    probabilities[without_3d, 2] = 0.0
    two_d = probabilities[without_3d, :2]
    probabilities[without_3d, :2] = torch.where(
        two_d.sum(-1, keepdim=True) > 0, two_d / two_d.sum(-1, keepdim=True).clamp(min=1e-12), 0.5
    )
    thresholds = probabilities.cumsum(-1)[:, None, None, :2]  # [batch, 1, 1, 2]
    pair_modality = (pair_draw[..., None] >= thresholds).sum(-1)

    atom_draw = torch.rand(rows, atoms, device=device, generator=generator).expand(batch, atoms)
    atom_3d = (atom_draw < config.blend_atom_3d_probability) & ~without_3d[:, None] & atom_mask.bool()
    return pair_modality, atom_3d


def hidden_pair_masks(blend_pair_modality: torch.Tensor, pair_mask: torch.Tensor) -> dict[int, torch.Tensor]:
    """For each relation k (`PAIR_SHOWS_*`), the valid pairs that hid it: `[batch, atoms, atoms]` bool, True where
    neither (i, j) nor (j, i) showed relation k. Symmetric, so the asymmetric "per_batch" mask never scores a pair
    whose transpose showed the relation (the atom states of i and j saw it either way).

    `blend_pair_modality` `[batch or 1, atoms, atoms]`, `pair_mask` `[batch, atoms, atoms]`.
    """
    shown = blend_pair_modality.long().expand(pair_mask.shape)
    shown_transposed = shown.transpose(-1, -2)
    return {
        k: pair_mask & (shown != k) & (shown_transposed != k) for k in (PAIR_SHOWS_SPD, PAIR_SHOWS_EDGE, PAIR_SHOWS_3D)
    }


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask`; 0 (still attached to the graph) when nothing is valid."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)


class MoleBlendPairCrossEntropy(torch.autograd.Function):
    """The mean cross-entropy of a pair head's class logits, without materialising them.

    The logits of pair (i, j) at slot k (a hop of the bond path; 1 for the shortest-path head) are
    `rows_i^T W_(k, o) columns_j + bias_(k, o)` for the classes o. Materialised they are `[batch, atoms, atoms,
    slots, classes]` (the bond-path head: 5 x 71 = 355 values per pair, more memory than the rest of the step),
    and the log-softmax, its backward and the copies between them dominated a pretraining step. Here they are made
    a few molecules at a time, trimmed to those molecules' atoms, and reduced to the loss at once; the backward pass
    lets the gradient (softmax minus the one-hot target) flow straight into rows, columns, weight and bias. The
    bias rides in the products (a constant 1 appended to rows and columns, the bias in the weight's extra corner),
    so no product is copied to add it. Up to `saved_values` logits per call the chunks are kept, as
    log-probabilities, for the backward pass (`MoleBlendPairHead.cross_entropy` passes `SAVED_VALUES` when gradients
    are on, else 0); beyond it, and in a second backward pass through a retained graph, they are made again there.
    Equal to `cross_entropy(logits, target, ignore_index=IGNORE_INDEX)` averaged over the entries with a target (0
    when none), in float32.
    """

    CHUNK_VALUES = 1 << 22  # logits per chunk (16 MB in float32)
    # below this many logits in the padded batch (QM9-sized molecules) `MoleBlendPairHead.cross_entropy`
    # materialises them: the chunks' recomputation and per-chunk work cost more than the small tensor saves
    DENSE_VALUES = 1 << 22
    # kept chunks (float32 logits and partial products, int64 classes, float32 validity) cost about 4 x (1 + (width
    # + 1) / atoms + 3 / classes) bytes per logit: about 300 MB at this bound for drug-like sizes, per head
    SAVED_VALUES = 1 << 25

    @staticmethod
    def forward(ctx, rows, columns, weight, bias, target, saved_values: int):
        """`rows`, `columns` `[batch, atoms, width]`, `weight` `[slots * classes, width, width]`, `bias` `[slots *
        classes]`, `target` `[batch, atoms, atoms, slots]` class ids or `IGNORE_INDEX` -> the mean, a scalar."""
        count = (target != IGNORE_INDEX).sum()
        total = torch.zeros((), dtype=torch.float32, device=rows.device)
        groups = MoleBlendPairCrossEntropy._groups(target, weight.shape[0])
        kept = []  # per group: the chunk (its logits as log-probabilities), or None (made again when needed)
        # float32 throughout, as the backward pass (which autocast does not reach) uses the same logits
        with torch.autocast(device_type=rows.device.type, enabled=False):
            flat_weight = MoleBlendPairCrossEntropy._flat_weight(weight, bias)
            for molecules, atoms in groups:
                chunk = MoleBlendPairCrossEntropy._chunk(rows, columns, flat_weight, target, molecules, atoms)
                logits, classes, valid = chunk[:3]
                log_probabilities = logits.log_softmax(dim=-1)
                del logits
                picked = log_probabilities.gather(-1, classes[..., None]).squeeze(-1)
                total = total - (picked * valid).sum()
                saved_values -= log_probabilities.numel()
                kept.append((log_probabilities, *chunk[1:]) if saved_values >= 0 else None)
        ctx.save_for_backward(rows, columns, weight, bias, target)
        ctx.groups, ctx.kept = groups, kept
        ctx.count = count.clamp(min=1)
        return total / ctx.count

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        rows, columns, weight, bias, target = ctx.saved_tensors
        kept, ctx.kept = ctx.kept, [None] * len(ctx.groups)  # kept chunks are used up in place below
        scale = grad_output.float() / ctx.count
        grad_rows = torch.zeros_like(rows, dtype=torch.float32)
        grad_columns = torch.zeros_like(columns, dtype=torch.float32)
        slots_classes, width = weight.shape[0], weight.shape[1]
        flat_weight = MoleBlendPairCrossEntropy._flat_weight(weight, bias)
        grad_flat_weight = torch.zeros_like(flat_weight)  # [width + 1, slots * classes * (width + 1)]
        for (molecules, atoms), saved in zip(ctx.groups, kept):
            if saved is not None:
                log_probabilities, classes, valid, row, column, partial = saved
                grad = log_probabilities.exp_()  # the softmax, [b, j, i, slots, classes]
            else:
                logits, classes, valid, row, column, partial = MoleBlendPairCrossEntropy._chunk(
                    rows, columns, flat_weight, target, molecules, atoms
                )
                grad = logits.softmax(dim=-1)
                del logits
            grad.scatter_add_(-1, classes[..., None], -valid[..., None])
            grad.mul_((valid * scale)[..., None])
            b = grad.shape[0]
            grad = grad.view(b, atoms, -1)  # [b, j, i * slots * classes]
            grad_columns[molecules, :atoms] = torch.bmm(grad, partial)[..., :width]
            grad_partial = torch.bmm(grad.transpose(1, 2), column)  # [b, i * slots * classes, width + 1]
            grad_partial = grad_partial.view(b * atoms, -1)
            grad_rows[molecules, :atoms] = (grad_partial @ flat_weight.T)[:, :width].view(b, atoms, width)
            grad_flat_weight += row.view(b * atoms, width + 1).T @ grad_partial
        grad_flat_weight = grad_flat_weight.view(width + 1, slots_classes, width + 1)
        grad_weight = grad_flat_weight[:width, :, :width].permute(1, 0, 2)
        grad_bias = grad_flat_weight[width, :, width]
        return grad_rows.to(rows.dtype), grad_columns.to(columns.dtype), grad_weight.to(weight.dtype), grad_bias.to(
            bias.dtype), None, None  # fmt: skip

    @staticmethod
    def _flat_weight(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """`weight` `[outputs, width (a), width (c)]` and `bias` `[outputs]` -> `[width + 1 (a), outputs * (width + 1)
        (o c)]` in float32: W_(o, a, c) for a, c < width, the bias at (a, c) = (width, width), zeros elsewhere, so
        that rows and columns with a 1 appended give `rows^T W columns + bias` in the products alone."""
        outputs, width = weight.shape[0], weight.shape[1]
        flat = weight.new_zeros(width + 1, outputs, width + 1, dtype=torch.float32)
        flat[:width, :, :width] = weight.float().permute(1, 0, 2)
        flat[width, :, width] = bias.float()
        return flat.view(width + 1, outputs * (width + 1))

    @staticmethod
    def _groups(target: torch.Tensor, slots_classes: int) -> list[tuple[slice, int]]:
        """Molecules in groups of consecutive ones whose logits, at the group's largest size, fit `CHUNK_VALUES`;
        each group with its size: the last atom that takes part in a scored pair (groups with none are left out)."""
        batch, max_atoms = target.shape[:2]
        used = (target != IGNORE_INDEX).any(dim=-1)
        used = used.any(dim=2) | used.any(dim=1)
        positions = torch.arange(1, max_atoms + 1, device=target.device)
        atom_counts = (used * positions).amax(dim=1).tolist() if max_atoms else [0] * batch
        groups, start = [], 0
        while start < batch:
            atoms = atom_counts[start]
            stop = start + 1
            while stop < batch:  # as many molecules as fit the chunk, at the largest one's size
                grown = max(atoms, atom_counts[stop])
                if (stop + 1 - start) * grown * grown * slots_classes > MoleBlendPairCrossEntropy.CHUNK_VALUES:
                    break
                atoms, stop = grown, stop + 1
            if atoms > 0:
                groups.append((slice(start, stop), atoms))
            start = stop
        return groups

    @staticmethod
    def _chunk(rows, columns, flat_weight, target, molecules: slice, atoms: int):
        """One group's logits `[b, atoms (j), atoms (i), slots, classes]` (float32, classes contiguous), its targets
        `[b, j, i, slots]` (ignored -> 0) and their validity (float), and for the backward pass its rows and columns
        with a 1 appended (`[b, atoms, width + 1]`) and the partial products `[b, i * slots * classes, width + 1]`."""
        row, column = rows[molecules, :atoms].float(), columns[molecules, :atoms].float()
        b, width = row.shape[0], row.shape[-1]
        row = torch.cat([row, row.new_ones(b, atoms, 1)], dim=-1)
        column = torch.cat([column, column.new_ones(b, atoms, 1)], dim=-1)
        partial = (row.view(b * atoms, width + 1) @ flat_weight).view(b, -1, width + 1)
        slots = target.shape[-1]
        logits = torch.bmm(column, partial.transpose(1, 2)).view(b, atoms, atoms, slots, -1)
        classes = target[molecules, :atoms, :atoms].transpose(1, 2)  # [b, j, i, slots]
        valid = (classes != IGNORE_INDEX).float()
        return logits, classes.clamp(min=0), valid, row, column, partial


class MoleBlendPairHead(nn.Module):
    """A relation head on atom pairs: r_i = LN(GELU(W_r z_i)), c_j = LN(GELU(W_c z_j)) (width 32), then a linear
    layer on the outer product r_i (x) c_j (1024 values), computed without materialising it. `forward` returns the
    outputs of every pair; `cross_entropy` only the loss of class outputs (see `MoleBlendPairCrossEntropy`)."""

    def __init__(self, config: MoleBlendConfig, num_outputs: int):
        super().__init__()
        width = config.relation_head_dim
        self.row_projection = nn.Linear(config.hidden_size, width)
        self.column_projection = nn.Linear(config.hidden_size, width)
        self.activation = ACT2FN[config.hidden_act]
        self.row_layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.column_layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.output = nn.Linear(width * width, num_outputs)

    def _rows_and_columns(self, atom_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.row_layer_norm(self.activation(self.row_projection(atom_states)))
        columns = self.column_layer_norm(self.activation(self.column_projection(atom_states)))
        return rows, columns

    @staticmethod
    def _logits(rows: torch.Tensor, columns: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """`rows`, `columns` `[batch, atoms, width]`, `weight` `[outputs, width (row), width (column)]` ->
        `[batch, atoms, atoms, outputs]`, through the partial products (never the outer product)."""
        partial = torch.einsum("bia,oac->bioc", rows, weight)
        return torch.einsum("bioc,bjc->bijo", partial, columns) + bias

    def forward(self, atom_states: torch.Tensor) -> torch.Tensor:
        """`atom_states` `[batch, atoms, hidden]` -> `[batch, atoms, atoms, num_outputs]`."""
        rows, columns = self._rows_and_columns(atom_states)
        width = rows.shape[-1]
        return self._logits(rows, columns, self.output.weight.view(-1, width, width), self.output.bias)

    def cross_entropy(self, atom_states: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Mean cross-entropy of the outputs read as `[slots, num_classes]` per pair (the first `slots * num_classes`
        outputs) against `target` `[batch, atoms, atoms, slots]` (`IGNORE_INDEX` = not scored); 0 when nothing is
        scored. Equals `cross_entropy(forward(atom_states)...)`; above `MoleBlendPairCrossEntropy.DENSE_VALUES` logits
        in the batch without materialising them."""
        rows, columns = self._rows_and_columns(atom_states)
        width, used = rows.shape[-1], target.shape[-1] * num_classes
        weight = self.output.weight[:used].view(used, width, width)
        batch, atoms = rows.shape[:2]
        if batch * atoms * atoms * used <= MoleBlendPairCrossEntropy.DENSE_VALUES:  # small molecules: materialised
            logits = self._logits(rows, columns, weight, self.output.bias[:used])
            target = target.long().reshape(-1)
            per_entry = F.cross_entropy(logits.reshape(-1, num_classes).float(), target, ignore_index=IGNORE_INDEX,
                                        reduction="none")  # fmt: skip
            return masked_mean(per_entry, target != IGNORE_INDEX).to(atom_states.dtype)
        kept = MoleBlendPairCrossEntropy.SAVED_VALUES if torch.is_grad_enabled() else 0  # no_grad: keep nothing
        loss = MoleBlendPairCrossEntropy.apply(rows, columns, weight, self.output.bias[:used], target.long(), kept)
        return loss.to(atom_states.dtype)


class MoleBlendNoiseHead(nn.Module):
    """Equivariant coordinate-noise head: per head, attention weights alpha_ij (final atom states plus the blended
    bias) times the unit vector u_ij of the noisy geometry times a value projection, summed over j; the heads are
    concatenated and one Linear(hidden, 1), shared by the three axes (so the output rotates with the input)."""

    def __init__(self, config: MoleBlendConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.output = nn.Linear(config.hidden_size, 1)

    def forward(self, atom_states: torch.Tensor, pair_bias: torch.Tensor, coordinates: torch.Tensor) -> torch.Tensor:
        """`atom_states` `[batch, atoms, hidden]`, `pair_bias` `[batch, heads, atoms, atoms]` (padded keys at
        finfo.min), `coordinates` `[batch, atoms, 3]` noisy -> predicted noise `[batch, atoms, 3]`."""
        batch, atoms, _ = atom_states.shape
        shape = (batch, atoms, self.num_heads, self.head_dim)
        query = self.q_proj(atom_states).view(shape).transpose(1, 2)
        key = self.k_proj(atom_states).view(shape).transpose(1, 2)
        value = self.v_proj(atom_states).view(shape).transpose(1, 2)  # [batch, heads, atoms, head_dim]
        scores = torch.matmul(query, key.transpose(2, 3)) * self.scaling + pair_bias
        alpha = F.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
        delta = (coordinates[:, None, :, :] - coordinates[:, :, None, :]).to(value.dtype)  # p_j - p_i
        unit = delta / delta.norm(dim=-1, keepdim=True).clamp(min=1e-6)  # [batch, i, j, 3]; 0 on the diagonal
        weighted = alpha[..., None] * unit[:, None]  # [batch, heads, i, j, 3]
        per_axis = torch.einsum("bhija,bhjd->biahd", weighted, value).reshape(batch, atoms, 3, -1)
        return self.output(per_axis).squeeze(-1)


class MoleBlendDescriptorHead(nn.Module):
    """Graph token's final state `[batch, hidden]` -> Linear -> GELU -> Linear -> `[batch, num_descriptors]`: the
    standardised RDKit 2D descriptors (a molecule-level target; the paper's heads read atom states only)."""

    def __init__(self, config: MoleBlendConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACT2FN[config.hidden_act]
        self.out_proj = nn.Linear(config.hidden_size, config.num_descriptors)

    def forward(self, graph_token: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.activation(self.dense(graph_token)))


class MoleBlendPretrainingHeads(nn.Module):
    def __init__(self, config: MoleBlendConfig):
        super().__init__()
        self.spd = MoleBlendPairHead(config, config.num_spd_classes)
        self.edge = MoleBlendPairHead(config, config.max_hops * config.num_edge_classes)
        self.geometry = MoleBlendPairHead(config, 1 if config.target_3d == "distance" else 3)
        self.denoise = MoleBlendNoiseHead(config)
        self.descriptors = MoleBlendDescriptorHead(config) if config.num_descriptors > 0 else None


class MoleBlendForPretraining(MoleBlendPreTrainedModel):
    """MoleBlend with the blend-then-predict objective (registered for `AutoModelForPreTraining`).

    Each forward draws modality blending (`sample_blend_masks`) and coordinate noise, encodes the blended molecule
    and predicts, from the final atom states, every pair's shortest-path length, the bonds along its shortest path
    and its 3D relation (on the clean geometry), plus each 3D-featured atom's coordinate noise; with
    `config.num_descriptors > 0`, also the molecule's standardised RDKit descriptors from the graph token.
    """

    def __init__(self, config: MoleBlendConfig):
        super().__init__(config)
        if config.input_modality != "2d3d":
            raise ValueError(f"MoleBlendForPretraining needs input_modality='2d3d', got {config.input_modality!r}")
        self.moleblend = MoleBlendModel(config)
        self.pretrain_heads = MoleBlendPretrainingHeads(config)
        self.post_init()

    def _edge_classes(self, path_bonds: torch.Tensor, bond_features: torch.Tensor) -> torch.Tensor:
        """The joint bond class (type x stereo x conjugated, or the last "other" class) of each hop's bond,
        `[batch, atoms, atoms, hops]`, `IGNORE_INDEX` where the path has no bond at that hop."""
        sizes = self.config.bond_feature_sizes
        offsets = [1 + sum(sizes[:f]) for f in range(len(sizes))]
        bond_class = torch.zeros_like(bond_features[..., 0], dtype=torch.long)
        in_range = torch.ones_like(bond_class, dtype=torch.bool)
        for f, (size, offset) in enumerate(zip(sizes, offsets)):
            raw = bond_features[..., f].long() - offset
            in_range &= (raw >= 0) & (raw < size)
            bond_class = bond_class * size + raw.clamp(0, size - 1)
        bond_class = torch.where(in_range, bond_class, self.config.num_edge_classes - 1)  # [batch, bonds]
        batch, atoms, _, hops = path_bonds.shape
        rows = path_bonds.long().reshape(batch, -1)
        classes = bond_class.gather(1, rows).reshape(batch, atoms, atoms, hops)
        return torch.where(path_bonds > 0, classes, IGNORE_INDEX)

    @can_return_tuple
    def forward(
        self,
        atom_ids: torch.LongTensor,
        degree: torch.LongTensor,
        spd: torch.Tensor,
        path_bonds: torch.Tensor,
        bond_features: torch.LongTensor,
        coordinates: torch.FloatTensor,
        atom_mask: torch.BoolTensor | None = None,
        has_3d: torch.BoolTensor | None = None,
        num_atoms: torch.LongTensor | None = None,
        labels: torch.Tensor | None = None,
        blend_pair_modality: torch.LongTensor | None = None,
        blend_atom_3d: torch.BoolTensor | None = None,
        coordinate_noise: torch.FloatTensor | None = None,
        descriptors: torch.FloatTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MoleBlendForPretrainingOutput:
        r"""
        Args:
            (the featurizer's batch, as in `MoleBlendModel.forward`)
            num_atoms, labels: accepted and ignored (pretraining has no labels; `atom_mask` carries the atom
                count), so that a collated batch can be passed whole with `**batch`.
            blend_pair_modality, blend_atom_3d: fixed blending (default: drawn by `sample_blend_masks`).
            coordinate_noise: `[batch, atoms, 3]` fixed noise in angstrom (default: N(0, noise_std^2)).
            descriptors: `[batch, num_descriptors]` standardised descriptor targets (NaN = missing, not scored);
                used only when `config.num_descriptors > 0`.
        """
        config = self.config
        if atom_mask is None:
            atom_mask = atom_ids[..., 0] != 0
        atom_mask = atom_mask.bool()
        if has_3d is None:
            has_3d = coordinates.flatten(1).abs().amax(dim=1) > 0
        has_3d = has_3d.bool()
        atom_has_3d = atom_mask & has_3d[:, None]
        if blend_pair_modality is None or blend_atom_3d is None:
            sampled_pairs, sampled_atoms = sample_blend_masks(config, atom_mask, has_3d)
            blend_pair_modality = sampled_pairs if blend_pair_modality is None else blend_pair_modality
            blend_atom_3d = sampled_atoms if blend_atom_3d is None else blend_atom_3d
        blend_atom_3d = blend_atom_3d.bool() & atom_has_3d
        if coordinate_noise is None:
            coordinate_noise = torch.randn_like(coordinates) * config.noise_std
        coordinate_noise = coordinate_noise * atom_has_3d[..., None]
        noisy_coordinates = coordinates + coordinate_noise

        outputs = self.moleblend(
            atom_ids=atom_ids,
            degree=degree,
            atom_mask=atom_mask,
            spd=spd,
            path_bonds=path_bonds,
            bond_features=bond_features,
            coordinates=noisy_coordinates,  # the relation targets below use the clean geometry
            has_3d=has_3d,
            blend_pair_modality=blend_pair_modality,
            blend_atom_3d=blend_atom_3d,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            output_attention_bias=True,
            return_dict=True,
        )
        atom_states = outputs.last_hidden_state[:, 1:]
        pair_mask = atom_mask[:, :, None] & atom_mask[:, None, :]
        # the reference scores every valid pair; the ablation scores only pairs that hid the relation
        if config.score_hidden_pairs_only:
            scored = hidden_pair_masks(blend_pair_modality, pair_mask)
        else:
            scored = dict.fromkeys((PAIR_SHOWS_SPD, PAIR_SHOWS_EDGE, PAIR_SHOWS_3D), pair_mask)

        spd_loss = self._spd_loss(atom_states, spd, scored[PAIR_SHOWS_SPD])
        edge_loss = self._edge_loss(atom_states, path_bonds, bond_features, scored[PAIR_SHOWS_EDGE])
        distance_loss = self._geometry_loss(atom_states, coordinates, scored[PAIR_SHOWS_3D] & has_3d[:, None, None])
        predicted_noise = self.pretrain_heads.denoise(
            atom_states, outputs.attention_bias[:, :, 1:, 1:], noisy_coordinates
        )
        per_atom = 1 - F.cosine_similarity(predicted_noise, coordinate_noise.to(predicted_noise.dtype), dim=-1)
        denoise_loss = masked_mean(per_atom, blend_atom_3d & (coordinate_noise.norm(dim=-1) > 0))

        loss = (
            config.denoise_loss_weight * denoise_loss
            + config.spd_loss_weight * spd_loss
            + config.edge_loss_weight * edge_loss
            + config.distance_loss_weight * distance_loss
        )
        descriptor_loss = None
        if self.pretrain_heads.descriptors is not None and descriptors is not None:
            predicted = self.pretrain_heads.descriptors(outputs.last_hidden_state[:, 0])
            target = descriptors.to(predicted.dtype)
            known = torch.isfinite(target)
            descriptor_loss = masked_mean((predicted - target.nan_to_num()).square(), known)
            loss = loss + config.descriptor_loss_weight * descriptor_loss
        return MoleBlendForPretrainingOutput(
            loss=loss,
            spd_loss=spd_loss,
            edge_loss=edge_loss,
            distance_loss=distance_loss,
            denoise_loss=denoise_loss,
            descriptor_loss=descriptor_loss,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def _spd_loss(self, atom_states: torch.Tensor, spd: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
        """Classes 1..C-1 and "longer"; never the diagonal, padding or pairs in different fragments."""
        spd = spd.long()
        target = spd.clamp(max=self.config.num_spd_classes) - 1
        target = torch.where((spd > 0) & scored, target, IGNORE_INDEX)
        return self.pretrain_heads.spd.cross_entropy(atom_states, target[..., None], self.config.num_spd_classes)

    def _edge_loss(
        self, atom_states: torch.Tensor, path_bonds: torch.Tensor, bond_features: torch.Tensor, scored: torch.Tensor
    ) -> torch.Tensor:
        """The joint bond class of each hop k < min(spd, max_hops) along the shortest path."""
        hops = min(path_bonds.shape[-1], self.config.max_hops)
        target = self._edge_classes(path_bonds[..., :hops], bond_features).masked_fill(~scored[..., None], IGNORE_INDEX)
        return self.pretrain_heads.edge.cross_entropy(atom_states, target, self.config.num_edge_classes)

    def _geometry_loss(
        self, atom_states: torch.Tensor, coordinates: torch.Tensor, scored: torch.Tensor
    ) -> torch.Tensor:
        """On the clean geometry: smooth L1 on d_ij ("distance") or 1 - cos with p_j - p_i ("direction")."""
        prediction = self.pretrain_heads.geometry(atom_states)
        delta = (coordinates[:, None, :, :] - coordinates[:, :, None, :]).to(prediction.dtype)  # p_j - p_i
        if self.config.target_3d == "distance":
            per_pair = F.smooth_l1_loss(prediction.squeeze(-1), delta.norm(dim=-1), reduction="none")
        else:
            per_pair = 1 - F.cosine_similarity(prediction, delta, dim=-1)
        not_self = ~torch.eye(scored.shape[-1], dtype=torch.bool, device=scored.device)
        return masked_mean(per_pair, scored & not_self)


__all__ = [
    "MoleBlendForPretraining",
    "MoleBlendForPretrainingOutput",
    "MoleBlendForPropertyPrediction",
    "MoleBlendModel",
    "MoleBlendModelOutput",
    "MoleBlendPreTrainedModel",
    "MoleBlendPropertyPredictionOutput",
    "hidden_pair_masks",
    "sample_blend_masks",
]
