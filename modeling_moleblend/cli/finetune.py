"""``moleblend finetune``: train property models under the MoleculeNet protocol (one per seed), with a baseline."""

from __future__ import annotations

import argparse

from ..training.finetuning import FinetuneArguments, finetune, summary_text
from .common import add_dataclass_arguments, dataclass_from_namespace

NAME = "finetune"
HELP = "finetune on property data (CSV or SDF): split, seeds, validation-selected models, baseline"
DESCRIPTION = """\
Finetune MoleBlend on molecular property data with the transformers Trainer.

The rows are split once (Bemis-Murcko scaffold 8:1:1 by default, deterministic) and written to
OUTPUT_DIR/splits.json; every seed trains a model and keeps the epoch with the best validation metric (RMSE, or
ROC-AUC for classification); test metrics are reported at that epoch, as mean +- std over seeds, beside a random
forest on Morgan fingerprints trained on the same split. The test split is never used for selection.

examples:
  moleblend finetune --train_file data.csv --label_columns logS --output_dir out/
  moleblend finetune --train_file actives.sdf.gz --label_columns pIC50 --model_name_or_path pretrained/ \\
      --seeds 0 1 2 --output_dir out/
  accelerate launch -m modeling_moleblend.cli finetune ...      # the same, on every device accelerate knows

outputs in OUTPUT_DIR: results.json, predictions_test.csv, learning_curve.png, parity.png or roc.png,
splits.json, featurization_report.json, seeds/seed_K/model (each seed) and model/ (the seed with the best
validation metric, with featurizer and model card; `moleblend predict --model_name_or_path OUTPUT_DIR` uses
every seed's model as an ensemble).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, FinetuneArguments)


def run(args: argparse.Namespace) -> int:
    result = finetune(dataclass_from_namespace(FinetuneArguments, args))
    if result.per_seed:  # the main process (under accelerate launch the others return early)
        print(summary_text(result))
    return 0
