"""Model cards for MoleBlend checkpoints: Hub metadata (``ModelCardData`` with ``eval_results``) plus a body that
says what the model is, how it was trained, how well it does (mean +- std over seeds), how to load it, its
limits, and how to cite the paper. Every run writes its ``README.md`` through ``write_model_card``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

CITATION = """@inproceedings{yu2024moleblend,
  title     = {Multimodal Molecular Pretraining via Modality Blending},
  author    = {Yu, Qiying and Zhang, Yudi and Ni, Yuyan and Feng, Shikun and Lan, Yanyan and Zhou, Hao
               and Liu, Jingjing},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2024}
}"""

TAGS = ["chemistry", "molecules", "molecular-property-prediction", "moleblend", "graph-transformer"]


@dataclass
class MetricSummary:
    """One metric on one split over seeds (``values`` in seed order)."""

    name: str
    mean: float
    std: float = 0.0
    values: list[float] = field(default_factory=list)
    split: str = "test"
    higher_is_better: bool = False


@dataclass
class CardInfo:
    """What a card states. Everything is optional except the model name and what the model is for."""

    model_name: str
    summary: str
    task: str = "molecular property prediction"
    dataset_name: str | None = None
    dataset_id: str | None = None  # a Hub dataset id, when the data has one
    base_model: str | None = None  # where training started: a Hub id, a folder or builtin:NAME (card text)
    task_names: list[str] = field(default_factory=list)
    problem_type: str | None = None
    split: str | None = None  # e.g. "Bemis-Murcko scaffold 8:1:1, deterministic"
    protocol: str | None = None  # e.g. "best epoch on validation RMSE; test reported at that epoch"
    seeds: list[int] = field(default_factory=list)
    metrics: list[MetricSummary] = field(default_factory=list)
    baseline_metrics: list[MetricSummary] = field(default_factory=list)
    training: dict[str, object] = field(default_factory=dict)  # epochs, steps, lr, batch size, hardware, wall time
    architecture: dict[str, object] = field(default_factory=dict)  # layers, hidden size, heads, modality, params
    featurizer: dict[str, object] = field(default_factory=dict)  # max_atoms, conformer policy, hydrogens
    limitations: list[str] = field(default_factory=list)
    license: str = "apache-2.0"


def is_hub_id(name: str | None) -> bool:
    """``owner/name`` or ``name``: not a folder, a URL or a ``builtin:NAME`` checkpoint."""
    if not name or ":" in name or name.startswith((".", "/", "~")) or name.count("/") > 1:
        return False
    return not Path(name).expanduser().exists()


def _format_metric(metric: MetricSummary) -> str:
    if math.isnan(metric.mean):
        return "n/a"
    if len(metric.values) > 1:
        return f"{metric.mean:.4f} +- {metric.std:.4f} (n = {len(metric.values)} seeds)"
    return f"{metric.mean:.4f}"


def card_data(info: CardInfo) -> ModelCardData:
    """The YAML metadata: library, tags, licence, datasets, base model and the test metrics as eval results."""
    dataset = info.dataset_id or (info.dataset_name or "custom").lower().replace(" ", "-")
    results = [
        EvalResult(
            task_type="graph-ml",
            task_name=info.task,
            dataset_type=dataset,
            dataset_name=info.dataset_name or dataset,
            dataset_split=metric.split,
            metric_type=metric.name,
            metric_name=metric.name,
            metric_value=round(float(metric.mean), 6),
        )
        for metric in info.metrics
        if not math.isnan(metric.mean)
    ]
    return ModelCardData(
        model_name=info.model_name,
        library_name="transformers",
        pipeline_tag="graph-ml",
        license=info.license,
        tags=list(TAGS),
        datasets=[info.dataset_id] if info.dataset_id else None,
        base_model=info.base_model if is_hub_id(info.base_model) else None,  # the Hub's field takes ids only
        metrics=sorted({m.name for m in info.metrics}) or None,
        eval_results=results or None,
    )


def card_body(info: CardInfo) -> str:
    lines = [f"# {info.model_name}", "", info.summary, ""]
    lines += [
        "MoleBlend is a Transformer over molecules whose attention is biased by the 2D graph (shortest paths,",
        "bonds along them) and the 3D structure (interatomic distances), following MoleBLEND (Yu et al., ICLR",
        "2024). Token 0 is a graph token whose final state is the molecule's representation.",
        "",
    ]
    if info.architecture:
        lines += ["## Architecture", ""]
        lines += [f"- {key}: {value}" for key, value in info.architecture.items()]
        lines.append("")
    lines += ["## Training", ""]
    for label, value in (
        ("Data", info.dataset_name),
        ("Tasks", ", ".join(info.task_names) if info.task_names else None),
        ("Problem type", info.problem_type),
        ("Split", info.split),
        ("Protocol", info.protocol),
        ("Seeds", ", ".join(map(str, info.seeds)) if info.seeds else None),
        ("Starting point", info.base_model or "trained from scratch"),
    ):
        if value:
            lines.append(f"- {label}: {value}")
    lines += [f"- {key}: {value}" for key, value in info.training.items()]
    lines.append("")
    if info.metrics:
        lines += ["## Results", "", "| metric | split | MoleBlend | baseline |", "|---|---|---|---|"]
        baseline = {(m.name, m.split): m for m in info.baseline_metrics}
        for metric in info.metrics:
            other = baseline.get((metric.name, metric.split))
            lines.append(
                f"| {metric.name} | {metric.split} | {_format_metric(metric)} | "
                f"{_format_metric(other) if other else '-'} |"
            )
        if info.baseline_metrics:
            lines += ["", "Baseline: a random forest on Morgan fingerprints (radius 2, 2048 bits), same split."]
        lines.append("")
    lines += [
        "## How to use",
        "",
        "From the command line, with the `moleblend` package installed (install a CPU or CUDA build of torch",
        "first):",
        "",
        "```bash",
        "moleblend predict --model_name_or_path REPO_OR_FOLDER --input molecules.csv --output predictions.csv",
        "moleblend encode --model_name_or_path REPO_OR_FOLDER --input molecules.csv --output embeddings.parquet",
        "moleblend finetune --model_name_or_path REPO_OR_FOLDER --train_file data.csv --label_columns y \\",
        "    --output_dir out/",
        "```",
        "",
        "In Python:",
        "",
        "```python",
        "import modeling_moleblend  # registers the classes with the Auto* factories",
        "from transformers import AutoFeatureExtractor, AutoModelForSequenceClassification",
        "",
        'featurizer = AutoFeatureExtractor.from_pretrained("REPO_OR_FOLDER")',
        'model = AutoModelForSequenceClassification.from_pretrained("REPO_OR_FOLDER")',
        'batch = featurizer(["CCO", "c1ccccc1O"], return_tensors="pt")',
        "predictions = model(**batch).logits  # real units for regression",
        "```",
        "",
        "Without the package: pass `trust_remote_code=True` to both `from_pretrained` calls (the code files in",
        "this repository are used; RDKit is the only extra requirement: `pip install rdkit`). Pin `revision=`",
        "to a commit when you run remote code.",
        "",
        "## Limitations",
        "",
    ]
    limits = list(info.limitations)
    if info.featurizer:
        conformer = info.featurizer.get("conformer")
        max_atoms = info.featurizer.get("max_atoms")
        if max_atoms:
            limits.append(
                f"Molecules with more than {max_atoms} heavy atoms are rejected by the featurizer (an error or "
                "a reported skip, never a silent crop)."
            )
        if conformer == "none":
            limits.append("2D input only: the featurizer generates no conformer and the model uses no 3D.")
        elif conformer:
            source = {
                "input": "the input's own 3D coordinates only",
                "generate": "generated conformers",
                "auto": "the input's 3D coordinates where present, else generated conformers",
            }.get(conformer, conformer)
            limits.append(
                f"3D input: {source} (conformer policy `{conformer}`; generated ones are seeded ETKDGv3"
                f"{' + MMFF' if info.featurizer.get('mmff') else ''}); predictions for a molecule can depend on "
                "its conformer."
            )
    limits.append("Trained on the data above only: predictions far from that chemical space are unreliable.")
    lines += [f"- {item}" for item in limits]
    lines += ["", "## Citation", "", "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)


def build_model_card(info: CardInfo) -> ModelCard:
    data = card_data(info)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card_body(info)}")


def write_model_card(folder: str | Path, info: CardInfo) -> Path:
    """Write ``folder/README.md`` (offline; ``ModelCard.load`` reads it back)."""
    path = Path(folder) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    build_model_card(info).save(path)
    return path
