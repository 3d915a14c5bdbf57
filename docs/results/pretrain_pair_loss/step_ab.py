# Setup: git worktree add --detach /tmp/snap_old a35b665 (before); git worktree add --detach /tmp/snap28 18c421f (v1,
# logsumexp); the working tree = the new code. Run from the repository root: OMP_NUM_THREADS=1 python THIS_FILE.
# The corpus file is runs/s28/moses40k_s28.csv (40,000 MOSES training SMILES, numpy default_rng(8)).
"""Old (snap_old) vs new MoleBlendPairHead.cross_entropy in a whole small-preset pretraining step (forward + backward),
64 MOSES molecules (every 600th of moses40k_s28, conformers generated), interleaved in one process, one thread."""
import time, statistics, torch
import modeling_moleblend.modeling_moleblend as mm
from modeling_moleblend import MoleBlendConfig, MoleBlendFeaturizer, MoleBlendForPretraining
old_text = open('/tmp/snap_old/modeling_moleblend/modeling_moleblend.py').read()
a = old_text.index("class MoleBlendPairCrossEntropy"); b = old_text.index("class MoleBlendNoiseHead")
namespace = dict(vars(mm)); exec(old_text[a:b], namespace); Old = namespace["MoleBlendPairHead"].cross_entropy
New = mm.MoleBlendPairHead.cross_entropy
torch.set_num_threads(1)
smiles = open('/work/main/runs/s28/moses40k_s28.csv').read().split('\n')[1:][::600][:64]
batch = dict(MoleBlendFeaturizer(conformer="generate")(smiles, return_tensors="pt"))
cfg = MoleBlendConfig.from_pretrained('/work/main/modeling_moleblend/pretrained/small')
torch.manual_seed(0)
model = MoleBlendForPretraining(cfg).train()
times = {"old": [], "new": []}
losses = {}
for rep in range(10):
    for name, fn in (("old", Old), ("new", New)):
        mm.MoleBlendPairHead.cross_entropy = fn
        model.zero_grad()
        torch.manual_seed(rep)
        t = time.perf_counter(); out = model(**batch); out.loss.backward(); times[name].append(time.perf_counter() - t)
        losses.setdefault(rep, []).append(out.loss.item())
for name, ts in times.items():
    print(f"{name}: min {1e3*min(ts[1:]):.0f} ms, median {1e3*statistics.median(ts[1:]):.0f} ms")
print("ratio old/new of medians", statistics.median(times["old"][1:]) / statistics.median(times["new"][1:]),
      "of mins", min(times["old"][1:]) / min(times["new"][1:]))
print("max loss difference, same seed", max(abs(x - y) for x, y in losses.values()))
