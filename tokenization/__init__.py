"""MoleBlend featurization (installed as ``modeling_moleblend.tokenization``; import it from
``modeling_moleblend``). The modules are flat and import each other relatively, so that a Hub export can copy
them next to the model code."""

from .collating_moleblend import PAD_VALUES, MoleBlendCollator
from .errors_moleblend import (
    ConformerError,
    ConformerTimeoutError,
    EmptyMoleculeError,
    InvalidLabelError,
    InvalidMoleculeError,
    MoleculeError,
    MoleculeTooLargeError,
    UnsupportedAtomError,
)
from .feature_extraction_moleblend import (
    FeaturizationReport,
    FeaturizationResult,
    MoleBlendFeaturizer,
    SkippedInput,
)

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
