"""chemprop 2.3.1's seed models (run_baselines.py work dirs) scored as one ensemble: the mean of the 3 seeds'
predictions on validation and test, with MoleBlend's metric code (run with the project's venv)."""
import json, sys
from pathlib import Path
import numpy as np, pandas as pd
from modeling_moleblend.evaluation.metrics import classification_metrics, regression_metrics

out = {}
for name, csv, label, task in [("esol", "esol.csv", "logS", "regression"), ("freesolv", "freesolv.csv", "hydration_free_energy", "regression"),
                               ("bbbp", "bbbp.csv", "p_np", "classification"), ("lipophilicity", "lipophilicity.csv", "logD", "regression")]:
    work = Path(f"runs/s29/cp/work_{name}")
    if not work.is_dir():
        continue
    df = pd.read_csv(f"../shared/data/{csv}")
    preds = [pd.read_csv(p) for p in sorted(work.glob("**/chemprop_seed*/preds.csv"))]
    entry = {"members": len(preds)}
    for part, key in (("valid", "validation"), ("test", "test")):
        sel = [p[p["part"] == part].sort_values("row_index") for p in preds]
        rows = sel[0]["row_index"].to_numpy()
        assert all((s["row_index"].to_numpy() == rows).all() for s in sel)
        y = df.loc[rows, [label]].to_numpy(float)
        members = np.stack([s[[label]].to_numpy(float) for s in sel])
        fn = classification_metrics if task == "classification" else regression_metrics
        entry[key] = {"ensemble": fn(y, members.mean(0)), "per_seed": [fn(y, m) for m in members]}
    out[name] = entry
json.dump(out, open("runs/s29/cp/chemprop_ensembles.json", "w"), indent=1)
for name, e in out.items():
    for part in ("validation", "test"):
        k = "roc_auc" if "roc_auc" in e[part]["ensemble"] else "rmse"
        seeds = [s[k] for s in e[part]["per_seed"]]
        print(f"{name} {part} {k}: seeds {np.mean(seeds):.3f} +- {np.std(seeds, ddof=1):.3f}, ensemble {e[part]['ensemble'][k]:.3f}")
