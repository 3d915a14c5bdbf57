# Setup: git worktree add --detach /tmp/snap_old a35b665 (before); git worktree add --detach /tmp/snap28 18c421f (v1,
# logsumexp); the working tree = the new code. Run from the repository root: OMP_NUM_THREADS=1 python THIS_FILE.
# The corpus file is runs/s28/moses40k_s28.csv (40,000 MOSES training SMILES, numpy default_rng(8)).
import resource, sys, torch
sys.path.insert(0, sys.argv[1])
import modeling_moleblend.modeling_moleblend as mm
from modeling_moleblend import MoleBlendConfig, MoleBlendFeaturizer, MoleBlendForPretraining
print(mm.__file__)
torch.set_num_threads(1)
smiles = open('/work/main/runs/s28/moses40k_s28.csv').read().split('\n')[1:][::600][:64]
batch = dict(MoleBlendFeaturizer(conformer="generate")(smiles, return_tensors="pt"))
cfg = MoleBlendConfig.from_pretrained('/work/main/modeling_moleblend/pretrained/small')
torch.manual_seed(0)
model = MoleBlendForPretraining(cfg).train()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(3):
    model(**batch).loss.backward()
print("peak RSS MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "before the steps", base / 1024)
