"""The paper's three experiments and the objective options, one command each (``moleblend experiment ablation |
blend-ratio | modality | objective``).

Every arm is pretrained on the same corpus with the same steps, batch size and seed (the arms differ only in the
objective's config fields), then finetuned on every task of the same panel with the same recipe, split and seeds.
The table holds, per task and arm, validation and test (mean +- std over the seeds). Arms are compared on
**validation only**: the score of an arm is the mean over tasks of its relative improvement over "no
pretraining" (lower-is-better metrics: (reference - arm) / reference; ROC-AUC and PR-AUC: (arm - reference) /
reference). The test column is reported beside it, never used to choose.

* ablation: no pretraining; full MoleBLEND; without the shortest-path relation; without the bond-path (edge)
  relation; without 3D. Removing a relation sets its blending probability to 0 (the others rescaled) and its
  loss weight to 0; finetuning is identical for every arm.
* blend-ratio: no pretraining and four (p_spd, p_edge, p_3d): the paper's (0.2, 0.2, 0.6), uniform, 2D-heavy
  (0.4, 0.4, 0.2), 3D-heavy (0.1, 0.1, 0.8).
* modality: no pretraining and full MoleBLEND, each finetuned with 2d, 3d and 2d3d input. All arms score the
  same rows: a molecule whose conformer cannot be made keeps its row with no 3D (``conformer_fallback="2d"``;
  in the 3d arm it then has no structural input), so no arm drops a test molecule the others keep.
* objective: no pretraining; the paper's objective (our defaults: per-molecule symmetric blend masks, distance
  target); the reference code's mode (``blend_mask_mode="per_batch"``, direction target); scoring only the pairs
  that hid each relation; the paper's objective plus the descriptor head (standardised RDKit 2D descriptors
  regressed from the graph token, weight 1; ``moleblend pretrain --descriptor_loss_weight``).

Budgets (``--budget``): ``tiny`` (seconds; what the tests run), ``cpu`` (a 2-core session: small preset, 1,000
pretraining updates of 64 molecules, 3 seeds, 30 epochs; the ablation on ESOL and FreeSolv took 32 min in two
processes), ``gpu`` (one accelerator: 50,000 updates of 256).
Every piece is resumable: an arm whose pretraining or finetuning finished is kept, a killed pretraining continues
from its latest checkpoint, a killed finetuning from its last epoch. Processes can share an experiment: each arm
runs under a file lock, so the same command started N times (one thread each) runs N arms at a time.

Outputs in OUTPUT_DIR: ``experiment.json`` and ``experiment.md`` (the table and the decision), ``experiment.png``
(validation and test score per arm), ``arms/ARM/pretrained/`` and ``arms/ARM/TASK[_MODALITY]/`` (each a normal
pretraining or finetuning output folder).
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..data import QM9_SAMPLE, InputError
from ..files import write_json_atomic
from .common import hardware_description, option, required_option, set_quiet
from .finetuning import FinetuneArguments, FinetuneResult, finetune

logger = logging.getLogger(__name__)

EXPERIMENTS = ("ablation", "blend-ratio", "modality", "objective")
NO_PRETRAINING = "no_pretraining"
HIGHER_IS_BETTER = ("roc_auc", "pr_auc")


@dataclass(frozen=True)
class Budget:
    """How much each arm gets; the same for every arm of an experiment."""

    pretrain_steps: int
    pretrain_batch_size: int
    max_train_samples: int | None
    config_overrides: str | None  # the architecture (on top of the small preset), pretraining and scratch alike
    finetune_epochs: float
    seeds: tuple[int, ...]
    patience: int
    finetune_batch_size: int = 32


BUDGETS: dict[str, Budget] = {
    "tiny": Budget(
        4,
        8,
        48,
        "hidden_size=32,num_hidden_layers=2,num_attention_heads=4,intermediate_size=64,num_kernels=16",
        1,
        (0,),
        0,
        16,
    ),  # fmt: skip
    "cpu": Budget(1000, 64, None, None, 30, (0, 1, 2), 10),
    "gpu": Budget(50000, 256, None, None, 50, (0, 1, 2), 10),
}


def _ratios(spd: float, edge: float, three_d: float) -> dict:
    return {"blend_spd_probability": spd, "blend_edge_probability": edge, "blend_3d_probability": three_d}


# experiment -> arm -> the pretraining config fields that differ from the defaults (None: no pretraining)
PRETRAINING_ARMS: dict[str, dict[str, dict | None]] = {
    "ablation": {
        NO_PRETRAINING: None,
        "full": {},
        "no_spd": {**_ratios(0.0, 0.25, 0.75), "spd_loss_weight": 0.0},
        "no_edge": {**_ratios(0.25, 0.0, 0.75), "edge_loss_weight": 0.0},
        "no_3d": {
            **_ratios(0.5, 0.5, 0.0),
            "blend_degree_probability": 1.0,
            "blend_atom_3d_probability": 0.0,
            "distance_loss_weight": 0.0,
            "denoise_loss_weight": 0.0,
        },  # fmt: skip
    },
    "blend-ratio": {
        NO_PRETRAINING: None,
        "paper_0.2_0.2_0.6": {},
        "uniform": _ratios(1 / 3, 1 / 3, 1 / 3),
        "2d_heavy_0.4_0.4_0.2": _ratios(0.4, 0.4, 0.2),
        "3d_heavy_0.1_0.1_0.8": _ratios(0.1, 0.1, 0.8),
    },
    "modality": {NO_PRETRAINING: None, "full": {}},
    "objective": {
        NO_PRETRAINING: None,
        "paper": {},
        "reference_per_batch_direction": {"blend_mask_mode": "per_batch", "target_3d": "direction"},
        "hidden_pairs_only": {"score_hidden_pairs_only": True},
        "descriptors": {"descriptor_loss_weight": 1.0},
    },
}
PRETRAIN_OPTIONS = ("descriptor_loss_weight",)  # arm fields passed to `moleblend pretrain` as options, not config
FINETUNE_MODALITIES = ("2d", "3d", "2d3d")


@dataclass(kw_only=True)
class ExperimentArguments:
    """``moleblend experiment``'s options."""

    experiment: str = required_option("which experiment (positional on the command line)", "experiment",
                                      choices=EXPERIMENTS)  # fmt: skip
    tasks: list[str] = required_option(
        "the finetuning panel: NAME=FILE:LABEL[,LABEL] (CSV, SDF...; the same split for every arm)", "experiment",
        nargs="+",
    )  # fmt: skip
    corpus: Path | None = option(None, "pretraining molecules (default: the embedded QM9 sample, 3D)", "experiment")
    smiles_column: str = option("smiles", "SMILES column of a CSV corpus", "experiment")
    budget: str = option("cpu", "tiny (the tests), cpu (a 2-core session), gpu", "experiment",
                         choices=tuple(BUDGETS))  # fmt: skip
    seeds: list[int] | None = option(None, "finetuning seeds (default: the budget's)", "experiment", nargs="+")
    pretrain_steps: int | None = option(None, "pretraining updates per arm (default: the budget's)", "experiment")
    pretrain_seed: int = option(42, "pretraining seed, the same for every arm", "experiment")
    finetune_modality: str = option("2d", "input of the finetuning (ablation, blend-ratio)", "experiment",
                                    choices=FINETUNE_MODALITIES)  # fmt: skip
    split: str = option("scaffold", "finetuning split", "experiment", choices=("scaffold", "random"))
    arms: list[str] | None = option(None, "run only these arms (default: all)", "experiment", nargs="+")
    num_workers: int | None = option(None, "conformer-generation processes (default: all cores)", "experiment")
    output_dir: Path = required_option("where every arm's folders and the table go", "output")
    quiet: bool = option(False, "no progress bars", "output")


