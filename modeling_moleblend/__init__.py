"""MoleBlend: multimodal (2D graph + 3D structure) molecular pretraining by modality blending, for transformers.

    from modeling_moleblend import MoleBlendConfig, MoleBlendForPropertyPrediction, MoleBlendFeaturizer

Importing this package registers the MoleBlend classes with the transformers Auto classes:
``AutoConfig`` ("moleblend"), ``AutoModel`` (``MoleBlendModel``), ``AutoModelForSequenceClassification``
(``MoleBlendForPropertyPrediction``), ``AutoModelForPreTraining`` (``MoleBlendForPretraining``, the pretraining
heads) and ``AutoFeatureExtractor`` (``MoleBlendFeaturizer``). It also marks them for Hub export:
``model.save_pretrained(folder)`` and ``featurizer.save_pretrained(folder)`` write the code files flat next to
the weights, with an ``auto_map``, so ``AutoModel.from_pretrained(folder, trust_remote_code=True)`` works
without this package.
"""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

from .configuration_moleblend import MOLEBLEND_PRESETS, MoleBlendConfig
from .modeling_moleblend import (
    MoleBlendForPretraining,
    MoleBlendForPretrainingOutput,
    MoleBlendForPropertyPrediction,
    MoleBlendModel,
    MoleBlendModelOutput,
    MoleBlendPreTrainedModel,
    MoleBlendPropertyPredictionOutput,
)
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

# Installed-package path: the Auto classes resolve model_type "moleblend" to these classes.
AutoConfig.register(MoleBlendConfig.model_type, MoleBlendConfig, exist_ok=True)
AutoModel.register(MoleBlendConfig, MoleBlendModel, exist_ok=True)
AutoModelForSequenceClassification.register(MoleBlendConfig, MoleBlendForPropertyPrediction, exist_ok=True)
AutoModelForPreTraining.register(MoleBlendConfig, MoleBlendForPretraining, exist_ok=True)
AutoFeatureExtractor.register(MoleBlendConfig, MoleBlendFeaturizer, exist_ok=True)

# Hub (trust_remote_code) path: save_pretrained copies the defining files and writes auto_map entries.
MoleBlendConfig.register_for_auto_class("AutoConfig")
MoleBlendModel.register_for_auto_class("AutoModel")
MoleBlendForPropertyPrediction.register_for_auto_class("AutoModelForSequenceClassification")
MoleBlendForPretraining.register_for_auto_class("AutoModelForPreTraining")
MoleBlendFeaturizer.register_for_auto_class("AutoFeatureExtractor")

from . import pipeline_moleblend  # noqa: E402,F401  (registers the "molecular-property-prediction" pipeline)
from .pretrained import available_checkpoints, pretrained_checkpoint  # noqa: E402

__all__ = [
    "MOLEBLEND_PRESETS",
    "MoleBlendConfig",
    "MoleBlendForPretraining",
    "MoleBlendForPretrainingOutput",
    "MoleBlendForPropertyPrediction",
    "MoleBlendModel",
    "MoleBlendModelOutput",
    "MoleBlendPreTrainedModel",
    "MoleBlendPropertyPredictionOutput",
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
    "available_checkpoints",
    "pretrained_checkpoint",
]
