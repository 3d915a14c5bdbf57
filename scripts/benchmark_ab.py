#!/usr/bin/env python
"""Interleaved A/B of two versions of the model file on the same weights and batches, in one process (run by hand).

    git worktree add --detach /tmp/old OLD_COMMIT
    python scripts/benchmark_ab.py --old_package /tmp/old --train_file bbbp.csv --threads 1
    python scripts/benchmark_ab.py --old_package /tmp/old --train_file bbbp.csv --input_modality 3d
    python scripts/benchmark_ab.py --old_package /tmp/old --train_file bbbp.csv --splits RUN/splits.json

On shared, noisy machines a ratio measured pass by pass in one process is the number to trust: both versions see
the same load. The old `modeling_moleblend.py` and `configuration_moleblend.py` are imported from the other
checkout under another package name; the new model loads the start checkpoint (default: `builtin:small`) with the
finetuning recipe's dropouts (attention only) and the old one gets its weights. Batches: the first
`--num_molecules` rows (of the training rows of a finetuning run's `splits.json` if `--splits` is given: a scaffold
split keeps the largest molecules out of train), in the finetuning Trainer's grouping (seeded megabatches of a
quarter of the rows, at most 50 batches, sorted by size). Prints
seconds per batch for training (forward + backward + AdamW) and inference, old and new, and checks that both give
the same outputs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from modeling_moleblend import MoleBlendFeaturizer, MoleBlendForPropertyPrediction
from modeling_moleblend.data.samplers import LengthBucketedSampler, padding_counts
from modeling_moleblend.data.tables import read_molecule_table
from modeling_moleblend.tokenization.collating_moleblend import MoleBlendCollator
from modeling_moleblend.training.finetuning import starting_model


def import_old_model(package: Path, folder: Path):
    """The other checkout's model file as a module of a package in `folder` (its relative imports resolve there)."""
    (folder / "moleblend_old").mkdir()
    (folder / "moleblend_old" / "__init__.py").write_text("")
    for name in ("modeling_moleblend.py", "configuration_moleblend.py"):
        (folder / "moleblend_old" / name).write_text((package / "modeling_moleblend" / name).read_text())
    sys.path.insert(0, str(folder))
    spec = importlib.util.find_spec("moleblend_old.modeling_moleblend")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def batches_of(smiles: list[str], featurizer, batch_size: int, seed: int) -> list:
    """The finetuning Trainer's batches: megabatches of 4 batches sorted by size (`LengthBucketedBatchSampler`)."""
    features = featurizer.featurize(smiles, errors="skip", progress=False).features
    for feature in features:
        feature["labels"] = [1.0]
    lengths = [int(feature["num_atoms"]) for feature in features]
    collator = MoleBlendCollator(pad_to_multiple_of=8)
    sampler = LengthBucketedSampler(lengths, batch_size, seed)  # the Trainer's sampler, its default megabatches
    return [collator([features[i] for i in batch]) for batch in sampler.batches.batches()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old_package", type=Path, required=True, help="a checkout of the other version")
    p.add_argument("--train_file", required=True, help="molecules to batch (CSV or SDF)")
    p.add_argument("--smiles_column", default="smiles")
    p.add_argument("--splits", type=Path, help="a finetuning run's splits.json: batch its training rows only")
    p.add_argument("--model_name_or_path", default="builtin:small")
    p.add_argument("--input_modality", default="2d", choices=["2d", "3d", "2d3d"])
    p.add_argument("--num_molecules", type=int, default=768)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--readout", default=None, help="the head's readout (default: the start checkpoint's)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    start = starting_model(a.model_name_or_path)
    table = read_molecule_table(a.train_file, smiles_column=a.smiles_column)
    smiles = list(table.smiles)
    if a.splits:
        smiles = [smiles[i] for i in json.loads(a.splits.read_text())["train"]]
    smiles = smiles[: a.num_molecules]
    featurizer = MoleBlendFeaturizer.from_pretrained(start)
    featurizer.conformer = "none" if a.input_modality == "2d" else "generate"
    batches = batches_of(smiles, featurizer, a.batch_size, a.seed)
    recipe = {"activation_dropout": 0.0, "hidden_dropout": 0.0, "drop_path_rate": 0.0}
    if a.readout:
        recipe["readout"] = a.readout  # `moleblend finetune` itself reads graph_token+mean by default
    new = MoleBlendForPropertyPrediction.from_pretrained(
        start, num_labels=1, problem_type="regression", input_modality=a.input_modality, **recipe
    )
    scratch = tempfile.TemporaryDirectory()
    old_module = import_old_model(a.old_package, Path(scratch.name))
    old = old_module.MoleBlendForPropertyPrediction(old_module.MoleBlendConfig(**new.config.to_dict()))
    old.load_state_dict(new.state_dict(), strict=False)
    models = {"old": old, "new": new}
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=0.0) for name, model in models.items()}
    with torch.no_grad():
        difference = (old.eval()(**batches[0]).logits - new.eval()(**batches[0]).logits).abs().max()

    def run(name: str, train: bool) -> float:
        model = models[name].train(train)
        torch.manual_seed(a.seed)
        started = time.perf_counter()
        for batch in batches:
            if train:
                model(**batch).loss.backward()
                optimizers[name].step()
                optimizers[name].zero_grad(set_to_none=True)
            else:
                with torch.no_grad():
                    model(**batch)
        return (time.perf_counter() - started) / len(batches)

    for name in models:  # warm-up
        run(name, True)
    times = {(name, train): [] for name in models for train in (True, False)}
    for _ in range(a.repeats):
        for train in (True, False):
            for name in models:
                times[name, train].append(run(name, train))
    counts = sum(padding_counts(batch) for batch in batches)
    real = float(counts[0] / counts[1])
    print(f"{len(batches)} batches of {a.batch_size} from {a.train_file} ({real:.0%} of padded atoms real), "
          f"{a.input_modality}, readout {new.config.readout}, {a.threads} thread(s); "
          f"max |old - new| logits {float(difference):.1e}")  # fmt: skip
    for train, label in ((True, "training"), (False, "inference")):
        medians = {name: statistics.median(times[name, train]) for name in models}
        print(f"  {label:<9} s per batch: old {medians['old']:.4f}, new {medians['new']:.4f}, "
              f"old / new {medians['old'] / medians['new']:.3f}")  # fmt: skip
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
