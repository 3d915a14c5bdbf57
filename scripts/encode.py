#!/usr/bin/env python
"""Molecule embeddings from a MoleBlend model: CSV or SDF in, one embedding per input row out, in input order.

    python scripts/encode.py --model_name_or_path out/model --input molecules.csv --output embeddings.parquet
    python scripts/encode.py --model_name_or_path me/moleblend-esol --revision v1 --input set.sdf \\
        --output embeddings.npy --per_atom

The molecule embedding is the graph token's final state (`pooler_output`, [hidden]); with --per_atom, each atom's
final state too (atoms in the featurizer's order: RDKit order of the heavy atoms, or of all atoms with
keep_hydrogens). A row whose molecule cannot be featurized keeps its place:

* .parquet: columns row, smiles, embedding (fixed-size list, null on failure), num_atoms, error (the reason, null
  when fine) and, with --per_atom, atom_embeddings (a list of vectors per row).
* .npy: a float32 [rows, hidden] array with NaN rows for failures, OUTPUT_errors.csv (row, smiles, error; header
  only when every row worked) and, with --per_atom, OUTPUT_atoms.npz: `embeddings` [total atoms, hidden] and
  `offsets` [rows + 1] (row i's atoms are embeddings[offsets[i]:offsets[i + 1]]; none for a failed row).

Any model folder or Hub id works (a finetuned or pretrained MoleBlend; the encoder is used, heads are ignored).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import torch

from modeling_moleblend import (
    MoleBlendCollator,
    MoleBlendConfig,
    MoleBlendFeaturizer,
    MoleBlendForPretraining,
    MoleBlendForPropertyPrediction,
    MoleBlendModel,
)
from modeling_moleblend.molecule_data import featurize_rows

MODEL_CLASSES = {cls.__name__: cls for cls in (MoleBlendModel, MoleBlendForPropertyPrediction, MoleBlendForPretraining)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_name_or_path", required=True, help="a MoleBlend folder or Hub id")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    p.add_argument("--input", required=True, type=Path, help="CSV (.csv/.csv.gz) or SDF (.sdf/.sdf.gz)")
    p.add_argument("--smiles_column", default="smiles")
    p.add_argument("--output", required=True, type=Path, help="out.parquet or out.npy")
    p.add_argument("--per_atom", action="store_true", help="also write every atom's embedding")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--conformer", default=None, choices=["auto", "input", "generate", "none"])
    p.add_argument("--num_workers", type=int, default=None, help="conformer workers (default: the saved value)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    args = p.parse_args(argv)
    if args.output.suffix not in (".parquet", ".npy"):
        p.error(f"--output must end in .parquet or .npy, got {args.output.name}")
    return args


def load_encoder(name_or_path: str, revision: str | None = None) -> MoleBlendModel:
    """The encoder of whatever MoleBlend checkpoint ``name_or_path`` holds (loaded with its own class, so no
    weight is reported missing or unexpected)."""
    config = MoleBlendConfig.from_pretrained(name_or_path, revision=revision)
    names = [name for name in (config.architectures or []) if name in MODEL_CLASSES]
    model_class = MODEL_CLASSES[names[0]] if names else MoleBlendModel
    model = model_class.from_pretrained(name_or_path, revision=revision)
    return model.base_model  # MoleBlendModel itself, or the head model's `moleblend` encoder


@torch.no_grad()
def encode_features(
    encoder: MoleBlendModel, features: list[dict], batch_size: int = 64, per_atom: bool = False
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """``[molecules, hidden]`` graph-token embeddings (and each molecule's ``[atoms, hidden]``) in the order of
    ``features``. Batches group molecules of similar size (less padding); results go back to input order."""
    encoder.eval()
    sizes = np.array([int(np.asarray(f["num_atoms"])) for f in features])
    order = np.argsort(sizes, kind="stable")
    collator = MoleBlendCollator(pad_to_multiple_of=8)
    pooled = np.zeros((len(features), encoder.config.hidden_size), dtype=np.float32)
    atoms: list[np.ndarray] | None = [None] * len(features) if per_atom else None  # type: ignore[list-item]
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = collator([features[i] for i in index])
        batch.pop("labels", None)
        output = encoder(**batch.to(encoder.device))
        pooled[index] = output.pooler_output.float().cpu().numpy()
        if atoms is not None:
            states = output.last_hidden_state.float().cpu().numpy()
            for row, i in enumerate(index):
                atoms[i] = states[row, 1 : 1 + sizes[i]]  # token 0 is the graph token
    return pooled, atoms


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    encoder = load_encoder(args.model_name_or_path, args.revision).to(device)
    featurizer = MoleBlendFeaturizer.from_pretrained(args.model_name_or_path, revision=args.revision)
    table, result, errors = featurize_rows(args.input, featurizer, args.smiles_column, args.conformer, args.num_workers)
    pooled, atoms = encode_features(encoder, result.features, args.batch_size, args.per_atom)
    position = {row: k for k, row in enumerate(result.input_indices)}

    rows = len(table)
    hidden = encoder.config.hidden_size
    embeddings = np.full((rows, hidden), np.nan, dtype=np.float32)
    for row, k in position.items():
        embeddings[row] = pooled[k]
    per_row_atoms = [atoms[position[row]] if atoms is not None and row in position else None for row in range(rows)]
    smiles = [s or "" for s in table.smiles]
    num_atoms = [
        int(np.asarray(result.features[position[r]]["num_atoms"])) if r in position else None for r in range(rows)
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.output.suffix == ".parquet":
        _write_parquet(args.output, smiles, embeddings, num_atoms, per_row_atoms if args.per_atom else None, errors)
    else:
        np.save(args.output, embeddings)
        with open(args.output.with_name(f"{args.output.stem}_errors.csv"), "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["row", "smiles", "error"])
            writer.writerows([row, smiles[row], errors[row]] for row in sorted(errors))
        if args.per_atom:
            counts = [len(a) if a is not None else 0 for a in per_row_atoms]
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            stacked = [a for a in per_row_atoms if a is not None]
            flat = np.concatenate(stacked) if stacked else np.zeros((0, hidden), np.float32)
            np.savez(args.output.with_name(f"{args.output.stem}_atoms.npz"), embeddings=flat, offsets=offsets)
    print(
        f"{rows} rows -> {args.output}: {len(position)} embedded ({hidden} dims), {len(errors)} with an error "
        f"({'null embedding, reason in the error column' if args.output.suffix == '.parquet' else 'NaN rows'})"
    )
    return 0


def _write_parquet(path: Path, smiles, embeddings, num_atoms, atoms, errors) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, hidden = embeddings.shape
    failed = np.array([n is None for n in num_atoms])
    vector = pa.list_(pa.float32(), hidden)
    columns = {
        "row": pa.array(np.arange(rows), pa.int64()),
        "smiles": pa.array(smiles, pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(
            pa.array(np.nan_to_num(embeddings).ravel(), pa.float32()), type=vector, mask=pa.array(failed)
        ),
        "num_atoms": pa.array(num_atoms, pa.int32()),
        "error": pa.array([errors.get(row) for row in range(rows)], pa.string()),
    }
    if atoms is not None:
        columns["atom_embeddings"] = pa.array([a if a is None else list(a) for a in atoms], pa.list_(vector))
    pq.write_table(pa.table(columns), path)


if __name__ == "__main__":
    sys.exit(main())
