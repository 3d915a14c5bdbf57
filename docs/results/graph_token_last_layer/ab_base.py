"""Interleaved A/B at the base preset, random init (same weights both), the first 256 ESOL molecules in file order,
batches of 32, training (forward + backward + AdamW) and inference; one thread."""
import sys, time, torch, statistics, pandas as pd
sys.path.insert(0, "runs/prof")
torch.set_num_threads(1); torch.manual_seed(0)
from modeling_moleblend import MoleBlendConfig, MoleBlendForPropertyPrediction, MOLEBLEND_PRESETS
from modeling_moleblend.tokenization.feature_extraction_moleblend import MoleBlendFeaturizer
from modeling_moleblend.tokenization.collating_moleblend import MoleBlendCollator
import oldpkg.modeling_moleblend as old_mod
preset = sys.argv[1] if len(sys.argv) > 1 else "base"
file = sys.argv[2] if len(sys.argv) > 2 else "/work/shared/data/esol.csv"
df = pd.read_csv(file); col = [c for c in df.columns if "smiles" in c.lower()][0]
smiles = df[col].tolist()[:256]
if "--bucketed" in sys.argv:
    pass
fe = MoleBlendFeaturizer(conformer="none")
feats = fe.featurize(smiles, errors="skip", progress=False).features
if "--bucketed" in sys.argv:
    feats = sorted(feats, key=lambda f: int(f["num_atoms"]))
for f in feats: f["labels"] = [1.0]
coll = MoleBlendCollator(pad_to_multiple_of=8)
batches = [coll(feats[i:i + 32]) for i in range(0, len(feats), 32)]
config = MoleBlendConfig(**MOLEBLEND_PRESETS[preset], input_modality="2d", num_labels=1, problem_type="regression") if isinstance(MOLEBLEND_PRESETS[preset], dict) else None
new = MoleBlendForPropertyPrediction(config)
old = old_mod.MoleBlendForPropertyPrediction(old_mod.MoleBlendConfig(**new.config.to_dict()))
print(old.load_state_dict(new.state_dict(), strict=False))
models = {"old": old, "new": new}
opts = {k: torch.optim.AdamW(m.parameters(), lr=0.0) for k, m in models.items()}
def run(name, train=True):
    m = models[name]; m.train(train); torch.manual_seed(0)
    t = time.perf_counter()
    for b in batches:
        if train:
            out = m(**b); out.loss.backward(); opts[name].step(); opts[name].zero_grad(set_to_none=True)
        else:
            with torch.no_grad(): m(**b)
    return len(feats) / (time.perf_counter() - t)
for name in models: run(name)
res = {k: [] for k in models}; inf = {k: [] for k in models}
for r in range(3):
    for name in models: res[name].append(run(name))
    for name in models: inf[name].append(run(name, train=False))
for name in models:
    print(preset, name, "train mol/s", round(statistics.median(res[name]), 2), "inference mol/s", round(statistics.median(inf[name]), 2))
print("train new/old", statistics.median(res["new"]) / statistics.median(res["old"]), "inference new/old", statistics.median(inf["new"]) / statistics.median(inf["old"]))
