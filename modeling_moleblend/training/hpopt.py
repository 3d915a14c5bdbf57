"""Hyper-parameter search on validation with Optuna (TPE sampler, median pruning on the per-epoch validation
metric), then the best configuration retrained with the requested seeds and evaluated once on test.

    from modeling_moleblend.training.hpopt import HpoptArguments, hpopt

    result = hpopt(HpoptArguments(train_file="data.csv", label_columns=["y"], output_dir="search/", n_trials=20))

The study lives in ``OUTPUT_DIR/study.sqlite3``: a killed search resumes where it stopped (finished trials are
kept; a trial that was running is marked failed once its heartbeat is stale, and the budget counts only finished
trials), and several processes given the same ``OUTPUT_DIR`` share the study. Each trial is ``finetune`` without
the forest baseline, in ``OUTPUT_DIR/trials/trial_N``, with one seed (``--trial_seed``) or several
(``--trial_seeds``: the trial's value is their mean validation metric, so that the search selects configurations
rather than lucky seeds; pruning follows the first seed's curve); every trial reads the same featurized-data cache.
The test split is touched only by the final run (``OUTPUT_DIR/best``).

Outputs: ``trials.csv`` / ``trials.json`` (number, state, parameters, validation metric, seconds),
``optimization_history.png``, ``best_params.json``, and ``best/`` (a full finetuning run whose card states the
chosen configuration and the search budget).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from transformers import TrainerCallback

from ..data import InputError
from ..files import write_json_atomic
from .common import option
from .finetuning import FinetuneArguments, FinetuneResult, finetune

logger = logging.getLogger(__name__)

# name -> {"low", "high", "log"} (float), {"low", "high", "step"} (int) or {"choices": [...]}; a plain value fixes it
DEFAULT_SEARCH_SPACE: dict[str, dict] = {
    "learning_rate": {"low": 1e-5, "high": 3e-3, "log": True},
    "dropout": {"low": 0.0, "high": 0.3},
    "weight_decay": {"low": 1e-4, "high": 0.1, "log": True},
    "warmup_ratio": {"low": 0.0, "high": 0.2},
    "per_device_train_batch_size": {"choices": [16, 32, 64]},
    "hidden_size": {"choices": [64, 128, 256]},
    "num_hidden_layers": {"choices": [2, 4, 6]},
    "readout": {"choices": ["graph_token", "mean", "graph_token+mean"]},
    "num_train_epochs": {"low": 10, "high": 50, "step": 10},
}
ARCHITECTURE = ("hidden_size", "num_hidden_layers")  # go into --config_overrides


@dataclass(kw_only=True)
class HpoptArguments(FinetuneArguments):
    """A finetuning run's settings (the fixed part) plus the search's."""

    n_trials: int = option(20, "finished trials (complete or pruned) to reach, over every run of the study", "search")
    timeout_minutes: float | None = option(
        None, "stop starting trials after this many minutes (this process)", "search"
    )
    search_space: str | None = option(
        None, "JSON (a file or inline) that narrows the space: name -> {low, high, log} / {choices} / a fixed value "
        "/ null (not searched); see the module docs for the default space", "search",
    )  # fmt: skip
    trial_seed: int = option(0, "the seed of every trial's model (the final run uses --seeds)", "search")
    trial_seeds: list[int] | None = option(
        None, "several seeds per trial instead: the trial's value is their mean validation metric (selects "
        "configurations, not lucky seeds; costs one run per seed; pruning follows the first seed)", "search",
        nargs="+",
    )  # fmt: skip
    pruning: bool = option(True, "median pruning on the per-epoch validation metric", "search")
    study_name: str = option("moleblend", "the study's name in OUTPUT_DIR/study.sqlite3", "search")


@dataclass
class HpoptResult:
    best_params: dict
    best_value: float
    metric: str
    trials: list[dict]
    final: FinetuneResult


def search_space(text: str | None) -> dict:
    """The default space with the user's JSON (a path or inline) applied."""
    space = {k: dict(v) for k, v in DEFAULT_SEARCH_SPACE.items()}
    if not text:
        return space
    path = Path(text)
    try:
        given = json.loads(path.read_text() if path.is_file() else text)
    except json.JSONDecodeError as error:
        raise InputError(f"--search_space: not JSON ({error})") from error
    unknown = set(given) - set(space) - set(FinetuneArguments.__dataclass_fields__)
    if unknown:
        raise InputError(f"--search_space: unknown parameters {sorted(unknown)}; searchable: {sorted(space)}")
    for name, spec in given.items():
        if spec is None:
            space.pop(name, None)
        else:
            space[name] = spec if isinstance(spec, dict) else {"fixed": spec}
    return space


