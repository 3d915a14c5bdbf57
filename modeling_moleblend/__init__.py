"""MoleBlend: multimodal (2D graph + 3D structure) molecular pretraining by modality blending, for transformers.

    from modeling_moleblend import MoleBlendFeaturizer, MoleBlendCollator

Importing this package registers the featurizer with ``AutoFeatureExtractor``.
"""

from transformers import AutoFeatureExtractor

from .tokenization import (
    PAD_VALUES,
    ConformerError,
    ConformerTimeoutError,
    EmptyMoleculeError,
    FeaturizationReport,
    FeaturizationResult,
    InvalidLabelError,
    InvalidMoleculeError,
    MoleBlendCollator,
    MoleBlendFeaturizer,
    MoleculeError,
    MoleculeTooLargeError,
    SkippedInput,
    UnsupportedAtomError,
)

__version__ = "0.1.0"

__all__ = [
    "PAD_VALUES",
    "ConformerError",
    "ConformerTimeoutError",
    "EmptyMoleculeError",
    "FeaturizationReport",
    "FeaturizationResult",
    "InvalidLabelError",
    "InvalidMoleculeError",
    "MoleBlendCollator",
    "MoleBlendFeaturizer",
    "MoleculeError",
    "MoleculeTooLargeError",
    "SkippedInput",
    "UnsupportedAtomError",
]
