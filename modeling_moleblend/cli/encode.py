"""``moleblend encode``: molecule (and atom) embeddings for every row of a molecule file, in row order."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch

from ..data import InputError, read_molecule_table
from ..inference import encode_features, featurize_rows, load_encoder, load_featurizer
from ..training.common import set_quiet
from .common import add_inference_arguments

NAME = "encode"
HELP = "embed molecules (graph-token states, optionally per atom) to Parquet or .npy, in input order"
DESCRIPTION = """\
Molecule embeddings from any MoleBlend model (finetuned or pretrained; the encoder is used, heads are ignored):
the graph token's final state ([hidden]) per input row and, with --per_atom, every atom's final state (atoms in
the featurizer's order). A row whose molecule cannot be featurized keeps its place:

  .parquet: row, the input's columns, embedding (null on failure), num_atoms, error (null when fine) and, with
            --per_atom, atom_embeddings (a list of vectors per row);
  .npy:     a float32 [rows, hidden] array with NaN rows for failures, OUTPUT_errors.csv (row, smiles, error)
            and, with --per_atom, OUTPUT_atoms.npz: `embeddings` [total atoms, hidden] and `offsets` [rows + 1].

examples:
  moleblend encode --model_name_or_path out/model --input molecules.csv --output embeddings.parquet
  moleblend encode --model_name_or_path me/moleblend-esol --input set.sdf --output emb.npy --per_atom
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_inference_arguments(parser, several_models=False)
    parser.add_argument("--output", required=True, type=Path, help="out.parquet or out.npy")
    parser.add_argument("--per_atom", action="store_true", help="also write every atom's embedding")


def run(args: argparse.Namespace) -> int:
    set_quiet(args.quiet)
    if args.output.suffix not in (".parquet", ".npy"):
        raise InputError(f"{args.output}: the output must end in .parquet or .npy")
    table = read_molecule_table(args.input, args.smiles_column)  # the input is checked before the model loads
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    encoder = load_encoder(args.model_name_or_path, args.revision).to(device)
    featurizer = load_featurizer(args.model_name_or_path, args.revision)
    result, errors = featurize_rows(
        table, featurizer, args.conformer, args.num_workers, progress=False if args.quiet else None
    )
    pooled, atoms = encode_features(encoder, result.features, args.batch_size, args.per_atom, progress=not args.quiet)
    rows, hidden = len(table), encoder.config.hidden_size
    embeddings = np.full((rows, hidden), np.nan, dtype=np.float32)
    embeddings[result.input_indices] = pooled
    position = {row: k for k, row in enumerate(result.input_indices)}
    per_row_atoms = [atoms[position[r]] if atoms is not None and r in position else None for r in range(rows)]
    num_atoms = [
        int(np.asarray(result.features[position[r]]["num_atoms"])) if r in position else None for r in range(rows)
    ]
    smiles = [s or "" for s in table.smiles]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.output.suffix == ".parquet":
        _write_parquet(
            args.output, table.columns, smiles, embeddings, num_atoms, per_row_atoms if args.per_atom else None, errors
        )
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


def _write_parquet(path: Path, input_columns, smiles, embeddings, num_atoms, atoms, errors) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, hidden = embeddings.shape
    failed = np.array([n is None for n in num_atoms])
    vector = pa.list_(pa.float32(), hidden)
    columns = {"row": pa.array(np.arange(rows), pa.int64())}
    columns.update({name: pa.array(values, pa.string()) for name, values in input_columns.items() if name != "row"})
    columns.setdefault("smiles", pa.array(smiles, pa.string()))
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(
        pa.array(np.nan_to_num(embeddings).ravel(), pa.float32()), type=vector, mask=pa.array(failed)
    )
    columns["num_atoms"] = pa.array(num_atoms, pa.int32())
    columns["error"] = pa.array([errors.get(row) for row in range(rows)], pa.string())
    if atoms is not None:
        columns["atom_embeddings"] = pa.array([a if a is None else list(a) for a in atoms], pa.list_(vector))
    pq.write_table(pa.table(columns), path)
