"""Training loops as functions that return typed results: ``finetune`` (the transformers ``Trainer``, MoleculeNet
protocol, one model per seed) and ``pretrain`` (Accelerate, blend-then-predict, exact resume); the checkpoint
helpers they share live in ``checkpoints``."""

from .finetune import FinetuneArguments, FinetuneResult, HubArguments, finetune
from .pretrain import PretrainArguments, PretrainResult, pretrain

__all__ = [
    "FinetuneArguments",
    "FinetuneResult",
    "HubArguments",
    "PretrainArguments",
    "PretrainResult",
    "finetune",
    "pretrain",
]
