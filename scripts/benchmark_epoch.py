#!/usr/bin/env python
"""Where a finetuning epoch's time goes: data, forward, backward, optimizer, evaluation, checkpointing.

    python scripts/benchmark_epoch.py --train_file bbbp.csv --label_columns p_np --epochs 3
    python scripts/benchmark_epoch.py --train_file lipophilicity.csv --label_columns logD --threads 1

Runs the real `moleblend finetune` (one seed, the library's defaults unless given) with a Trainer callback and
forward hooks that time each phase of every step; prints a table and writes OUTPUT_DIR/epoch_profile.json.
The first epoch is reported apart (it includes featurization and warm-up). Compare with chemprop by timing its
`chemprop train` on the same rows (shared/tools/run_baselines.py records the wall time of 50 epochs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from modeling_moleblend.training.finetuning import FinetuneArguments, finetune

PHASES = ("data", "forward", "backward", "optimizer", "evaluation", "checkpoint", "other")


class EpochProfiler(TrainerCallback):
    """Wall time per phase and epoch. Forward = model forward (loss included); backward = forward end to the
    optimizer step (gradient clipping included); data = the gap between one step's end and the next forward."""

    def __init__(self):
        self.epochs: list[dict[str, float]] = []
        self.current: dict[str, float] = {}
        self.marks: dict[str, float] = {}
        self.handles = []

    def _add(self, phase: str, since: str) -> None:
        now = time.perf_counter()
        if since in self.marks:
            self.current[phase] = self.current.get(phase, 0.0) + now - self.marks[since]

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def before(module, inputs):
            if module.training:
                self._add("data", "step_end")
                self.marks["forward"] = time.perf_counter()

        def after(module, inputs, output):
            if module.training:
                self._add("forward", "forward")
                self.marks["backward"] = time.perf_counter()

        self.handles = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.current = {}
        self.marks = {"step_end": time.perf_counter(), "epoch": time.perf_counter()}

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self._add("backward", "backward")
        self.marks["optimizer"] = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._add("optimizer", "optimizer")
        self.marks["step_end"] = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.marks["evaluation"] = time.perf_counter()
        self.current["train"] = time.perf_counter() - self.marks["epoch"]

    def on_evaluate(self, args, state, control, **kwargs):
        self._add("evaluation", "evaluation")
        self.marks["checkpoint"] = time.perf_counter()

    def on_save(self, args, state, control, **kwargs):
        self._add("checkpoint", "checkpoint")
        self.current["total"] = time.perf_counter() - self.marks["epoch"]
        self.current["other"] = self.current["total"] - sum(self.current.get(p, 0.0) for p in PHASES[:-1])
        self.epochs.append(self.current)

    def on_train_end(self, args, state, control, **kwargs):
        for handle in self.handles:
            handle.remove()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train_file", required=True)
    p.add_argument("--label_columns", nargs="+", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--config_overrides", default=None)
    p.add_argument("--output_dir", type=Path, default=Path("outputs/benchmark_epoch"))
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    profiler = EpochProfiler()
    started = time.perf_counter()
    result = finetune(
        FinetuneArguments(
            train_file=a.train_file,
            label_columns=a.label_columns,
            seeds=[0],
            num_train_epochs=a.epochs,
            early_stopping_patience=0,
            per_device_train_batch_size=a.batch_size,
            baseline_estimators=0,
            config_overrides=a.config_overrides,
            output_dir=a.output_dir,
            overwrite_output_dir=True,
            quiet=True,
        ),
        callbacks=[profiler],
    )
    later = profiler.epochs[1:] or profiler.epochs
    summary = {phase: statistics.median(e.get(phase, 0.0) for e in later) for phase in (*PHASES, "total")}
    report = {
        "train_file": str(a.train_file),
        "train_molecules": result.data["split"]["sizes"]["train"],
        "batch_size": a.batch_size,
        "threads": torch.get_num_threads(),
        "epochs": profiler.epochs,
        "median_after_first_epoch_s": summary,
        "wall_time_s": time.perf_counter() - started,
    }
    a.output_dir.mkdir(parents=True, exist_ok=True)
    (a.output_dir / "epoch_profile.json").write_text(json.dumps(report, indent=2))
    total = summary["total"]
    print(f"{a.train_file}: {report['train_molecules']} training molecules, batch {a.batch_size}, "
          f"{report['threads']} threads; seconds per epoch (median of epochs 2..{len(profiler.epochs)}):")  # fmt: skip
    for phase in (*PHASES, "total"):
        print(f"  {phase:<11} {summary[phase]:7.2f} s  {100 * summary[phase] / total:5.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