def suggest(trial, space: dict) -> dict:
    params = {}
    for name, spec in space.items():
        if "fixed" in spec:
            params[name] = spec["fixed"]
        elif "choices" in spec:
            params[name] = trial.suggest_categorical(name, spec["choices"])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int) and not spec.get("log"):
            params[name] = trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1))
        else:
            params[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec.get("log", False))
    return params


def arguments_for(base: HpoptArguments, params: dict, output_dir: Path, seeds: list[int], baseline: int):
    """The finetuning arguments of a trial (or of the final run) with ``params`` applied."""
    fields = {k: v for k, v in asdict(base).items() if k in FinetuneArguments.__dataclass_fields__}
    overrides = [part for part in (base.config_overrides or "").split(",") if part.strip()]
    for name in ARCHITECTURE:
        if name in params:
            overrides.append(f"{name}={params[name]}")
    if "hidden_size" in params:
        overrides.append(f"intermediate_size={2 * params['hidden_size']}")
    fields.update({k: v for k, v in params.items() if k not in ARCHITECTURE})
    fields.update(
        output_dir=output_dir, seeds=seeds, baseline_estimators=baseline, config_overrides=",".join(overrides) or None,
        data_cache_dir=base.data_cache_dir or Path(base.output_dir) / "featurized", quiet=True, resume=False,
        overwrite_output_dir=True, push_to_hub=False,
    )  # fmt: skip
    return FinetuneArguments(**fields)


class PruningCallback(TrainerCallback):
    """Reports the validation metric after each epoch to the trial and stops the run when Optuna prunes it."""

    def __init__(self, trial, metric: str, seed: int | None = None):
        self.trial, self.metric, self.seed = trial, metric, seed  # seed: report only that seed's run

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        import optuna

        if self.seed is not None and args.seed != self.seed:
            return
        value = (metrics or {}).get(f"eval_{self.metric}")
        if value is None or math.isnan(value):
            return
        self.trial.report(value, step=int(round(state.epoch)))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {state.epoch:g}")


