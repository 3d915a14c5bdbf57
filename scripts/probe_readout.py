#!/usr/bin/env python
"""How much molecule-specific signal reaches the property head, and how fast a model can fit a small set.

    python scripts/probe_readout.py --input bbbp.csv --label_column p_np --num_molecules 64 --steps 120

For each arm (readout x learning rate x config), on the same molecules (those nearest --atoms heavy atoms; every
dropout 0, full batch, AdamW):
* at initialisation: the mean pairwise cosine similarity of the readout vectors (1.0 = the same for every
  molecule: the head cannot tell molecules apart);
* the training loss after 30, 60 and 120 steps (memorisation speed) and the training accuracy (classification)
  or RMSE (regression) at the end.
Prints a table and writes JSON (--output). A diagnostic, not a benchmark of generalisation.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from modeling_moleblend import MoleBlendCollator, MoleBlendConfig, MoleBlendFeaturizer, MoleBlendForPropertyPrediction
from modeling_moleblend.data import infer_problem_type, label_statistics, read_molecule_table


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, type=Path)
    p.add_argument("--label_column", required=True)
    p.add_argument("--num_molecules", type=int, default=64)
    p.add_argument("--atoms", type=int, default=34, help="take the molecules whose heavy-atom count is nearest")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--readouts", nargs="+", default=["graph_token", "mean", "graph_token+mean"])
    p.add_argument("--learning_rates", nargs="+", type=float, default=[1e-4, 1e-3])
    p.add_argument("--preset", default="small")
    p.add_argument("--config_overrides", nargs="*", default=[""], help='arms of config fields, "k=v,k=v" each')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, default=None)
    return p.parse_args(argv)


def mean_pairwise_cosine(vectors: torch.Tensor) -> float:
    normed = torch.nn.functional.normalize(vectors.double(), dim=-1)
    similarity = normed @ normed.T
    n = len(vectors)
    return float((similarity.sum() - n) / (n * (n - 1)))


def main(argv=None) -> int:
    from modeling_moleblend.training.common import parse_config_overrides

    args = parse_args(argv)
    table = read_molecule_table(args.input, label_columns=[args.label_column])
    featurizer = MoleBlendFeaturizer(conformer="none", errors="skip")
    result = featurizer.featurize(table.molecules(), labels=table.labels)
    distance = [abs(int(f["num_atoms"]) - args.atoms) for f in result.features]
    order = np.argsort(distance, kind="stable")[: args.num_molecules]
    features = [result.features[i] for i in order]
    batch = MoleBlendCollator()(features)
    labels = batch.pop("labels")
    problem_type = infer_problem_type(labels.numpy())
    mean, std = label_statistics(labels.numpy())
    rows = []
    for readout, lr, overrides in itertools.product(args.readouts, args.learning_rates, args.config_overrides):
        torch.manual_seed(args.seed)
        settings = dict(num_labels=1, problem_type=problem_type, input_modality="2d", readout=readout)
        settings |= dict(attention_dropout=0.0, activation_dropout=0.0, hidden_dropout=0.0, drop_path_rate=0.0)
        if problem_type == "regression":
            settings |= dict(target_mean=mean, target_std=std)
        settings |= parse_config_overrides(overrides)
        model = MoleBlendForPropertyPrediction(MoleBlendConfig.from_preset(args.preset, **settings))
        with torch.no_grad():
            hidden = model.moleblend(**batch).last_hidden_state
            pooled = model.readout(hidden, batch["atom_mask"].bool())
        start_cosine = mean_pairwise_cosine(pooled)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        losses, started = {}, time.perf_counter()
        for step in range(1, args.steps + 1):
            output = model(**batch, labels=labels)
            optimizer.zero_grad()
            output.loss.backward()
            optimizer.step()
            if step in (30, 60, args.steps):
                losses[step] = float(output.loss)
        with torch.no_grad():
            logits = model.eval()(**batch).logits
            hidden = model.moleblend(**batch).last_hidden_state
            end_cosine = mean_pairwise_cosine(model.readout(hidden, batch["atom_mask"].bool()))
        if problem_type == "regression":
            fit = float(torch.sqrt(((logits - labels) ** 2).mean()))
        else:
            fit = float(((logits > 0).float() == labels).float().mean())
        rows.append({
            "readout": readout, "learning_rate": lr, "overrides": overrides, "cosine_at_init": start_cosine,
            "cosine_after": end_cosine, "loss": losses, "fit": fit, "seconds": time.perf_counter() - started,
        })  # fmt: skip
        print(
            f"{readout:<17} lr {lr:<7g} {overrides or '-':<28} cos@init {start_cosine:.4f} -> {end_cosine:.4f}  "
            + "  ".join(f"loss@{k} {v:.3f}" for k, v in losses.items())
            + f"  {'rmse' if problem_type == 'regression' else 'acc'} {fit:.3f}",
            flush=True,
        )
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps({"input": str(args.input), "molecules": len(features), "arms": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
