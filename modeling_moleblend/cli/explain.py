"""``moleblend explain``: per-atom attributions of a prediction, as numbers and drawn on the 2D structure."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..data import InputError, read_molecule_table
from ..evaluation.attribution import draw_attributions, integrated_gradients
from ..evaluation.predictions import write_table
from ..inference import featurize_rows, load_featurizer, load_property_models, task_names
from ..training.common import set_quiet
from .common import add_inference_arguments

NAME = "explain"
HELP = "per-atom attributions (integrated gradients) of a prediction, drawn on the 2D structure"
DESCRIPTION = """\
Explain predictions atom by atom: integrated gradients on the atom embeddings (baseline: every atom token
zero), one signed number per heavy atom whose sum is the prediction minus the baseline's (in the property's
units; the logit for classification). Writes OUTPUT_DIR/attributions.csv (row, smiles, atom index, element,
attribution), attributions.json, one picture per molecule (red: the atom raises the prediction, blue: lowers
it) and grid.png. With a finetune output folder, the model is its selected model/ (the best seed).

examples:
  moleblend explain --model_name_or_path out/ --input molecules.csv --output_dir explained/
  moleblend explain --model_name_or_path out/model --input set.sdf --task pIC50 --format svg --output_dir ex/
"""
MAX_DRAWN = 200


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_inference_arguments(parser, several_models=False)
    parser.add_argument("--output_dir", required=True, type=Path, help="where the numbers and pictures go")
    parser.add_argument("--task", default=None, help="the task to explain (default: the first)")
    parser.add_argument("--steps", type=int, default=32, help="integrated-gradients steps")
    parser.add_argument("--format", default="png", choices=("png", "svg"), help="picture format")
    parser.add_argument("--max_drawn", type=int, default=MAX_DRAWN, help="draw at most this many molecules")


def run(args: argparse.Namespace) -> int:

    set_quiet(args.quiet)
    table = read_molecule_table(args.input, args.smiles_column)
    path = Path(args.model_name_or_path)
    name = str(path / "model") if (path / "model" / "config.json").is_file() else args.model_name_or_path
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    (model,), _ = load_property_models([name], args.revision, device)
    tasks = task_names(model.config)
    if args.task is not None and args.task not in tasks:
        raise InputError(f"--task {args.task!r}: the model predicts {tasks}")
    task = tasks.index(args.task) if args.task else 0
    featurizer = load_featurizer(name, args.revision)
    result, errors = featurize_rows(table, featurizer, args.conformer, args.num_workers, progress=False)
    attributions, predictions, baselines = (
        integrated_gradients(model, result.features, task, args.steps, args.batch_size)
        if result.features
        else ([], np.zeros(0), np.zeros(0))
    )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    rows, summary, images = [], [], []
    for k, row in enumerate(result.input_indices):
        mol = _molecule(table, row, featurizer.keep_hydrogens)
        elements = [atom.GetSymbol() for atom in mol.GetAtoms()] if mol is not None else []
        weights = attributions[k]
        for index, value in enumerate(weights):
            element = elements[index] if index < len(elements) else ""
            rows.append(
                {"row": row, "smiles": table.smiles[row] or "", "atom_index": index, "element": element,
                 "attribution": float(value)}
            )  # fmt: skip
        summary.append({"row": row, "smiles": table.smiles[row], "prediction": float(predictions[k]),
                        "baseline": float(baselines[k]), "attributions": [float(v) for v in weights]})  # fmt: skip
        if mol is not None and len(images) < args.max_drawn and mol.GetNumAtoms() == len(weights):
            legend = f"row {row}: {tasks[task]} {predictions[k]:.3g}"
            images.append(draw_attributions(mol, weights, args.output_dir / f"row_{row}.{args.format}", legend=legend))
    columns = {key: [r[key] for r in rows] for key in ("row", "smiles", "atom_index", "element", "attribution")}
    write_table(args.output_dir / "attributions.csv", columns)
    (args.output_dir / "attributions.json").write_text(
        json.dumps(
            {
                "task": tasks[task],
                "method": "integrated gradients on the atom embeddings, zero baseline",
                "steps": args.steps,
                "molecules": summary,
                "errors": {str(k): v for k, v in errors.items()},
            },
            indent=2,
        )  # fmt: skip
    )
    if images and args.format == "png":
        _grid(images[:24], args.output_dir / "grid.png")
    print(f"{len(table)} rows -> {args.output_dir}: {len(summary)} explained, {len(errors)} with an error, "
          f"{len(images)} pictures")  # fmt: skip
    return 0


def _molecule(table, row: int, keep_hydrogens: bool):
    """The molecule in the featurizer's atom order: the SDF record's, or the SMILES as written."""
    from rdkit import Chem

    mol = table.records[row].mol if table.records is not None else Chem.MolFromSmiles(table.smiles[row] or "")
    if mol is None:
        return None
    return Chem.Mol(mol) if keep_hydrogens else Chem.RemoveHs(mol)


def _grid(images: list[Path], path: Path, columns: int = 4) -> None:
    from matplotlib.image import imread

    from ..evaluation.plots import _new_figure, _save

    rows = (len(images) + columns - 1) // columns
    figure = _new_figure(3 * columns, 3 * rows)
    for i, image in enumerate(images):
        axis = figure.add_subplot(rows, columns, i + 1)
        axis.imshow(imread(image))
        axis.axis("off")
    _save(figure, path)