def hpopt(args: HpoptArguments, callbacks=()) -> HpoptResult:
    """Search, then retrain the best configuration (see the module docstring)."""
    import optuna

    args.check()
    space = search_space(args.search_space)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{out / 'study.sqlite3'}",
        heartbeat_interval=60,
        grace_period=180,
        engine_kwargs={"connect_args": {"timeout": 60}},
    )
    classification = _is_classification(args)
    metric = args.metric_for_best_model or ("roc_auc" if classification else "rmse")
    direction = "maximize" if metric in ("roc_auc", "pr_auc") else "minimize"
    study = optuna.create_study(
        study_name=args.study_name,
        storage=storage,
        load_if_exists=True,
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=args.trial_seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=3)
        if args.pruning
        else optuna.pruners.NopPruner(),
    )
    study.set_user_attr("metric", metric)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

    def objective(trial) -> float:
        params = suggest(trial, space)
        started = time.perf_counter()
        seeds = _trial_seeds(args)
        trial_args = arguments_for(args, params, out / "trials" / f"trial_{trial.number}", seeds, 0)
        result = finetune(trial_args, callbacks=[PruningCallback(trial, metric, seeds[0]), *callbacks])
        trial.set_user_attr("seconds", time.perf_counter() - started)
        value = result.aggregate["validation"][metric]["mean"]
        if value is None or math.isnan(value):
            raise optuna.TrialPruned("no validation metric")
        return value

    done = len(study.get_trials(states=finished))
    if done < args.n_trials:
        logger.warning("hpopt: %d of %d trials done, searching", done, args.n_trials)
        study.optimize(
            objective,
            n_trials=None,
            timeout=args.timeout_minutes * 60 if args.timeout_minutes else None,
            callbacks=[optuna.study.MaxTrialsCallback(args.n_trials, states=finished)],
            catch=(),
        )
    trials = write_trials(study, out)
    if not study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        raise InputError(f"{out}: no trial completed, so there is no best configuration (see trials.csv)")
    best = study.best_trial
    best_params = {**{k: v["fixed"] for k, v in space.items() if "fixed" in v}, **best.params}
    write_json_atomic(out / "best_params.json", {"params": best_params, "value": best.value, "metric": metric,
                                                  "trial": best.number})  # fmt: skip
    final_args = arguments_for(args, best_params, out / "best", list(args.seeds), args.baseline_estimators)
    final_args = replace(final_args, quiet=args.quiet, push_to_hub=args.push_to_hub)
    final = finetune(final_args)
    _write_final_card(final, best_params, metric, best.value, len(study.get_trials(states=finished)), args)
    return HpoptResult(best_params, best.value, metric, trials, final)


def _is_classification(args: HpoptArguments) -> bool:
    if args.problem_type != "auto":
        return args.problem_type == "classification"
    from ..data import infer_problem_type
    from .finetuning import read_training_table

    return infer_problem_type(read_training_table(args).labels) != "regression"


def write_trials(study, out: Path) -> list[dict]:
    """``trials.csv``, ``trials.json`` and ``optimization_history.png`` from the study as it stands."""
    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "seconds": t.user_attrs.get("seconds"),
            **{f"param_{k}": v for k, v in t.params.items()},
        }
        for t in study.trials
    ]
    write_json_atomic(out / "trials.json", trials)
    names = list(dict.fromkeys(k for t in trials for k in t))
    with open(out / "trials.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(trials)
    from ..evaluation.plots import plot_optimization_history

    plot_optimization_history(trials, out / "optimization_history.png", study.user_attrs.get("metric", "value"),
                              maximize=study.direction.name == "MAXIMIZE")  # fmt: skip
    return trials


def _write_final_card(final: FinetuneResult, params: dict, metric: str, value: float, n_trials: int, args) -> None:
    from ..hub import finetune_card
    from ..hub_card import write_model_card

    budget = f"{n_trials} finished trials" + (
        f", at most {args.timeout_minutes:g} minutes" if args.timeout_minutes else ""
    )
    card = finetune_card(final)
    card.training["Hyper-parameters"] = ", ".join(f"{k}={v}" for k, v in params.items())
    card.training["Hyper-parameter search"] = (
        f"Optuna TPE{' with median pruning' if args.pruning else ''} on validation {metric} ({budget}; best "
        f"trial {value:.4g}, {_trial_seeds_text(args)}); the chosen configuration retrained with seeds "
        f"{list(args.seeds)}"
    )
    write_model_card(Path(final.output_dir) / "model", card)


def _trial_seeds(args: HpoptArguments) -> list[int]:
    """The seeds every trial trains: --trial_seeds, else --trial_seed alone."""
    return list(args.trial_seeds or [args.trial_seed])


def _trial_seeds_text(args: HpoptArguments) -> str:
    seeds = _trial_seeds(args)
    return "one seed each" if len(seeds) == 1 else f"the mean of seeds {seeds} each"
