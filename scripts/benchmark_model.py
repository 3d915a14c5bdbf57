#!/usr/bin/env python
"""Model throughput and peak memory: forward+backward (training) and inference, per preset and input modality.

    python scripts/benchmark_model.py                                   # base + small, 2d/3d/2d3d, CPU, batch 32
    python scripts/benchmark_model.py --input lipophilicity.csv --presets base --modalities 2d
    python scripts/benchmark_model.py --device cuda --dtype bfloat16    # bf16 autocast on a GPU
    python scripts/benchmark_model.py --graphormer_python /path/to/venv-tf4/bin/python   # + Graphormer, same run

The molecules are fixed: the first --num_molecules (default: --batch_size) of the input with at least --min_atoms
heavy atoms (drug-sized; default input: the embedded ESOL sample), featurized once with generated conformers
(ETKDGv3, seed 0) so that every modality sees the same molecules, cut into batches of --batch_size in file order
or, with --order bucketed, after sorting by size (what the length-bucketed sampler of finetuning does). One
timed step is a pass over all batches. Each configuration runs in its own process, so that peak
memory is its own: on CPU the peak resident memory above what the process held before the model was built; on
CUDA torch.cuda.max_memory_allocated. Timings are the median of --repeats timed steps after --warmup steps.

Training step: MoleBlendForPropertyPrediction (regression, one target) forward, loss, backward, AdamW step.
Inference: MoleBlendForPropertyPrediction forward under torch.inference_mode (a prediction per molecule, as
Graphormer's GraphormerForGraphClassification gives). Both models here read the graph token (the preset's
readout), so our last layer computes the graph token alone (`graph_token_only`); a model finetuned with the default
recipe reads `graph_token+mean` and runs the full last layer.

--graphormer_python runs the transformers 4.x Graphormer (GraphormerForGraphClassification, the same size as
the preset: layers, width, heads, FFN) on the same SMILES in another interpreter, featurized with ogb's
smiles2graph and Graphormer's own collator; that interpreter needs transformers 4.x (4.57.6 works), cython<3 and
ogb. This machine kind is noisy: compare ratios measured in one run.

Distance to the limit: model FLOPs on real tokens (projections, FFN and attention products of the real tokens
only, the last layer's for the graph token's prediction only: its keys and values of every token, its query,
output projection and FFN of the graph token; training = 3x the forward) per second, against the rate of a bare
`torch.mm` of the same shapes measured in the same process (`mm_gflops`): `flop_utilisation` = model rate / mm rate.

    python scripts/benchmark_model.py --presets base --modalities 2d --num_molecules 256 --min_atoms 0 \
        --graphormer_python $PEERS/graphormer/bin/python                   # the first 256 ESOL molecules, file order
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

MODALITIES = ("2d", "3d", "2d3d")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=None, help="CSV (or .csv.gz) with SMILES (default: ESOL)")
    parser.add_argument("--smiles_column", default="smiles")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_molecules", type=int, default=None, help="molecules in all (default: one batch)")
    parser.add_argument("--order", default="file", choices=["file", "bucketed"], help="how batches are cut")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in every phase")
    parser.add_argument("--min_atoms", type=int, default=15, help="heavy atoms a molecule needs to be picked")
    parser.add_argument("--presets", nargs="+", default=["base", "small"], choices=["base", "small"])
    parser.add_argument("--modalities", nargs="+", default=list(MODALITIES), choices=MODALITIES)
    parser.add_argument("--modes", nargs="+", default=["train", "inference"], choices=["train", "inference"])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="bfloat16: autocast")
    parser.add_argument("--attn_implementation", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--gradient_checkpointing", action="store_true", help="training: recompute activations")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--graphormer_python", default=None, help="interpreter with transformers 4.x + ogb")
    parser.add_argument("--output", type=Path, default=Path("outputs/benchmark_model.json"))
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)  # internal: one configuration
    parser.add_argument("--smiles_file", type=Path, default=None, help=argparse.SUPPRESS)  # internal
    return parser.parse_args(argv)


def pick_smiles(path: Path | None, column: str, count: int, min_atoms: int) -> tuple[list[str], dict[str, int]]:
    """The first ``count`` parsable SMILES with at least ``min_atoms`` heavy atoms (deterministic), and how many
    rows before the last pick were passed over, by reason."""
    from rdkit import Chem, rdBase

    from modeling_moleblend.data import read_molecule_table

    with resources.as_file(resources.files("modeling_moleblend").joinpath("data/esol.csv")) as esol:
        table = read_molecule_table(path or esol, smiles_column=column)
    picked: list[str] = []
    passed_over = {"unparsable": 0, "too small": 0}
    with rdBase.BlockLogs():
        for smiles in table.smiles:
            mol = Chem.MolFromSmiles(smiles) if smiles else None
            if mol is None:
                passed_over["unparsable"] += 1
            elif mol.GetNumHeavyAtoms() < min_atoms:
                passed_over["too small"] += 1
            else:
                picked.append(smiles)
            if len(picked) == count:
                break
    if len(picked) < count:
        raise SystemExit(f"only {len(picked)} molecules with >= {min_atoms} heavy atoms in {path or 'ESOL'}")
    return picked, passed_over


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_steps(step, warmup: int, repeats: int, synchronize) -> float:
    """Median seconds of one call of ``step`` after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    synchronize()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        synchronize()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def run_moleblend(args, preset: str, modality: str, smiles: list[str]) -> dict:
    import torch

    from modeling_moleblend import (
        MoleBlendCollator,
        MoleBlendConfig,
        MoleBlendFeaturizer,
        MoleBlendForPropertyPrediction,
    )

    torch.manual_seed(0)
    device = torch.device(args.device)
    featurizer = MoleBlendFeaturizer(conformer="generate" if modality != "2d" else "none", num_workers=1, seed=0)
    result = featurizer.featurize(smiles, progress=False)
    pad = 8 if device.type == "cuda" else None
    batches = []
    for chunk in batch_chunks(len(result.features), args.batch_size):
        batch = MoleBlendCollator(pad_to_multiple_of=pad)([result.features[i] for i in chunk])
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        batches.append(batch)
    config = MoleBlendConfig.from_preset(preset, input_modality=modality, num_labels=1, problem_type="regression")
    config._attn_implementation = args.attn_implementation
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def reset_peak() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return torch.cuda.memory_allocated() / 2**20
        return rss_mb()

    def peak(base: float) -> float:
        if device.type == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20 - base
        return rss_mb() - base  # ru_maxrss only grows: train runs first, inference in its own process

    out: dict = {"preset": preset, "modality": modality, "device": str(device), "dtype": args.dtype}
    out["gradient_checkpointing"] = bool(args.gradient_checkpointing)
    if args.phase.endswith(":train"):
        base = reset_peak()
        model = MoleBlendForPropertyPrediction(config).to(device).train()
        if args.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        labels = [torch.randn(len(batch["num_atoms"]), 1, device=device) for batch in batches]

        def step() -> None:
            for batch, batch_labels in zip(batches, labels):
                with autocast:
                    loss = model(**batch, labels=batch_labels).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

        seconds = time_steps(step, args.warmup, args.repeats, synchronize)
        out["mode"] = "train"
    else:
        base = reset_peak()
        model = MoleBlendForPropertyPrediction(config).to(device).eval()

        def step() -> None:
            with torch.inference_mode(), autocast:
                for batch in batches:
                    model(**batch)

        seconds = time_steps(step, args.warmup, args.repeats, synchronize)
        out["mode"] = "inference"
    out["parameters_m"] = sum(p.numel() for p in model.parameters()) / 1e6
    out["molecules_per_s"] = len(result.features) / seconds
    out["ms_per_batch"] = 1000 * seconds / len(batches)
    out["peak_memory_mb"] = peak(base)
    padded = sum(b["atom_ids"].shape[0] * (b["atom_ids"].shape[1] + 1) for b in batches)  # + the graph token
    out["tokens_per_molecule"] = padded / len(result.features)
    out["real_token_fraction"] = sum(float(b["num_atoms"].sum()) + len(b["num_atoms"]) for b in batches) / padded
    out["mean_atoms"] = sum(float(b["num_atoms"].sum()) for b in batches) / len(result.features)
    out["atoms_per_molecule"] = [int(n) for b in batches for n in b["num_atoms"]]
    return out


