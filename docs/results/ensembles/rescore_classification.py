"""Rescore a finished classification run's seed ensemble as results.json now does: the mean of the seed models'
logits (saved per seed as *_outputs.npy) on validation and test; the run predates the change from the mean of
their probabilities."""
import json, sys
from pathlib import Path
import numpy as np
from modeling_moleblend.data.tables import read_molecule_table
from modeling_moleblend.evaluation.metrics import classification_metrics

run, data, label = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
splits = json.loads((run / "splits.json").read_text())
table = read_molecule_table(data, label_columns=[label])
seeds = sorted((run / "seeds").iterdir())
out = {"members": len(seeds), "prediction": "mean of the seed models' logits"}
for part in ("validation", "test"):
    logits = np.stack([np.load(s / f"{part}_outputs.npy") for s in seeds])
    labels = table.labels[splits[part]]
    out[part] = classification_metrics(labels, logits.mean(axis=0), [label])
    out[part + "_mean_of_probabilities"] = classification_metrics(labels, (1 / (1 + np.exp(-logits))).mean(axis=0), [label])
print(run, {k: (round(v["roc_auc"], 4) if isinstance(v, dict) else v) for k, v in out.items()})
results = json.loads((run / "results.json").read_text())
print("  results.json ensemble (mean of probabilities):", round(results["ensemble"]["validation"]["roc_auc"], 4), round(results["ensemble"]["test"]["roc_auc"], 4))
json.dump(out, open(run / "ensemble_rescored.json", "w"), indent=1)
