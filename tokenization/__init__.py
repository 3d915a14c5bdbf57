"""MoleBlend featurization (installed as ``modeling_moleblend.tokenization``; import it from
``modeling_moleblend``). The modules are flat and import each other relatively, so that a Hub export can copy
them next to the model code."""

from .batch_layout_moleblend import (
    BATCH_LAYOUT,
    FEATURE_COLUMNS,
    MODEL_INPUT_NAMES,
    PAD_VALUES,
    STORAGE_DTYPES,
    BatchKey,
    inputs_needed,
)
from .collating_moleblend import MoleBlendCollator
from .errors_moleblend import (
    ConformerError,
    ConformerTimeoutError,
    EmptyMoleculeError,
    InvalidLabelError,
    InvalidMoleculeError,
    MissingLabelTagError,
    MoleculeError,
    MoleculeTooLargeError,
    UnsupportedAtomError,
)
from .feature_extraction_moleblend import (
    CONFORMER_POLICIES,
    FeaturizationReport,
    FeaturizationResult,
    MoleBlendFeaturizer,
    SkippedInput,
)
from .labels_moleblend import check_label_tags, parse_label, suggest_name
from .sdf_moleblend import SdfRecord, read_sdf_records

__all__ = [
    "BATCH_LAYOUT",
    "CONFORMER_POLICIES",
    "FEATURE_COLUMNS",
    "MODEL_INPUT_NAMES",
    "PAD_VALUES",
    "STORAGE_DTYPES",
    "BatchKey",
    "ConformerError",
    "ConformerTimeoutError",
    "EmptyMoleculeError",
    "FeaturizationReport",
    "FeaturizationResult",
    "InvalidLabelError",
    "InvalidMoleculeError",
    "MissingLabelTagError",
    "MoleBlendCollator",
    "MoleBlendFeaturizer",
    "MoleculeError",
    "MoleculeTooLargeError",
    "SdfRecord",
    "SkippedInput",
    "UnsupportedAtomError",
    "check_label_tags",
    "inputs_needed",
    "parse_label",
    "read_sdf_records",
    "suggest_name",
]