GRAPHORMER_SIZES = {  # the MoleBlend presets' sizes, in Graphormer's names
    "base": {"num_hidden_layers": 12, "embedding_dim": 768, "ffn_embedding_dim": 768, "num_attention_heads": 32},
    "small": {"num_hidden_layers": 4, "embedding_dim": 128, "ffn_embedding_dim": 256, "num_attention_heads": 8},
}


def run_graphormer(args, preset: str, smiles: list[str]) -> dict:
    """transformers 4.x Graphormer on the same molecules (runs in the interpreter given by --graphormer_python)."""
    import torch
    import transformers
    from ogb.utils import smiles2graph
    from transformers import GraphormerConfig, GraphormerForGraphClassification
    from transformers.models.deprecated.graphormer.collating_graphormer import GraphormerDataCollator

    torch.manual_seed(0)
    device = torch.device(args.device)
    collator = GraphormerDataCollator(on_the_fly_processing=True)
    items = []
    for s in smiles:
        graph = smiles2graph(s)
        items.append(
            {
                "edge_index": graph["edge_index"].tolist(),
                "edge_attr": graph["edge_feat"].tolist(),
                "node_feat": graph["node_feat"].tolist(),
                "num_nodes": int(graph["num_nodes"]),
                "y": [0.0],
            }
        )
    batches = [{k: v.to(device) for k, v in collator([items[i] for i in chunk]).items()}
               for chunk in batch_chunks(len(items), args.batch_size)]  # fmt: skip
    config = GraphormerConfig(num_classes=1, **GRAPHORMER_SIZES[preset])
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out: dict = {"preset": preset, "modality": "2d", "device": str(device), "dtype": "float32"}
    out["model"] = f"Graphormer (transformers {transformers.__version__})"
    base = rss_mb()
    if args.phase.endswith(":train"):
        model = GraphormerForGraphClassification(config).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            for batch in batches:
                loss = model(**batch, return_dict=True).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

        out["mode"] = "train"
    else:
        model = GraphormerForGraphClassification(config).to(device).eval()
        for batch in batches:
            batch.pop("labels")

        def step() -> None:
            with torch.inference_mode():
                for batch in batches:
                    model(**batch)

        out["mode"] = "inference"
    seconds = time_steps(step, args.warmup, args.repeats, synchronize)
    out["parameters_m"] = sum(p.numel() for p in model.parameters()) / 1e6
    out["molecules_per_s"] = len(smiles) / seconds
    out["ms_per_batch"] = 1000 * seconds / len(batches)
    out["peak_memory_mb"] = rss_mb() - base
    out["tokens_per_molecule"] = sum(b["input_nodes"].shape[0] * (b["input_nodes"].shape[1] + 1) for b in batches)
    out["tokens_per_molecule"] /= len(smiles)
    return out


