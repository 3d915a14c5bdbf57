"""Training loops as functions that return typed results: ``finetune`` (the transformers ``Trainer``, MoleculeNet
protocol, one model per seed) and ``pretrain`` (Accelerate, blend-then-predict, exact resume); the checkpoint
helpers they share live in ``checkpoints``."""

from .finetuning import FinetuneArguments, FinetuneResult, HubArguments, finetune
from .pretraining import PretrainArguments, PretrainResult, pretrain

__all__ = [
    "FinetuneArguments",
    "FinetuneResult",
    "HubArguments",
    "PretrainArguments",
    "PretrainResult",
    "finetune",
    "pretrain",
]
