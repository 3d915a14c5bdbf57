#!/usr/bin/env python
"""Finetune MoleBlend on molecular property data with the transformers Trainer (MoleculeNet protocol).

    python scripts/finetune.py --train_file data.csv --smiles_column smiles --label_columns y1 y2 \\
        --split scaffold --seeds 0 1 2 --config_name small --output_dir out/
    python scripts/finetune.py --train_file actives.sdf --label_columns pIC50 --model_name_or_path pretrained/
    accelerate launch scripts/finetune.py ...        # the same script, on every device accelerate knows

Protocol: the split (scaffold 8:1:1 by default, deterministic) is computed once on the featurizable molecules and
written to OUTPUT_DIR/splits.json; every seed trains a model, keeps the epoch with the best validation metric
(RMSE for regression, ROC-AUC for classification), and reports test metrics at that epoch; the test split is
never used for selection. A random forest on Morgan fingerprints is trained on the same split as a baseline.

Outputs in OUTPUT_DIR: results.json (per seed and mean +- std), predictions_test.csv, learning_curve.png,
parity.png or roc.png, splits.json, featurization_report.json, seeds/seed_K/ (each seed's model) and model/ (the
seed with the best validation metric: save_pretrained + featurizer + model card README.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from modeling_moleblend.hub_card import CardInfo, MetricSummary, write_model_card
from transformers import EarlyStoppingCallback, Trainer, TrainingArguments, set_seed
from transformers.dynamic_module_utils import custom_object_save

from modeling_moleblend import (
    MOLEBLEND_PRESETS,
    MoleBlendCollator,
    MoleBlendConfig,
    MoleBlendFeaturizer,
    MoleBlendForPropertyPrediction,
)
from modeling_moleblend.baselines import random_forest_baseline
from modeling_moleblend.hub import add_hub_arguments, export_and_push
from modeling_moleblend.inference import predict_properties
from modeling_moleblend.metrics import aggregate_seeds, classification_metrics, regression_metrics
from modeling_moleblend.molecule_data import (
    FEATURE_COLUMNS,
    featurize_table,
    infer_problem_type,
    label_statistics,
    read_molecule_table,
)
from modeling_moleblend.plots import plot_learning_curve, plot_parity, plot_roc
from modeling_moleblend.splits import make_split

logger = logging.getLogger("finetune")
CLASSIFICATION = "multi_label_classification"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--train_file", required=True, help="CSV (.csv/.csv.gz), SDF (.sdf/.sdf.gz) or datasets folder")
    data.add_argument("--smiles_column", default="smiles")
    data.add_argument("--label_columns", nargs="+", required=True, help="CSV columns or SDF tags to predict")
    data.add_argument("--problem_type", default="auto", choices=["auto", "regression", "classification"])
    data.add_argument("--split", default="scaffold", choices=["scaffold", "random", "column"])
    data.add_argument("--split_column", default=None, help="with --split column: train/validation/test per row")
    data.add_argument("--split_fractions", nargs=3, type=float, default=[0.8, 0.1, 0.1])
    data.add_argument("--split_seed", type=int, default=0, help="for --split random (scaffold is deterministic)")
    data.add_argument(
        "--scaffold_ties",
        default="deepchem",
        choices=["deepchem", "ascending"],
        help="order of equal-size scaffold sets: deepchem's (default, MoleculeNet convention) or ascending index",
    )
    data.add_argument("--cache_dir", default=None, help="featurized-data cache (default: OUTPUT_DIR/../.cache)")

    model = p.add_argument_group("model")
    model.add_argument("--model_name_or_path", default=None, help="a MoleBlend folder or Hub id to start from")
    model.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of the model")
    model.add_argument("--config_name", default="small", choices=sorted(MOLEBLEND_PRESETS), help="preset (scratch)")
    model.add_argument("--input_modality", default=None, choices=["2d", "3d", "2d3d"], help="default: 2d (scratch)")
    model.add_argument("--conformer", default="auto", choices=["auto", "input", "generate", "none"])
    model.add_argument("--max_atoms", type=int, default=512)
    model.add_argument("--num_workers", type=int, default=None, help="conformer workers (default: all cores)")
    model.add_argument("--trust_remote_code", action="store_true")

    train = p.add_argument_group("training")
    train.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    train.add_argument("--num_train_epochs", type=float, default=50)
    train.add_argument("--learning_rate", type=float, default=1e-4)
    train.add_argument("--per_device_train_batch_size", type=int, default=32)
    train.add_argument("--per_device_eval_batch_size", type=int, default=64)
    train.add_argument("--warmup_ratio", type=float, default=0.06, help="fraction of steps for linear warm-up")
    train.add_argument("--weight_decay", type=float, default=0.01)
    train.add_argument("--early_stopping_patience", type=int, default=10, help="epochs; 0 = off")
    train.add_argument("--dropout", type=float, default=None, help="override attention/classifier dropout")
    train.add_argument("--baseline_estimators", type=int, default=500, help="random-forest trees (0 = no baseline)")
    train.add_argument("--output_dir", required=True, type=Path)
    train.add_argument("--overwrite_output_dir", action="store_true")
    train.add_argument("--quiet", action="store_true", help="no per-step progress bars")

    hub = add_hub_arguments(p, "hub (the shipped model/ folder is exported and pushed at the end)")
    hub.add_argument(
        "--hub_strategy",
        default="end",
        choices=["end", "every_save", "checkpoint", "all_checkpoints"],
        help="end: push only the selected model (default). Otherwise the Trainer also pushes each seed's saves "
        "to the branch seed-K as its hub_strategy does (those checkpoints include the Trainer's pickled state)",
    )
    args = p.parse_args(argv)
    if args.push_to_hub and not args.hub_model_id:
        p.error("--push_to_hub needs --hub_model_id")
    return args


# ---------------------------------------------------------------------------------------------------------- setup


def build_featurizer(args, modality: str) -> MoleBlendFeaturizer:
    from modeling_moleblend.tokenization.conformers_moleblend import default_num_workers

    conformer = "none" if modality == "2d" else args.conformer
    workers = default_num_workers() if args.num_workers is None else args.num_workers
    if args.model_name_or_path:
        try:
            featurizer = MoleBlendFeaturizer.from_pretrained(args.model_name_or_path, revision=args.revision)
            return MoleBlendFeaturizer(**{**featurizer.to_dict(), "conformer": conformer, "num_workers": workers})
        except OSError:
            logger.info("no featurizer saved with the model: using the default one")
    return MoleBlendFeaturizer(conformer=conformer, max_atoms=args.max_atoms, num_workers=workers, seed=0)


def base_config(args) -> MoleBlendConfig:
    if args.model_name_or_path:
        return MoleBlendConfig.from_pretrained(args.model_name_or_path, revision=args.revision)
    return MoleBlendConfig.from_preset(args.config_name, input_modality=args.input_modality or "2d")


def task_config(args, config: MoleBlendConfig, problem_type, label_names, train_labels) -> MoleBlendConfig:
    updates = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
        "problem_type": problem_type,
        "target_mean": None,
        "target_std": None,
    }
    if args.input_modality:
        updates["input_modality"] = args.input_modality
    if problem_type == "regression":
        updates["target_mean"], updates["target_std"] = label_statistics(train_labels)
    if args.dropout is not None:
        updates["attention_dropout"] = updates["classifier_dropout"] = args.dropout
    # finetuning recipe of the paper: attention dropout only, no drop-path
    updates.setdefault("drop_path_rate", 0.0)
    data = {**config.to_dict(), **updates}
    for key in ("architectures", "transformers_version", "auto_map", "dtype", "model_type"):
        data.pop(key, None)
    return MoleBlendConfig(**data)


def metric_fn(problem_type: str, label_names: list[str]):
    def compute_metrics(prediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        labels = prediction.label_ids
        if problem_type == CLASSIFICATION:
            result = classification_metrics(labels, logits, label_names)
            flat = {"roc_auc": result["roc_auc"], "pr_auc": result["pr_auc"]}
        else:
            result = regression_metrics(labels, logits, label_names)
            flat = {"rmse": result["rmse"], "mae": result["mae"]}
        if len(label_names) > 1:
            for task, values in result["per_task"].items():
                for name, value in values.items():
                    if name in flat:
                        flat[f"{task}_{name}"] = value
        return flat

    return compute_metrics


def split_metrics(problem_type, labels, outputs, label_names) -> dict:
    if problem_type == CLASSIFICATION:
        return classification_metrics(labels, outputs, label_names)
    return regression_metrics(labels, outputs, label_names)


# ---------------------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    started = time.perf_counter()
    out: Path = args.output_dir
    # under `accelerate launch` every process runs this script: the main one prepares data and writes outputs
    state = PartialState(cpu=not torch.cuda.is_available())  # as the Trainer will ask (use_cpu), or no DDP on CPU
    if out.exists() and any(out.iterdir()) and not args.overwrite_output_dir:
        raise SystemExit(f"{out} exists and is not empty: pass --overwrite_output_dir or choose another folder")
    state.wait_for_everyone()  # every process has checked before the main one writes
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)

    # ---- data: read, featurize once (cached), split
    table = read_molecule_table(
        args.train_file, args.smiles_column, args.label_columns, args.split_column if args.split == "column" else None
    )
    config = base_config(args)
    modality = args.input_modality or config.input_modality
    featurizer = build_featurizer(args, modality)
    cache_dir = args.cache_dir or (out.parent / ".cache")
    with state.main_process_first():  # the main process featurizes and caches, the others read the cache
        dataset, report = featurize_table(table, featurizer, cache_dir=cache_dir)
    if state.is_main_process:
        (out / "featurization_report.json").write_text(json.dumps(report.to_dict(), indent=2))
    logger.info("featurization: %s", report.summary(max_listed=10))
    if len(dataset) < 10:
        raise SystemExit(f"only {len(dataset)} molecules could be featurized: see {out / 'featurization_report.json'}")

    problem_type = (
        infer_problem_type(table.labels)
        if args.problem_type == "auto"
        else (CLASSIFICATION if args.problem_type == "classification" else "regression")
    )
    label_names = table.label_names
    rows = np.asarray(dataset["row"])
    smiles = dataset["smiles"]
    column_values = [table.split_values[r] for r in rows] if args.split == "column" else None
    split = make_split(
        args.split, smiles, args.split_seed, column_values, tuple(args.split_fractions), args.scaffold_ties
    )
    split_description = {
        "scaffold": "Bemis-Murcko scaffold split {:g}:{:g}:{:g}, deterministic (largest scaffold sets to train, "
        + f"{args.scaffold_ties} order of equal-size sets)",
        "random": "random split {:g}:{:g}:{:g}, seed " + str(args.split_seed),
        "column": "user-given split column",
    }[args.split].format(*[10 * f for f in args.split_fractions])
    if state.is_main_process:
        (out / "splits.json").write_text(
            json.dumps({name: rows[idx].tolist() for name, idx in split.items()} | {"description": split_description})
        )
    sizes = {name: len(idx) for name, idx in split.items()}
    logger.info("split: %s %s; problem type %s; tasks %s", split_description, sizes, problem_type, label_names)
    if sizes.get("test", 0) == 0 or sizes["validation"] == 0:
        raise SystemExit(f"the split left an empty validation or test set: {sizes}")

    model_columns = [c for c in (*FEATURE_COLUMNS, "labels")]
    tables = {
        name: dataset.select(idx, keep_in_memory=True).select_columns(model_columns).with_format("numpy")
        for name, idx in split.items()
    }
    labels = {
        name: np.asarray(dataset.select(idx, keep_in_memory=True)["labels"], dtype=np.float32)
        for name, idx in split.items()
    }
    smiles_by_split = {name: [smiles[i] for i in idx] for name, idx in split.items()}
    selection_metric = "roc_auc" if problem_type == CLASSIFICATION else "rmse"
    greater_is_better = problem_type == CLASSIFICATION

    # ---- one model per seed; selection on validation only
    per_seed, histories, test_outputs = [], {}, {}
    for seed in args.seeds:
        set_seed(seed)
        seed_dir = out / "seeds" / f"seed_{seed}"
        seed_config = task_config(args, config, problem_type, label_names, labels["train"])
        if args.model_name_or_path:
            model = MoleBlendForPropertyPrediction.from_pretrained(
                args.model_name_or_path, config=seed_config, revision=args.revision
            )
        else:
            model = MoleBlendForPropertyPrediction(seed_config)
        training_args = TrainingArguments(
            output_dir=str(seed_dir / "checkpoints"),
            num_train_epochs=args.num_train_epochs,
            learning_rate=args.learning_rate,
            per_device_train_batch_size=args.per_device_train_batch_size,
            per_device_eval_batch_size=args.per_device_eval_batch_size,
            warmup_steps=args.warmup_ratio,  # a float < 1 is a fraction of the steps in transformers 5
            weight_decay=args.weight_decay,
            lr_scheduler_type="linear",
            eval_strategy="epoch",
            save_strategy="epoch",
            logging_strategy="epoch",
            save_total_limit=1,
            load_best_model_at_end=True,
            metric_for_best_model=selection_metric,
            greater_is_better=greater_is_better,
            remove_unused_columns=False,
            label_names=["labels"],
            train_sampling_strategy="group_by_length",
            length_column_name="num_atoms",
            seed=seed,
            data_seed=seed,
            report_to="none",
            save_only_model=True,
            disable_tqdm=args.quiet,
            use_cpu=not torch.cuda.is_available(),
            **_trainer_push_arguments(args, seed),
        )
        callbacks = [EarlyStoppingCallback(args.early_stopping_patience)] if args.early_stopping_patience else []
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=tables["train"],
            eval_dataset=tables["validation"],
            data_collator=MoleBlendCollator(pad_to_multiple_of=8),
            compute_metrics=metric_fn(problem_type, label_names),
            processing_class=featurizer,
            callbacks=callbacks,
        )
        if training_args.push_to_hub:
            # the pushed folder's config.json names the code files in its auto_map: put them there from the start
            custom_object_save(model, training_args.output_dir, config=model.config)
        trainer.train()
        histories[seed] = trainer.state.log_history
        best_epoch = _best_epoch(trainer.state.log_history, selection_metric, greater_is_better)
        # in row order (the Trainer's length-grouped eval sampler shuffles); logits, at the best epoch
        outputs = {
            name: predict_properties([trainer.model], list(tables[name]), args.per_device_eval_batch_size, False)[0]
            for name in ("validation", "test")
        }
        test_outputs[seed] = outputs["test"]
        result = {
            "seed": seed,
            "best_epoch": best_epoch,
            "validation": split_metrics(problem_type, labels["validation"], outputs["validation"], label_names),
            "test": split_metrics(problem_type, labels["test"], outputs["test"], label_names),
        }
        trainer.save_model(str(seed_dir / "model"))  # the best-validation epoch (load_best_model_at_end)
        if not state.is_main_process:
            continue  # the rest (baseline, files) is the main process's
        (seed_dir / "model" / "training_args.bin").unlink(missing_ok=True)  # a pickle: never ship one
        shutil.rmtree(seed_dir / "checkpoints", ignore_errors=True)
        if args.baseline_estimators > 0:
            baseline = random_forest_baseline(
                smiles_by_split["train"],
                labels["train"],
                {"validation": smiles_by_split["validation"], "test": smiles_by_split["test"]},
                problem_type,
                seed=seed,
                n_estimators=args.baseline_estimators,
                n_jobs=-1,
            )
            result["baseline_test"] = split_metrics(problem_type, labels["test"], baseline["test"], label_names)
            result["baseline_validation"] = split_metrics(
                problem_type, labels["validation"], baseline["validation"], label_names
            )
        per_seed.append(result)
        logger.info(
            "seed %d: best epoch %s, validation %s, test %s",
            seed,
            best_epoch,
            _headline(result["validation"]),
            _headline(result["test"]),
        )

    # ---- aggregate, pick the model to ship (best validation), write everything
    if not state.is_main_process:
        return 0
    aggregate = {
        part: aggregate_seeds([_headline(r[part]) for r in per_seed])
        for part in ("validation", "test", "baseline_test")
        if all(part in r for r in per_seed)
    }
    scores = [r["validation"][selection_metric] for r in per_seed]
    best = int(np.nanargmax(scores) if greater_is_better else np.nanargmin(scores))
    best_seed = per_seed[best]["seed"]
    shutil.copytree(out / "seeds" / f"seed_{best_seed}" / "model", out / "model", dirs_exist_ok=True)
    wall = time.perf_counter() - started

    results = {
        "data": {
            "file": str(args.train_file),
            "tasks": label_names,
            "problem_type": problem_type,
            "num_rows": len(table),
            "num_featurized": len(dataset),
            "num_skipped": len(report.skipped),
            "split": {"kind": args.split, "description": split_description, "sizes": sizes, "file": "splits.json"},
        },
        "protocol": (
            f"one model per seed; the epoch with the best validation {selection_metric} is kept "
            "(load_best_model_at_end) and evaluated once on test; the test split is never used for selection; "
            f"the shipped model/ is the seed with the best validation {selection_metric} (seed {best_seed})"
        ),
        "model": {
            "start": args.model_name_or_path or f"scratch ({args.config_name} preset)",
            "input_modality": modality,
            "num_parameters": sum(p.numel() for p in model.parameters()),
        },
        "training": {
            "epochs": args.num_train_epochs,
            "learning_rate": args.learning_rate,
            "batch_size": args.per_device_train_batch_size,
            "warmup_ratio": args.warmup_ratio,
            "weight_decay": args.weight_decay,
            "early_stopping_patience": args.early_stopping_patience,
            "seeds": args.seeds,
            "num_processes": state.num_processes,
        },
        "per_seed": per_seed,
        "aggregate": aggregate,
        "best_seed": best_seed,
        "wall_time_s": wall,
        "hardware": _hardware(),
    }
    (out / "results.json").write_text(json.dumps(_jsonable(results), indent=2))
    _write_predictions(
        out / "predictions_test.csv",
        rows[split["test"]],
        smiles_by_split["test"],
        labels["test"],
        test_outputs,
        label_names,
        problem_type,
    )
    plot_learning_curve(
        histories, out / "learning_curve.png", selection_metric, title=f"MoleBlend on {Path(args.train_file).name}"
    )
    mean_test = np.mean([test_outputs[s] for s in args.seeds], axis=0)
    if problem_type == CLASSIFICATION:
        plot_roc(labels["test"], mean_test, out / "roc.png", label_names, title="Test ROC (mean of seeds)")
    else:
        plot_parity(labels["test"], mean_test, out / "parity.png", label_names, title="Test parity (mean of seeds)")
    _write_card(out / "model", args, results, featurizer, model, split_description, selection_metric)
    _print_summary(results, selection_metric, out)
    if args.push_to_hub:
        # the Trainer's own push is off: seeds would interleave in one repo and its checkpoints carry pickles
        info = export_and_push(args, out / "model", out / "hub", f"MoleBlend finetuned on {Path(args.train_file).name}")
        print(f"pushed to {args.hub_model_id}: {info.commit_url}")
    return 0


# ---------------------------------------------------------------------------------------------------------- helpers


def _trainer_push_arguments(args, seed: int) -> dict:
    """Trainer pushes of one seed's saves go to the branch seed-K (seeds would interleave on one branch)."""
    if not args.push_to_hub or args.hub_strategy == "end":
        return {}
    from huggingface_hub import HfApi

    api = HfApi(token=args.hub_token)
    api.create_repo(args.hub_model_id, private=args.hub_private_repo, exist_ok=True)
    api.create_branch(args.hub_model_id, branch=f"seed-{seed}", exist_ok=True)
    return {
        "push_to_hub": True,
        "hub_model_id": args.hub_model_id,
        "hub_strategy": args.hub_strategy,
        "hub_revision": f"seed-{seed}",
        "hub_private_repo": args.hub_private_repo,
        "hub_token": args.hub_token,
        "hub_always_push": True,  # otherwise a save is skipped while the previous push is still uploading
    }


