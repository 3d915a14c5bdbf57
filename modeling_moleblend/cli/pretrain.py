"""``moleblend pretrain``: blend-then-predict pretraining with Accelerate, resumable."""

from __future__ import annotations

import argparse

from ..training.pretraining import PretrainArguments, pretrain
from .common import add_dataclass_arguments, dataclass_from_namespace

NAME = "pretrain"
HELP = "pretrain an encoder with modality blending (SDF with 3D, or SMILES with generated conformers)"
DESCRIPTION = """\
Pretrain MoleBlend with the blend-then-predict objective of MoleBLEND (ICLR 2024), with Accelerate.

Data: an SDF (its 3D coordinates are used: QM9, PCQM4Mv2) or SMILES (a table column or a .smi file: conformers
are generated once, in parallel, and cached). The corpus is featurized once into a disk cache that later runs
stream from. A seeded --validation_split_percentage of the molecules is held out; validation reports every loss
component (SPD, edge, 3D distance, denoising). --resume_from_checkpoint latest continues exactly: the same data
order, schedule and random state.

examples:
  moleblend pretrain --train_file corpus.sdf.gz --config_name small --max_train_steps 1000 \\
      --checkpointing_steps 200 --output_dir pre/
  moleblend pretrain ... --resume_from_checkpoint latest
  accelerate launch --num_processes 8 --mixed_precision bf16 -m modeling_moleblend.cli pretrain ...

outputs in OUTPUT_DIR: the model (MoleBlendForPretraining, featurizer, model card; `moleblend finetune
--model_name_or_path OUTPUT_DIR` takes it), pretraining_log.jsonl, pretraining_curves.png, all_results.json,
featurization_report.json, step_N/ or epoch_E/ checkpoints.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, PretrainArguments)


def run(args: argparse.Namespace) -> int:
    pretrain(dataclass_from_namespace(PretrainArguments, args))
    return 0
