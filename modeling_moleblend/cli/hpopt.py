"""``moleblend hpopt``: hyper-parameter search on validation (Optuna), then the best configuration retrained."""

from __future__ import annotations

import argparse

from ..training.finetuning import summary_text
from ..training.hpopt import DEFAULT_SEARCH_SPACE, HpoptArguments, hpopt
from .common import add_dataclass_arguments, dataclass_from_namespace

NAME = "hpopt"
HELP = "search hyper-parameters on validation (Optuna TPE, pruning, resumable), then retrain the best"
DESCRIPTION = f"""\
Hyper-parameter search on the validation split with Optuna: TPE sampling, median pruning on the per-epoch
validation metric, a budget in finished trials (--n_trials) and/or minutes (--timeout_minutes). The study is
stored in OUTPUT_DIR/study.sqlite3: a killed search resumes from it, and several processes given the same
OUTPUT_DIR share it. Then the best configuration is retrained with --seeds and evaluated once on test
(OUTPUT_DIR/best: the usual finetuning outputs, the chosen configuration in its card). The split is the
finetuning one (--split, --validation_file ...); the test split never enters the search.

The default search space (narrow it with --search_space, JSON inline or a file: a value fixes a parameter,
null leaves it out, a dict redefines its range):
  {", ".join(f"{k}: {v}" for k, v in DEFAULT_SEARCH_SPACE.items())}

examples:
  moleblend hpopt --train_file data.csv --label_columns logS --n_trials 30 --output_dir search/
  moleblend hpopt --train_file data.csv --label_columns y --timeout_minutes 60 \\
      --search_space '{{"hidden_size": 128, "num_hidden_layers": null}}' --output_dir search/
  moleblend hpopt ... --output_dir search/      # the same command again: resumes the study

outputs in OUTPUT_DIR: trials.csv, trials.json, optimization_history.png, best_params.json, best/.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, HpoptArguments)


def run(args: argparse.Namespace) -> int:
    result = hpopt(dataclass_from_namespace(HpoptArguments, args))
    print(f"best validation {result.metric}: {result.best_value:.4g} with {result.best_params}")
    print(summary_text(result.final))
    return 0