@dataclass
class ExperimentResult:
    experiment: str
    budget: dict
    arms: list[str]
    tasks: list[dict]
    table: list[dict]  # one row per (arm, task): validation and test mean/std, the metric
    scores: dict  # arm -> {"validation": relative improvement, "test": ...}
    chosen: str | None
    wall_time_s: float
    hardware: str
    notes: list[str] = field(default_factory=list)


def parse_task(spec: str) -> dict:
    """ "NAME=FILE:LABEL[,LABEL]" -> {"name", "file", "labels"}."""
    name, sep, rest = spec.partition("=")
    file, colon, labels = rest.rpartition(":")
    if not (sep and colon and name and file and labels):
        raise InputError(f"--tasks: {spec!r} is not NAME=FILE:LABEL[,LABEL]")
    if not Path(file).exists():
        raise InputError(f"--tasks: {spec!r}: no such file {file}")
    return {"name": name, "file": file, "labels": labels.split(",")}


def relative_improvement(metric: str, value: float, reference: float) -> float:
    """Positive = better than the reference, as a fraction of it."""
    if not reference:
        return math.nan
    return (value - reference) / abs(reference) if metric in HIGHER_IS_BETTER else (reference - value) / abs(reference)


def _overrides_text(fields: Mapping) -> str:
    """The ``--config_overrides`` text of ``fields`` (numbers only in the arms)."""
    return ",".join(f"{k}={v}" for k, v in fields.items())