def _headline(metrics: dict) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k not in ("n_tasks_scored",)}


def _best_epoch(history: list[dict], metric: str, greater: bool) -> float | None:
    evals = [(h["epoch"], h[f"eval_{metric}"]) for h in history if f"eval_{metric}" in h]
    evals = [(e, v) for e, v in evals if not math.isnan(v)]
    if not evals:
        return None
    return (max if greater else min)(evals, key=lambda item: item[1])[0]


def _hardware() -> str:
    import os
    import platform

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return f"{device}, {os.cpu_count()} CPU cores, torch {torch.__version__}, {platform.platform(terse=True)}"


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _write_predictions(path, rows, smiles, labels, outputs, label_names, problem_type) -> None:
    seeds = sorted(outputs)
    stacked = np.stack([outputs[s] for s in seeds])
    if problem_type == CLASSIFICATION:
        stacked = 1 / (1 + np.exp(-stacked))  # probabilities
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["row", "smiles"]
        for name in label_names:
            header += [name, f"{name}_pred_mean", f"{name}_pred_std"] + [f"{name}_pred_seed{s}" for s in seeds]
        writer.writerow(header)
        for i, (row, smi) in enumerate(zip(rows, smiles)):
            line = [int(row), smi]
            for t in range(len(label_names)):
                values = stacked[:, i, t]
                line += [_fmt(labels[i, t]), _fmt(values.mean()), _fmt(values.std())] + [_fmt(v) for v in values]
            writer.writerow(line)


