"""The "molecular-property-prediction" pipeline for MoleBlend property models.

    import modeling_moleblend.pipeline_moleblend  # registers the task (importing modeling_moleblend does too)
    from transformers import pipeline

    predict = pipeline("molecular-property-prediction", model="out/model")      # a folder or Hub id (a str)
    predict("CCO")                     # {"index": 0, "logS": -0.77}
    predict(["CCO", "C1CC("])  # [{"index": 0, "logS": -0.77}, {"index": 1, "error": "InvalidMoleculeError: ..."}]
    predict(Path("set.sdf"))           # one dict per SDF record; an RDKit Mol (its conformer is used) works too

Values are in the task's real units for regression, probabilities for classification (per task for
multi-label, per class for single-label). A molecule that cannot be featurized gets an ``error`` entry (its
type and reason) instead of values; the others are unaffected. Call options: ``batch_size`` (molecules per
forward pass, default 64), ``conformer`` and ``num_workers`` (override the saved featurizer's conformer policy
and conformer worker processes), ``return_logits`` (raw model outputs instead of probabilities).

Unlike the generic pipelines, a list (or an SDF file) is featurized in one call, so conformers are generated in
parallel and molecules of similar size are batched together; results come back in input order.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from transformers import Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .inference import predict_properties, task_names, to_probabilities
from .modeling_moleblend import MoleBlendForPropertyPrediction

TASK = "molecular-property-prediction"


class MolecularPropertyPredictionPipeline(Pipeline):
    """Molecules (SMILES, RDKit ``Mol``, lists of them, or an SDF path) -> one dict of task values per molecule."""

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = True  # the MoleBlend featurizer is mandatory
    _load_tokenizer = False

    def _sanitize_parameters(self, batch_size=None, conformer=None, num_workers=None, return_logits=None, **kwargs):
        preprocess = {k: v for k, v in (("conformer", conformer), ("num_workers", num_workers)) if v is not None}
        forward = {"batch_size": batch_size} if batch_size is not None else {}
        postprocess = {"return_logits": return_logits} if return_logits is not None else {}
        return preprocess, forward, postprocess

    def __call__(self, inputs, **kwargs):
        """``inputs``: a SMILES ``str`` or an RDKit ``Mol`` (returns one dict), or a list / tuple of them, or an
        ``os.PathLike`` to a ``.sdf`` / ``.sdf.gz`` (returns a list of dicts, one per input, in order)."""
        single = isinstance(inputs, str) or _is_mol(inputs)
        if not single and not isinstance(inputs, os.PathLike):
            inputs = list(inputs)  # tuples, generators: materialised, featurized together
        preprocess, forward, postprocess = self._sanitize_parameters(**kwargs)
        outputs = self.run_single(
            [inputs] if single else inputs,
            {**self._preprocess_params, **preprocess},
            {**self._forward_params, **forward},
            {**self._postprocess_params, **postprocess},
        )
        return outputs[0] if single else outputs

    def preprocess(self, inputs, conformer: str | None = None, num_workers: int | None = None) -> dict:
        overrides = {"errors": "skip"}  # a bad molecule becomes an error entry, never an exception
        if conformer is not None:
            overrides["conformer"] = conformer
        if num_workers is not None:
            overrides["num_workers"] = num_workers
        result = self.feature_extractor.featurize(inputs, progress=False, **overrides)
        return {"features": result.features, "input_indices": result.input_indices, "report": result.report}

    def _forward(self, model_inputs: dict, batch_size: int = 64) -> dict:
        features = model_inputs["features"]
        logits = (
            predict_properties([self.model], features, batch_size, probabilities=False)[0]
            if features
            else np.zeros((0, self.model.config.num_labels))
        )
        return {**model_inputs, "logits": logits}

    def postprocess(self, model_outputs: dict, return_logits: bool = False) -> list[dict]:
        config = self.model.config
        names = task_names(config)
        values = np.asarray(model_outputs["logits"], dtype=np.float64)
        if not return_logits:
            values = to_probabilities(torch.from_numpy(values), config.problem_type).numpy()
        report = model_outputs["report"]
        errors = {item.index: f"{item.error_type}: {item.reason}" for item in report.skipped}
        position = {index: k for k, index in enumerate(model_outputs["input_indices"])}
        results = []
        for index in range(report.num_inputs):
            if index in position:
                row = values[position[index]]
                results.append({"index": index, **{name: float(v) for name, v in zip(names, row)}})
            else:
                results.append({"index": index, "error": errors.get(index, "not featurized")})
        return results


def _is_mol(item) -> bool:
    try:
        from rdkit import Chem
    except ImportError:  # pragma: no cover
        return False
    return isinstance(item, Chem.Mol)


def _register() -> None:
    # importing this module twice (e.g. a reload) must not warn about overwriting our own registration
    registered = PIPELINE_REGISTRY.supported_tasks.get(TASK, {}).get("impl")
    if registered is None or registered.__qualname__ != MolecularPropertyPredictionPipeline.__qualname__:
        PIPELINE_REGISTRY.register_pipeline(
            TASK,
            pipeline_class=MolecularPropertyPredictionPipeline,
            pt_model=MoleBlendForPropertyPrediction,
            type="multimodal",
        )


_register()

__all__ = ["TASK", "MolecularPropertyPredictionPipeline"]
