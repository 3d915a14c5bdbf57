"""The seed models as one ensemble, MoleBlend (from `builtin:small`, the default recipe) against chemprop 2.3.1's
defaults, on the same scaffold splits: per-seed mean +- std and the ensemble of the 3 seeds (mean prediction),
validation and test; the forest (already an ensemble of trees) beside them. Run from the repository root:

    python docs/results/ensembles/ensemble_table.py PANEL_DIR CHEMPROP_ENSEMBLES_JSON

A classification run's `ensemble_rescored.json` (from `rescore_classification.py`: the mean of the seeds' logits, as
results.json now scores it) replaces its results.json `ensemble` (the mean of probabilities, before that change).
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

SETS = {"esol": "rmse", "freesolv": "rmse", "bbbp": "roc_auc", "lipophilicity": "rmse"}
panel, chemprop = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
here = Path(__file__).parent
table, lines = {}, []
lines.append("| set (metric) | MoleBlend seeds | MoleBlend ensemble of 3 | chemprop seeds | chemprop ensemble of 3 | forest |")
lines.append("|---|---|---|---|---|---|")
for name, metric in SETS.items():
    run = next(panel.glob(f"**/{name}_2d/results.json")).parent
    result = json.loads((run / "results.json").read_text())
    if (run / "ensemble_rescored.json").is_file():  # classification run before the mean-of-logits scoring
        result["ensemble"] = json.loads((run / "ensemble_rescored.json").read_text())
    forest = json.loads(Path(f"docs/results/baselines_same_splits/{name}.json").read_text())["baselines"]["rf"]
    row = {"metric": metric}
    for part, cp_part in (("validation", "validation"), ("test", "test")):
        ours = [s[part][metric] for s in result["per_seed"]]
        theirs = [s[metric] for s in chemprop[name][cp_part]["per_seed"]]
        trees = [s["valid" if part == "validation" else "test"][metric] for s in forest["per_seed"]]
        row[part] = {
            "moleblend_seeds": [float(np.mean(ours)), float(np.std(ours, ddof=1))],
            "moleblend_ensemble": result["ensemble"][part][metric],
            "chemprop_seeds": [float(np.mean(theirs)), float(np.std(theirs, ddof=1))],
            "chemprop_ensemble": chemprop[name][cp_part]["ensemble"][metric],
            "forest": float(np.mean(trees)),
        }
    table[name] = row

    def cell(part, key):
        value = row[part][key]
        return f"{value[0]:.3f} +- {value[1]:.3f}" if isinstance(value, list) else f"{value:.3f}"

    keys = ("moleblend_seeds", "moleblend_ensemble", "chemprop_seeds", "chemprop_ensemble", "forest")
    lines.append(f"| {name} ({metric}) | " + " | ".join(f"{cell('validation', k)} / {cell('test', k)}" for k in keys) + " |")
(here / "ensembles.json").write_text(json.dumps(table, indent=1))
(here / "ensembles.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))

figure, axes = plt.subplots(1, 4, figsize=(14, 3.8))
for axis, (name, row) in zip(axes, table.items()):
    test = row["test"]
    labels = ["MoleBlend\nseed mean", "MoleBlend\nensemble", "chemprop\nseed mean", "chemprop\nensemble", "forest"]
    values = [test["moleblend_seeds"][0], test["moleblend_ensemble"], test["chemprop_seeds"][0],
              test["chemprop_ensemble"], test["forest"]]
    errors = [test["moleblend_seeds"][1], np.nan, test["chemprop_seeds"][1], np.nan, np.nan]  # +- std over seeds
    colors = ["#4c72b0", "#1f3d7a", "#dd8452", "#a0522d", "#55a868"]
    axis.bar(range(5), values, yerr=errors, color=colors, capsize=3)
    axis.set_xticks(range(5), labels, fontsize=7, rotation=35, ha="right")
    axis.set_title(f"{name}: test {row['metric']} ({'higher' if row['metric'] == 'roc_auc' else 'lower'} is better)", fontsize=8)
    low = min(values) * 0.9 if row["metric"] == "rmse" else min(values) - 0.05
    axis.set_ylim(bottom=max(0, low))
figure.tight_layout()
figure.savefig(here / "ensembles.png", dpi=120)
