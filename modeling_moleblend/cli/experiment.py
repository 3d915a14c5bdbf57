"""``moleblend experiment``: the paper's three experiments (ablation, blend ratio, modality) at a chosen budget."""

from __future__ import annotations

import argparse

from ..training.experiments import BUDGETS, EXPERIMENTS, PRETRAINING_ARMS, ExperimentArguments, run_experiment
from .common import add_dataclass_arguments, dataclass_from_namespace

NAME = "experiment"
HELP = "pretrain every arm of an experiment, finetune each on a task panel, tabulate (validation decides)"
DESCRIPTION = f"""\
One of the paper's experiments, or the objective options: every arm is pretrained on the same corpus with the
same updates, batch and seed (the arms differ only in the objective), then finetuned on every task with the same
recipe, split and seeds. The table gives validation and test (mean +- std) per task and arm; arms are compared on
validation only, by the mean over tasks of the relative improvement over no pretraining. Killed runs resume (the
same command again). The same command started in several processes runs several arms at a time (each arm under a
file lock; give each process one thread: OMP_NUM_THREADS=1).

arms:
{chr(10).join(f"  {name}: {', '.join(arms)}" for name, arms in PRETRAINING_ARMS.items())}
  (modality: each arm finetuned with 2d, 3d and 2d3d input; every arm scores the same test rows)

budgets: {
    ", ".join(
        f"{name} ({b.pretrain_steps} updates of {b.pretrain_batch_size}, seeds {list(b.seeds)}, "
        f"{b.finetune_epochs:g} epochs)"
        for name, b in BUDGETS.items()
    )
}

examples:
  moleblend experiment ablation --corpus corpus.sdf.gz --tasks esol=esol.csv:logS bbbp=bbbp.csv:p_np \\
      --budget cpu --output_dir experiments/ablation
  moleblend experiment blend-ratio --tasks lipo=lipophilicity.csv:logD --output_dir experiments/ratio
  moleblend experiment modality --tasks qm9_gap=qm9.sdf.gz:gap --output_dir experiments/modality
  moleblend experiment objective --corpus corpus.csv --tasks esol=esol.csv:logS --output_dir experiments/objective

outputs in OUTPUT_DIR: experiment.md, experiment.json, experiment.png, arms/ARM/pretrained/, arms/ARM/TASK/.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", choices=EXPERIMENTS, help="which experiment")
    add_dataclass_arguments(parser, ExperimentArguments, skip=("experiment",))


def run(args: argparse.Namespace) -> int:
    result = run_experiment(dataclass_from_namespace(ExperimentArguments, args))
    print((args.output_dir / "experiment.md").read_text())
    print(f"chosen on validation: {result.chosen}; written: {args.output_dir}/experiment.{{md,json,png}}")
    return 0