def pretrain_arm(args: ExperimentArguments, budget: Budget, fields: dict, out: Path) -> Path:
    """Pretrains one arm (in its own process: each pretraining owns its accelerate state) unless it finished."""
    if (out / "all_results.json").is_file():
        done = json.loads((out / "all_results.json").read_text()).get("training", {}).get("completed_steps")
        # a resumed experiment must not mix arms of different budgets (folders of old versions: not recorded)
        if done is not None and done != budget.pretrain_steps:
            raise InputError(f"{out} was pretrained for {done} updates, this run asks for {budget.pretrain_steps}; "
                             "use another --output_dir or the same --budget/--pretrain_steps")  # fmt: skip
        return out
    options = {name: fields[name] for name in PRETRAIN_OPTIONS if name in fields}
    fields = {name: value for name, value in fields.items() if name not in options}
    overrides = ",".join(filter(None, [budget.config_overrides, _overrides_text(fields)]))
    command = [sys.executable, "-m", "modeling_moleblend.cli", "pretrain", "--train_file",
               str(args.corpus or QM9_SAMPLE), "--config_name", "small", "--max_train_steps",
               str(budget.pretrain_steps), "--per_device_train_batch_size", str(budget.pretrain_batch_size),
               "--seed", str(args.pretrain_seed), "--output_dir", str(out), "--resume_from_checkpoint", "latest",
               "--smiles_column", args.smiles_column,
               "--checkpointing_steps", str(max(budget.pretrain_steps // 10, 1)), "--save_total_limit", "1",
               "--data_cache_dir", str(out.parent.parent / "corpus_featurized")]  # fmt: skip
    command += ["--config_overrides", overrides] if overrides else []
    command += [item for name, value in options.items() for item in (f"--{name}", str(value))]
    command += ["--max_train_samples", str(budget.max_train_samples)] if budget.max_train_samples else []
    command += ["--num_workers", str(args.num_workers)] if args.num_workers is not None else []
    command += ["--quiet"] if args.quiet else []
    logger.info("pretraining %s", out.parent.name)
    completed = subprocess.run(command, capture_output=args.quiet, text=True)
    if completed.returncode == 2:  # the command's exit status for an input error: the user's to fix, not a crash
        raise InputError(
            f"pretraining the arm {out.parent.name} ({out}) refused its input"
            + (f": {completed.stderr.strip()[-2000:]}" if completed.stderr else " (the reason is above)")
        )
    if completed.returncode != 0:
        raise RuntimeError(f"pretraining {out} failed (exit {completed.returncode}): "
                           f"{(completed.stderr or '')[-2000:]}")  # fmt: skip
    return out


def finetune_arm(args, budget: Budget, start: Path | None, task: dict, modality: str, out: Path) -> FinetuneResult:
    """Finetunes one (arm, task, modality) with the experiment's recipe; a finished one is loaded."""
    if (out / FinetuneResult.RESULTS_NAME).is_file():
        return FinetuneResult.load(out)
    return finetune(
        FinetuneArguments(
            train_file=task["file"],
            label_columns=task["labels"],
            split=args.split,
            model_name_or_path=str(start) if start else None,
            config_name="small",
            config_overrides=None if start else budget.config_overrides,
            from_scratch=start is None,
            input_modality=modality,
            conformer_fallback="2d",  # every arm keeps every row (see the module docs)
            seeds=list(args.seeds or budget.seeds),
            num_train_epochs=budget.finetune_epochs,
            per_device_train_batch_size=budget.finetune_batch_size,
            early_stopping_patience=budget.patience,
            baseline_estimators=0,
            num_workers=args.num_workers,
            data_cache_dir=args.output_dir / "featurized" / f"{task['name']}_{modality}",
            output_dir=out,
            resume=out.exists(),
            quiet=args.quiet,
        )
    )


def run_experiment(args: ExperimentArguments) -> ExperimentResult:
    """Pretrain every arm, finetune it on every task, tabulate, choose on validation; writes the outputs."""
    set_quiet(args.quiet)
    started = time.perf_counter()
    budget = BUDGETS[args.budget]
    if args.pretrain_steps is not None:
        if args.pretrain_steps < 1:
            raise InputError(f"--pretrain_steps must be at least 1, got {args.pretrain_steps}")
        budget = replace(budget, pretrain_steps=args.pretrain_steps)
    tasks = [parse_task(spec) for spec in args.tasks]
    if args.corpus is not None:  # a wrong column fails here, not in the first arm's pretraining
        from ..data import read_molecule_table

        read_molecule_table(args.corpus, args.smiles_column)
    all_arms = PRETRAINING_ARMS[args.experiment]
    unknown = sorted(set(args.arms or ()) - set(all_arms))
    if unknown:
        raise InputError(f"--arms: unknown arm(s) {unknown} for {args.experiment}; choose from {sorted(all_arms)}")
    arms = [arm for arm in all_arms if not args.arms or arm in args.arms or arm == NO_PRETRAINING]
    modalities = FINETUNE_MODALITIES if args.experiment == "modality" else (args.finetune_modality,)
    out = Path(args.output_dir)

    def run_arm(arm: str) -> list[dict]:
        fields = all_arms[arm]
        start = None
        if fields is not None:
            start = pretrain_arm(args, budget, fields, out / "arms" / arm / "pretrained")
        arm_rows = []
        for task in tasks:
            for modality in modalities:
                name = task["name"] if len(modalities) == 1 else f"{task['name']}_{modality}"
                result = finetune_arm(args, budget, start, task, modality, out / "arms" / arm / name)
                metric = result.selection_metric
                arm_rows.append({
                    "arm": f"{arm}/{modality}" if len(modalities) > 1 else arm, "task": task["name"],
                    "modality": modality, "metric": metric,
                    **{f"{part}_{stat}": result.aggregate[part][metric][stat]
                       for part in ("validation", "test") for stat in ("mean", "std")},
                    "test_rows": result.data["split"]["sizes"]["test"],
                    "folder": str(out / "arms" / arm / name),
                })  # fmt: skip
        return arm_rows

    by_arm = run_arms_in_turn(arms, out, run_arm)
    rows, test_rows = [], {}
    for arm in arms:
        for row in by_arm[arm]:
            test_rows.setdefault(row["task"], set()).add(_test_rows(Path(row.pop("folder"))))
            rows.append(row)
    notes = [f"{task}: the arms score different test rows" for task, kept in test_rows.items() if len(kept) > 1]
    reference = NO_PRETRAINING if len(modalities) == 1 else f"{NO_PRETRAINING}/{modalities[0]}"
    scores = score_arms(rows, reference)
    candidates = {arm: s for arm, s in scores.items() if arm != reference and math.isfinite(s["validation"])}
    chosen = max(candidates, key=lambda arm: candidates[arm]["validation"]) if candidates else None
    result = ExperimentResult(
        experiment=args.experiment,
        budget={
            "name": args.budget,
            **asdict(budget),
            "seeds": list(args.seeds or budget.seeds),
            "corpus": str(args.corpus or QM9_SAMPLE),
        },
        arms=list(dict.fromkeys(row["arm"] for row in rows)),
        tasks=tasks,
        table=rows,
        scores=scores,
        chosen=chosen,
        wall_time_s=time.perf_counter() - started,
        hardware=hardware_description(),
        notes=notes,
    )
    write_outputs(result, out)
    return result


def run_arms_in_turn(arms: list[str], out: Path, run_arm) -> dict[str, list]:
    """``{arm: run_arm(arm)}``, each arm run under its own file lock (``arms/ARM/.lock``).

    So several processes can share one experiment: started with the same command, each takes the next arm no
    other process holds, and once every free arm is taken waits for the busy ones, which it then only reads
    (finished pieces are loaded, not recomputed). One process alone runs the arms in order.
    """
    from filelock import FileLock, Timeout

    results, busy = {}, []
    for blocking in (False, True):
        for arm in busy if blocking else arms:
            folder = out / "arms" / arm
            folder.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(folder / ".lock"))
            try:
                lock.acquire(timeout=-1 if blocking else 0)
            except Timeout:
                logger.info("arm %s is being run by another process; taking the next one", arm)
                busy.append(arm)
                continue
            try:
                results[arm] = run_arm(arm)
            finally:
                lock.release()
    return results


def _test_rows(folder: Path) -> tuple[int, ...]:
    """The input rows the folder's test predictions are for (the same split gives the same rows)."""
    import csv

    with open(folder / "predictions_test.csv", newline="") as handle:
        return tuple(int(row["row"]) for row in csv.DictReader(handle))


def score_arms(rows: list[dict], reference: str) -> dict:
    """arm -> {"validation", "test"}: the mean over tasks of the relative improvement over ``reference``."""
    by = {(row["arm"], row["task"]): row for row in rows}
    scores = {}
    for arm in dict.fromkeys(row["arm"] for row in rows):
        score = {}
        for part in ("validation", "test"):
            values = [relative_improvement(row["metric"], row[f"{part}_mean"], by[(reference, row["task"])][
                f"{part}_mean"]) for row in rows if row["arm"] == arm and (reference, row["task"]) in by]  # fmt: skip
            score[part] = sum(values) / len(values) if values else math.nan
        scores[arm] = score
    return scores


def write_outputs(result: ExperimentResult, out: Path) -> None:
    from ..evaluation.plots import plot_arm_scores

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "experiment.json", asdict(result))
    tasks = [task["name"] for task in result.tasks]
    lines = [f"# moleblend experiment {result.experiment} (budget {result.budget['name']})", "",
             f"Corpus {result.budget['corpus']}; {result.budget['pretrain_steps']} pretraining updates of "
             f"{result.budget['pretrain_batch_size']} molecules per arm; finetuning seeds {result.budget['seeds']}, "
             f"{result.budget['finetune_epochs']} epochs at most. Validation / test, mean +- std over the seeds. "
             "Score: mean over tasks of the relative improvement over no pretraining (validation decides).", "",
             "| arm | " + " | ".join(tasks) + " | score (validation) | score (test) |",
             "|---" * (len(tasks) + 3) + "|"]  # fmt: skip
    cells = {(row["arm"], row["task"]): row for row in result.table}
    for arm in result.arms:
        entries = []
        for task in tasks:
            row = cells.get((arm, task))
            entries.append("" if row is None else f"{row['validation_mean']:.3f} +- {row['validation_std']:.3f} / "
                           f"{row['test_mean']:.3f} +- {row['test_std']:.3f} ({row['metric']})")  # fmt: skip
        score = result.scores.get(arm, {})
        name = f"**{arm}**" if arm == result.chosen else arm
        lines.append(f"| {name} | " + " | ".join(entries) + f" | {100 * score.get('validation', math.nan):+.1f}% | "
                     f"{100 * score.get('test', math.nan):+.1f}% |")  # fmt: skip
    lines += ["", f"Chosen on validation: {result.chosen}.", *[f"Note: {note}" for note in result.notes]]
    (out / "experiment.md").write_text("\n".join(lines) + "\n")
    plot_arm_scores(result.scores, out / "experiment.png", f"{result.experiment} ({result.budget['name']})")
