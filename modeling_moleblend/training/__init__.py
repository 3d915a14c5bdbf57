"""Training loops as functions that return typed results: ``finetune`` (the transformers ``Trainer``, MoleculeNet
protocol, one model per seed) and ``pretrain`` (Accelerate, blend-then-predict, exact resume); the checkpoint
helpers they share live in ``checkpoints``; ``hpopt.hpopt`` (the Optuna search) and ``experiments.run_experiment``
(the paper's three experiments) build on ``finetune`` and ``pretrain``."""

from .experiments import ExperimentArguments, ExperimentResult, run_experiment
from .finetuning import FinetuneArguments, FinetuneResult, HubArguments, finetune
from .pretraining import PretrainArguments, PretrainResult, pretrain

__all__ = [
    "ExperimentArguments",
    "ExperimentResult",
    "FinetuneArguments",
    "FinetuneResult",
    "HubArguments",
    "PretrainArguments",
    "PretrainResult",
    "finetune",
    "pretrain",
    "run_experiment",
]
