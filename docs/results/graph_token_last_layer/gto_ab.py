"""Interleaved: the property model's forward with the graph-token-only last layer vs the full last layer, same
weights and batches, one thread. argv: preset, csv, [--bucketed], [--train]"""
import statistics, sys, time
import pandas as pd, torch
from modeling_moleblend import MoleBlendConfig, MoleBlendForPropertyPrediction, MOLEBLEND_PRESETS
from modeling_moleblend.tokenization.feature_extraction_moleblend import MoleBlendFeaturizer
from modeling_moleblend.tokenization.collating_moleblend import MoleBlendCollator
torch.set_num_threads(1); torch.manual_seed(0)
preset, file = sys.argv[1], sys.argv[2]
df = pd.read_csv(file); col = [c for c in df.columns if "smiles" in c.lower()][0]
feats = MoleBlendFeaturizer(conformer="none").featurize(df[col].tolist()[:256], errors="skip", progress=False).features
if "--bucketed" in sys.argv:
    feats = sorted(feats, key=lambda f: int(f["num_atoms"]))
for f in feats: f["labels"] = [1.0]
batches = [MoleBlendCollator()(feats[i:i + 32]) for i in range(0, len(feats), 32)]
model = MoleBlendForPropertyPrediction(MoleBlendConfig(**MOLEBLEND_PRESETS[preset], num_labels=1, problem_type="regression"))
train = "--train" in sys.argv
model.train(train)
opt = torch.optim.AdamW(model.parameters(), lr=0.0)
def run(only):
    torch.manual_seed(0); t = time.perf_counter()
    for b in batches:
        b = dict(b); labels = b.pop("labels")
        with torch.set_grad_enabled(train), torch.inference_mode(not train):
            out = model.moleblend(**b, graph_token_only=only)
            logits = model.classifier(model.readout(out.last_hidden_state, b["atom_mask"].bool()))
            if train:
                ((logits - labels) ** 2).mean().backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return len(feats) / (time.perf_counter() - t)
run(True); run(False)
res = {True: [], False: []}
for _ in range(5):
    for only in (True, False): res[only].append(run(only))
m = {k: statistics.median(v) for k, v in res.items()}
print(preset, file.split("/")[-1], "bucketed" if "--bucketed" in sys.argv else "file order", "train" if train else "inference",
      f"mol/s graph-token-only {m[True]:.1f}, full {m[False]:.1f}, ratio {m[True] / m[False]:.3f}")
