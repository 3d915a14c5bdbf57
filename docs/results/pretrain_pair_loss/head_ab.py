# Setup: git worktree add --detach /tmp/snap_old a35b665 (before); git worktree add --detach /tmp/snap28 18c421f (v1,
# logsumexp); the working tree = the new code. Run from the repository root: OMP_NUM_THREADS=1 python THIS_FILE.
# The corpus file is runs/s28/moses40k_s28.csv (40,000 MOSES training SMILES, numpy default_rng(8)).
"""Old (snap_old), v1 (snap28) and new MoleBlendPairHead.cross_entropy, interleaved in one process, the bond-path head on a MOSES-sized
batch (64 molecules, 26 atoms padded), one thread: min and median of forward + backward over alternating runs."""
import sys, time, statistics, torch
import modeling_moleblend.modeling_moleblend as mm
from modeling_moleblend import MoleBlendConfig
old_text = open('/tmp/snap_old/modeling_moleblend/modeling_moleblend.py').read()
a = old_text.index("class MoleBlendPairCrossEntropy"); b = old_text.index("class MoleBlendNoiseHead")
namespace = dict(vars(mm)); exec(old_text[a:b], namespace); Old = namespace["MoleBlendPairHead"].cross_entropy
v1_text = open('/tmp/snap28/modeling_moleblend/modeling_moleblend.py').read()
a = v1_text.index("class MoleBlendPairCrossEntropy"); b = v1_text.index("class MoleBlendNoiseHead")
namespace = dict(vars(mm)); exec(v1_text[a:b], namespace); V1 = namespace["MoleBlendPairHead"].cross_entropy
New = mm.MoleBlendPairHead.cross_entropy
torch.manual_seed(0); torch.set_num_threads(1)
cfg = MoleBlendConfig.from_pretrained('/work/main/modeling_moleblend/pretrained/small')
head = mm.MoleBlendPairHead(cfg, cfg.max_hops * cfg.num_edge_classes)
bsz, n, slots = 64, int(sys.argv[1]) if len(sys.argv) > 1 else 26, cfg.max_hops
states = torch.randn(bsz, n, cfg.hidden_size, requires_grad=True)
lengths = torch.randint(int(n * 0.7), n + 1, (bsz,)); lengths[0] = n
target = torch.randint(0, cfg.num_edge_classes, (bsz, n, n, slots))
spd = torch.randint(1, 10, (bsz, n, n))
valid = (torch.arange(slots)[None, None, None] < spd[..., None])
real = (torch.arange(n)[None] < lengths[:, None])
valid &= (real[:, :, None] & real[:, None, :])[..., None]
target = torch.where(valid, target, mm.IGNORE_INDEX)
times = {"old": [], "v1": [], "new": []}
results = {}
for rep in range(16):
    for name, fn in (("old", Old), ("v1", V1), ("new", New)):
        mm.MoleBlendPairHead.cross_entropy = fn
        head.zero_grad(); states.grad = None
        t = time.perf_counter()
        loss = head.cross_entropy(states, target, cfg.num_edge_classes); loss.backward()
        times[name].append(time.perf_counter() - t)
        results[name] = (loss.item(), states.grad.clone(), head.output.weight.grad.clone())
for name, ts in times.items():
    print(f"n={n} {name}: min {1e3*min(ts[2:]):.0f} ms, median {1e3*statistics.median(ts[2:]):.0f} ms")
print("ratio old/v1, old/new of medians", statistics.median(times["old"][2:]) / statistics.median(times["v1"][2:]), statistics.median(times["old"][2:]) / statistics.median(times["new"][2:]))
print("loss diff", abs(results["old"][0] - results["new"][0]), "grad diffs",
      (results["old"][1] - results["new"][1]).abs().max().item(), (results["old"][2] - results["new"][2]).abs().max().item())
