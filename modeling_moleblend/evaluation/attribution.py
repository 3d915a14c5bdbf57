"""Per-atom attributions of a property prediction: integrated gradients on the atom embeddings.

Why integrated gradients (Sundararajan et al., 2017) and not attention from the graph token: attention weights
say where one layer looks, not how much an atom changes the prediction, and the graph token's attention is
nearly uniform at initialisation; IG on the atom token embeddings (after the embedding LayerNorm) gives one
signed number per atom whose sum equals the prediction minus the prediction of the baseline (completeness), so
the numbers are in the property's units. The baseline is every atom token set to zero (the graph token and the
pair relations are kept), a molecule whose atoms carry no identity.

    attributions = integrated_gradients(model, features, task=0, steps=32)   # one [atoms] array per molecule
    draw_attributions(mol, attributions[0], "mol0.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..tokenization import MoleBlendCollator


def integrated_gradients(
    model, features: Sequence[dict], task: int = 0, steps: int = 32, batch_size: int = 16
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """``(attributions, predictions, baseline predictions)``: per molecule an ``[atoms]`` array (atoms in the
    featurizer's order), and the model's output (real units, or the logit for classification) on the molecule and
    on its baseline. ``sum(attributions[i]) ~= predictions[i] - baseline[i]`` up to the ``steps`` Riemann sum."""
    model.eval()
    collator = MoleBlendCollator()
    attributions, outputs, baselines = [], [], []
    scaler = _AtomScaler()
    handle = model.moleblend.embeddings.register_forward_hook(scaler)
    try:
        for start in range(0, len(features), batch_size):
            batch = collator(list(features[start : start + batch_size]))
            batch.pop("labels", None)
            batch = batch.to(model.device)
            mask = batch["atom_mask"].bool()
            total = None
            for alpha in (np.arange(steps) + 0.5) / steps:  # midpoint rule
                scaler.alpha = float(alpha)
                model.zero_grad(set_to_none=True)
                model(**batch).logits[:, task].sum().backward()
                grad = scaler.scaled.grad[:, 1:]
                total = grad if total is None else total + grad
            with torch.no_grad():
                scaler.alpha = 1.0
                outputs.append(model(**batch).logits[:, task].cpu().numpy())
                embeddings = scaler.full[:, 1:]
                scaler.alpha = 0.0
                baselines.append(model(**batch).logits[:, task].cpu().numpy())
            per_atom = (embeddings * total / steps).sum(dim=-1)
            for row in range(per_atom.shape[0]):
                attributions.append(per_atom[row][mask[row]].detach().cpu().numpy())
    finally:
        handle.remove()
    return attributions, np.concatenate(outputs), np.concatenate(baselines)


def draw_attributions(mol, weights: np.ndarray, path: str | Path, size: int = 400, legend: str = "") -> Path:
    """The molecule's 2D depiction with each atom coloured by its attribution (red positive, blue negative, the
    colour scale symmetric around 0), written as PNG or SVG by ``path``'s suffix."""
    from rdkit.Chem import AllChem, Draw
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = Draw.rdMolDraw2D.PrepareMolForDrawing(mol, addChiralHs=False)
    if not mol.GetNumConformers():
        AllChem.Compute2DCoords(mol)
    path = Path(path)
    svg = path.suffix.lower() == ".svg"
    drawer = rdMolDraw2D.MolDraw2DSVG(size, size) if svg else rdMolDraw2D.MolDraw2DCairo(size, size)
    limit = float(np.max(np.abs(weights))) or 1.0
    colours = {}
    for index, value in enumerate(weights):
        strength = min(abs(float(value)) / limit, 1.0)
        colours[index] = (1.0, 1.0 - strength, 1.0 - strength) if value >= 0 else (1.0 - strength, 1.0 - strength, 1.0)
    radii = {index: 0.4 for index in colours}
    drawer.DrawMolecule(mol, highlightAtoms=list(colours), highlightAtomColors=colours, highlightAtomRadii=radii,
                        highlightBonds=[], legend=legend)  # fmt: skip
    drawer.FinishDrawing()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = drawer.GetDrawingText()
    path.write_text(data) if svg else path.write_bytes(data)
    return path


class _AtomScaler:
    """A forward hook on the embeddings: atom tokens scaled by ``alpha`` (0 = the baseline), the graph token
    kept; keeps the scaled output (for its gradient) and the unscaled one."""

    def __init__(self):
        self.alpha, self.scaled, self.full = 1.0, None, None

    def __call__(self, module, inputs, output):
        self.full = output.detach()
        self.scaled = torch.cat([output[:, :1], output[:, 1:] * self.alpha], dim=1)
        if self.scaled.requires_grad:
            self.scaled.retain_grad()
        return self.scaled