def batch_chunks(count: int, batch_size: int) -> list[range]:
    """Consecutive batches of the (already ordered) molecules."""
    return [range(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def real_token_flops(preset: str, atoms_per_molecule: list[int], mode: str) -> float:
    """Model FLOPs of one pass of a graph-token prediction over the molecules, on real tokens only (atoms + the
    graph token): the four projections and the FFN per token, the two attention products per real (query, key)
    pair; in the last layer only what the graph token's state needs (keys and values of every token; the query,
    output projection, FFN and attention products of the graph token); backward = 2x."""
    from modeling_moleblend import MOLEBLEND_PRESETS

    sizes = MOLEBLEND_PRESETS[preset]
    hidden, ffn, layers = sizes["hidden_size"], sizes["intermediate_size"], sizes["num_hidden_layers"]
    tokens = [n + 1 for n in atoms_per_molecule]
    per_layer = sum(t * (8 * hidden * hidden + 4 * hidden * ffn) + 4 * t * t * hidden for t in tokens)
    graph_token = 4 * hidden * hidden + 4 * hidden * ffn  # its query and output projections, its FFN
    last_layer = sum(t * 4 * hidden * hidden + graph_token + 4 * t * hidden for t in tokens)
    return ((layers - 1) * per_layer + last_layer) * (3 if mode == "train" else 1)


def bare_mm_gflops(preset: str, rows: int) -> float:
    """GFLOP/s of a plain torch.mm of the encoder's shapes ([rows, hidden] x [hidden, hidden], and the FFN's)."""
    import torch

    from modeling_moleblend import MOLEBLEND_PRESETS

    sizes = MOLEBLEND_PRESETS[preset]
    hidden, ffn = sizes["hidden_size"], sizes["intermediate_size"]
    x, w, w1 = torch.randn(rows, hidden), torch.randn(hidden, hidden), torch.randn(hidden, ffn)

    def step() -> None:
        for _ in range(4):
            torch.mm(x, w)
        torch.mm(torch.mm(x, w1), w1.T)

    seconds = time_steps(step, 3, 15, lambda: None)
    return rows * (8 * hidden * hidden + 4 * hidden * ffn) / seconds / 1e9


def run_phase(args) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    kind, preset, modality, _mode = args.phase.split(":")
    smiles = json.loads(args.smiles_file.read_text())
    if kind == "graphormer":
        return run_graphormer(args, preset, smiles)
    return run_moleblend(args, preset, modality, smiles)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.phase:  # internal: one configuration, run by the parent below
        print(json.dumps(run_phase(args)))
        return 0
    smiles, passed_over = pick_smiles(args.input, args.smiles_column, args.num_molecules or args.batch_size,
                                      args.min_atoms)  # fmt: skip
    if args.order == "bucketed":
        from rdkit import Chem

        smiles = sorted(smiles, key=lambda s: -Chem.MolFromSmiles(s).GetNumHeavyAtoms())  # stable: ties keep order
    args.output.parent.mkdir(parents=True, exist_ok=True)
    smiles_file = args.output.with_suffix(".smiles.json")
    smiles_file.write_text(json.dumps(smiles))
    common = ["--device", args.device, "--dtype", args.dtype, "--attn_implementation", args.attn_implementation]
    common += ["--gradient_checkpointing"] if args.gradient_checkpointing else []
    common += ["--warmup", str(args.warmup), "--repeats", str(args.repeats), "--smiles_file", str(smiles_file)]
    common += ["--batch_size", str(args.batch_size)] + (["--threads", str(args.threads)] if args.threads else [])
    configurations = [
        (sys.executable, f"moleblend:{preset}:{modality}:{mode}")
        for preset in args.presets
        for modality in args.modalities
        for mode in args.modes
    ]
    if args.graphormer_python:
        for preset in args.presets:
            for mode in args.modes:
                configurations.append((args.graphormer_python, f"graphormer:{preset}:2d:{mode}"))
    print(
        f"{len(smiles)} molecules (>= {args.min_atoms} heavy atoms) from {args.input or 'embedded ESOL'} in "
        f"batches of {args.batch_size} ({args.order} order), "
        f"passed over: {passed_over['unparsable']} unparsable, {passed_over['too small']} too small; "
        f"device {args.device}, {args.dtype}, attention {args.attn_implementation}; median of {args.repeats} steps"
    )
    print(
        f"{'model':10s} {'preset':6s} {'mode':5s} {'step':9s} {'params':>7s} {'mol/s':>9s} {'ms/batch':>9s} "
        f"{'peak MB':>8s}"
    )
    rows = []
    for python, phase in configurations:
        command = [python, __file__, "--phase", phase, *common]
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            print(f"{phase}: failed\n{completed.stderr[-3000:]}", file=sys.stderr)
            rows.append({"phase": phase, "error": completed.stderr[-3000:]})
            continue
        row = json.loads(completed.stdout.strip().splitlines()[-1])
        row["phase"] = phase
        rows.append(row)
        name = "Graphormer" if phase.startswith("graphormer") else "MoleBlend"
        print(
            f"{name:10s} {row['preset']:6s} {row['modality']:5s} {row['mode']:9s} {row['parameters_m']:6.2f}M "
            f"{row['molecules_per_s']:9.1f} {row['ms_per_batch']:9.1f} {row['peak_memory_mb']:8.0f}",
            flush=True,
        )
    ratios = {}
    for preset in args.presets:
        for mode in ("train", "inference"):
            ours = [r for r in rows if r.get("phase") == f"moleblend:{preset}:2d:{mode}"]
            theirs = [r for r in rows if r.get("phase") == f"graphormer:{preset}:2d:{mode}"]
            if ours and theirs and "error" not in ours[0] and "error" not in theirs[0]:
                ratios[f"{preset}_{mode}_throughput_vs_graphormer"] = (
                    ours[0]["molecules_per_s"] / theirs[0]["molecules_per_s"]
                )
                ratios[f"{preset}_{mode}_peak_memory_vs_graphormer"] = ours[0]["peak_memory_mb"] / max(
                    theirs[0]["peak_memory_mb"], 1e-9
                )
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    limits = {}
    if args.device == "cpu" and args.dtype == "float32":
        for row in rows:
            if row.get("phase", "").startswith("moleblend") and "error" not in row and row["modality"] == "2d":
                preset, mode = row["preset"], row["mode"]
                rows_per_batch = round(sum(row["atoms_per_molecule"]) / len(row["atoms_per_molecule"]) + 1)
                rows_per_batch *= args.batch_size
                mm = limits.setdefault(f"{preset}_mm_gflops", bare_mm_gflops(preset, rows_per_batch))
                model_rate = real_token_flops(preset, row["atoms_per_molecule"], mode) * row["molecules_per_s"]
                model_rate /= len(row["atoms_per_molecule"]) * 1e9
                limits[f"{preset}_{mode}_model_gflops"] = model_rate
                limits[f"{preset}_{mode}_flop_utilisation"] = model_rate / mm
        ratios.update(limits)
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")

    report = {
        "smiles": smiles,
        "passed_over": passed_over,
        "settings": {k: str(v) for k, v in vars(args).items()},
        "hardware": f"{platform.platform()}, torch {torch.__version__}, "
        + (torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{torch.get_num_threads()} threads"),
        "rows": rows,
        "ratios": ratios,
    }
    args.output.write_text(json.dumps(report, indent=2))
    print(f"written: {args.output}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
