"""Batched inference with MoleBlend property models, in input order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .tokenization import MoleBlendCollator


@torch.no_grad()
def predict_properties(
    models: Sequence[torch.nn.Module],
    features: Sequence[dict],
    batch_size: int = 64,
    probabilities: bool = True,
) -> np.ndarray:
    """Predictions ``[models, molecules, tasks]`` in the order of ``features`` (featurizer dicts or rows of a
    featurized ``datasets`` table). Regression outputs are in real units; classification outputs are
    probabilities (``probabilities=True``) or logits. Molecules are batched by size (little padding) and the
    results put back in input order; the Trainer's length-grouped evaluation sampler does not keep that order.
    """
    sizes = [int(np.asarray(f["num_atoms"])) for f in features]
    order = np.argsort(sizes, kind="stable")
    collator = MoleBlendCollator(pad_to_multiple_of=8)
    outputs = np.zeros((len(models), len(features), models[0].config.num_labels), dtype=np.float64)
    for model in models:
        model.eval()
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = collator([features[i] for i in index])
        batch.pop("labels", None)
        for m, model in enumerate(models):
            logits = model(**batch.to(model.device)).logits.float()
            if probabilities and model.config.problem_type == "multi_label_classification":
                logits = torch.sigmoid(logits)
            elif probabilities and model.config.problem_type == "single_label_classification":
                logits = torch.softmax(logits, dim=-1)
            outputs[m, index] = logits.cpu().numpy()
    return outputs
