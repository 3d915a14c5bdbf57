#!/usr/bin/env python
"""Tabulate finetuning panels side by side and score each against a reference arm (run by hand).

    python scripts/compare_panels.py --reference scratch=docs/results/scratch_panel.json \\
        --arm builtin_small=docs/results/pretrained_small/panel_pretrained.json --arm more=runs/panel/paper \\
        --output docs/results/panels.json --plot docs/results/panels.png

An arm is a panel JSON (``{task: results.json contents}``) or a folder of `scripts/benchmark_finetune.py`
outputs (every ``*/TASK_2d/results.json`` under it). The score is the experiments' rule: the mean over tasks of the
relative improvement over the reference, on validation (what decides) and on test (reported).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from modeling_moleblend.training.experiments import relative_improvement

TASKS = ("esol", "freesolv", "bbbp", "lipophilicity")


def load_panel(path: Path) -> dict[str, dict]:
    """task -> the finetune ``results.json`` of that task."""
    if path.is_file():
        return json.loads(path.read_text())
    panel = {}
    for results in sorted(path.glob("**/*_2d/results.json")):
        panel[results.parent.name.removesuffix("_2d")] = json.loads(results.read_text())
    return panel


def metric_of(results: dict) -> str:
    return "roc_auc" if "roc_auc" in results["aggregate"]["validation"] else "rmse"


def summarise(panels: dict[str, dict], reference: str) -> dict:
    """arm -> {task: {metric, validation/test mean and std}, "score": {validation, test}}."""
    out = {}
    for arm, panel in panels.items():
        entry, gains = {}, {"validation": [], "test": []}
        for task in TASKS:
            if task not in panel:
                continue
            metric = metric_of(panel[task])
            cell = {"metric": metric}
            for part in ("validation", "test"):
                stats = panel[task]["aggregate"][part][metric]
                cell[part] = {"mean": stats["mean"], "std": stats["std"]}
                if task in panels[reference]:
                    ref = panels[reference][task]["aggregate"][part][metric]["mean"]
                    gains[part].append(relative_improvement(metric, stats["mean"], ref))
            entry[task] = cell
        entry["score"] = {part: sum(v) / len(v) if v else None for part, v in gains.items()}
        entry["tasks_scored"] = len(gains["validation"])
        out[arm] = entry
    return out


def markdown(summary: dict) -> str:
    lines = ["| arm | " + " | ".join(TASKS) + " | score validation | score test |", "|---" * (len(TASKS) + 3) + "|"]
    for arm, entry in summary.items():
        cells = []
        for task in TASKS:
            cell = entry.get(task)
            cells.append(
                ""
                if cell is None
                else f"{cell['validation']['mean']:.3f} +- {cell['validation']['std']:.3f} / "
                f"{cell['test']['mean']:.3f} +- {cell['test']['std']:.3f}"
            )
        score = entry["score"]
        fmt = lambda v: "" if v is None else f"{100 * v:+.1f}%"  # noqa: E731
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {fmt(score['validation'])} | {fmt(score['test'])} |")
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    """One panel per task: each arm's validation and test mean +- std (the metric's direction in the title)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if any(t in entry for entry in summary.values())]
    arms = list(summary)
    figure, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        metric = next(entry[task]["metric"] for entry in summary.values() if task in entry)
        for offset, part in ((-0.2, "validation"), (0.2, "test")):
            x = [i + offset for i, arm in enumerate(arms) if task in summary[arm]]
            cells = [summary[arm][task][part] for arm in arms if task in summary[arm]]
            ax.bar(x, [c["mean"] for c in cells], 0.4, yerr=[c["std"] for c in cells], label=part, capsize=3)
        low = min(summary[a][task][p]["mean"] - summary[a][task][p]["std"] for a in arms if task in summary[a]
                  for p in ("validation", "test"))  # fmt: skip
        ax.set_ylim(bottom=max(0.0, 0.9 * low))
        ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
        ax.set_title(f"{task} ({metric}, {'higher' if metric == 'roc_auc' else 'lower'} is better)", fontsize=9)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", required=True, help="NAME=PATH of the arm the others are scored against")
    p.add_argument("--arm", action="append", default=[], help="NAME=PATH (repeat)")
    p.add_argument("--output", type=Path, default=None, help="write the summary as JSON here")
    p.add_argument("--plot", type=Path, default=None, help="write a bar chart (PNG) here")
    args = p.parse_args(argv)
    specs = [args.reference, *args.arm]
    panels = {spec.split("=", 1)[0]: load_panel(Path(spec.split("=", 1)[1])) for spec in specs}
    summary = summarise(panels, args.reference.split("=", 1)[0])
    print(markdown(summary))
    if args.output:
        args.output.write_text(json.dumps(summary, indent=2))
    if args.plot:
        plot(summary, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
