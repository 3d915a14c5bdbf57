#!/usr/bin/env python
"""Does a recipe leave the early loss plateau? Training loss after N steps for recipe variants, one process.

    python scripts/probe_plateau.py --input lipophilicity.csv --label logD
    python scripts/probe_plateau.py --input lipophilicity.csv --label logD --arms default sum lr2e-3

The first --train + --validation molecules in file order (validation: the next ones), small preset, 2D, the
finetuning dropout (attention only), AdamW with 30 warm-up steps then a constant rate, batches of 32 drawn with
one seeded generator, gradient clipping at 1. Prints one JSON line per arm: the mean training loss (standardised
targets: 1.0 = predicting the mean) over steps 25-50, 75-100, 175-200, 275-300, and the validation RMSE at the end.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from modeling_moleblend import MoleBlendCollator, MoleBlendConfig, MoleBlendFeaturizer, MoleBlendForPropertyPrediction
from modeling_moleblend.data import read_molecule_table

ARMS = {
    "default": {},
    "head_init": {"head_default_init": True},  # PyTorch's default init for the two head layers
    "lr2e-3": {"lr": 2e-3},
    "mean": {"readout": "mean"},
    "sum": {"readout": "sum"},
    "graph_token": {"readout": "graph_token"},
    "init0.1": {"initializer_range": 0.1},
    "attn_drop0": {"attention_dropout": 0.0},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--train", type=int, default=1200)
    p.add_argument("--validation", type=int, default=200)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    table = read_molecule_table(a.input, label_columns=[a.label])
    count = a.train + a.validation
    smiles = table.smiles[:count]
    y = table.labels[:count, 0].astype(np.float32)
    features = MoleBlendFeaturizer(conformer="none").featurize(smiles).features
    train, validation = np.arange(a.train), np.arange(a.train, count)
    collator = MoleBlendCollator()

    def batch_of(rows) -> dict:
        batch = dict(collator([features[i] for i in rows]))
        batch.pop("labels", None)
        batch["labels"] = torch.tensor(y[rows])[:, None]
        return batch

    for arm in a.arms:
        settings = dict(ARMS[arm])
        lr = settings.pop("lr", 5e-4)
        head_default_init = settings.pop("head_default_init", False)
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        config = MoleBlendConfig.from_preset(
            "small", num_labels=1, problem_type="regression", input_modality="2d", activation_dropout=0.0,
            drop_path_rate=0.0, target_mean=[float(y[train].mean())], target_std=[float(y[train].std())],
            **{"readout": "graph_token+mean", **settings},
        )  # fmt: skip
        model = MoleBlendForPropertyPrediction(config).train()
        if head_default_init:
            for layer in (model.classifier.dense, model.classifier.out_proj):
                layer.reset_parameters()
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 30))
        losses, started = [], time.perf_counter()
        for _ in range(a.steps):
            loss = model(**batch_of(rng.choice(train, 32, replace=False))).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
        model.eval()
        with torch.no_grad():
            inputs = {k: v for k, v in batch_of(validation).items() if k != "labels"}
            predicted = model(**inputs).logits[:, 0].numpy()
        result = {"arm": arm, **{f"loss@{end}": float(np.mean(losses[end - 25 : end])) for end in (50, 100, 200, 300)
                                 if end <= a.steps},  # fmt: skip
                  "val_rmse": float(np.sqrt(np.mean((predicted - y[validation]) ** 2))),
                  "s": time.perf_counter() - started}  # fmt: skip
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