def _fmt(value) -> str:
    return "" if value is None or math.isnan(float(value)) else f"{float(value):.6g}"


def _write_card(folder, args, results, featurizer, model, split_description, selection_metric) -> None:
    aggregate = results["aggregate"]

    def summaries(part: str) -> list[MetricSummary]:
        return [
            MetricSummary(
                name,
                stats["mean"],
                stats["std"],
                stats["values"],
                split="test",
                higher_is_better=name in ("roc_auc", "pr_auc"),
            )
            for name, stats in aggregate.get(part, {}).items()
        ]

    config = model.config
    info = CardInfo(
        model_name=f"moleblend-{Path(args.train_file).stem.replace('.', '-')}",
        summary=(
            f"A MoleBlend model finetuned to predict {', '.join(results['data']['tasks'])} "
            f"({results['data']['problem_type'].replace('_', ' ')}) from molecular structure."
        ),
        dataset_name=Path(args.train_file).name,
        base_model=args.model_name_or_path,
        task_names=results["data"]["tasks"],
        problem_type=results["data"]["problem_type"],
        split=split_description,
        protocol=results["protocol"],
        seeds=args.seeds,
        metrics=summaries("test"),
        baseline_metrics=summaries("baseline_test"),
        training={
            "Epochs (max)": args.num_train_epochs,
            "Learning rate": args.learning_rate,
            "Batch size": args.per_device_train_batch_size,
            "Early stopping": f"{args.early_stopping_patience} epochs without validation improvement",
            "Hardware": results["hardware"],
            "Wall time": f"{results['wall_time_s']:.0f} s for {len(args.seeds)} seeds",
        },
        architecture={
            "Layers": config.num_hidden_layers,
            "Hidden size": config.hidden_size,
            "Attention heads": config.num_attention_heads,
            "Input modality": config.input_modality,
            "Parameters": f"{results['model']['num_parameters'] / 1e6:.2f} M",
        },
        featurizer={"max_atoms": featurizer.max_atoms, "conformer": featurizer.conformer, "mmff": featurizer.mmff},
    )
    write_model_card(folder, info)


def _print_summary(results: dict, metric: str, out: Path) -> None:
    aggregate = results["aggregate"]
    test, baseline = aggregate.get("test", {}), aggregate.get("baseline_test", {})
    print("\n" + "=" * 78)
    print(
        f"{results['data']['file']}: {results['data']['num_featurized']} molecules, "
        f"{results['data']['split']['description']}, {len(results['per_seed'])} seeds"
    )
    print(f"{'test metric':<14}{'MoleBlend':>24}{'RF on Morgan FP':>24}")
    for name, stats in test.items():
        other = baseline.get(name)
        other_text = f"{other['mean']:.3f} +- {other['std']:.3f}" if other else "-"
        print(f"{name:<14}{stats['mean']:>15.3f} +- {stats['std']:.3f}{other_text:>24}")
    print(f"(selection on validation {metric}; wall time {results['wall_time_s']:.0f} s)")
    print(f"results: {out / 'results.json'}; plots: {out}/*.png; model: {out / 'model'}")
    print("=" * 78)


if __name__ == "__main__":
    sys.exit(main())
