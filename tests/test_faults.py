"""Faults simulated by construction (no sleeps, no timing): a featurization cache killed after k of n shards, two
processes on one cache, a finetune killed in its second seed, a truncated .sdf.gz, and data that cannot be split
or trained. Each recovered run must equal an uninterrupted one."""

from __future__ import annotations

import csv
import gzip
import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from transformers import TrainerCallback

from modeling_moleblend import MoleBlendFeaturizer
from modeling_moleblend.cli.main import EXIT_USAGE
from modeling_moleblend.cli.main import main as moleblend
from modeling_moleblend.data import QM9_SAMPLE, InputError, MoleculeTable, featurize_table, read_molecule_table
from modeling_moleblend.training import FinetuneArguments, finetune

TINY = dict(config_name="small", per_device_train_batch_size=16, quiet=True, baseline_estimators=5)


class Killed(Exception):
    """Stands for SIGKILL: raised where the process would have died."""


class KillingFeaturizer(MoleBlendFeaturizer):
    """A featurizer whose ``featurize_chunks`` dies after yielding ``after_chunks`` chunks (None: never) and
    records how many inputs each call was given in ``seen``."""

    def __init__(self, *args, after_chunks: int | None = None, seen: list | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._after, self._seen = after_chunks, seen if seen is not None else []

    def to_dict(self) -> dict:  # the controls are not settings: the cache key must not see them
        return {k: v for k, v in super().to_dict().items() if k not in ("_after", "_seen")}

    def featurize_chunks(self, molecules, *args, **kwargs):
        self._seen.append(len(molecules))
        for number, chunk in enumerate(super().featurize_chunks(molecules, *args, **kwargs)):
            if self._after is not None and number == self._after:
                raise Killed
            yield chunk


def as_rows(dataset) -> list[dict]:
    return [{k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v) for k, v in r.items()} for r in dataset]


@pytest.mark.parametrize("conformer", ["none", "generate"])
def test_cache_killed_after_k_of_n_shards_continues_from_the_first_missing(tmp_path, esol_smiles, conformer):
    count = 50 if conformer == "none" else 9
    smiles = esol_smiles[:count] + ["C1CC("]  # the bad one is reported in the last shard
    table = MoleculeTable("memory", smiles, labels=np.arange(len(smiles), dtype=np.float32)[:, None], label_names=["y"])
    chunk = 10 if conformer == "none" else 3

    def make(after, seen):
        return KillingFeaturizer(conformer=conformer, mmff=False, num_workers=0, seed=0, after_chunks=after, seen=seen)

    expected, expected_report = featurize_table(table, make(None, []), chunk_size=chunk)
    cache = tmp_path / "cache"
    with pytest.raises(Killed):
        featurize_table(table, make(2, []), cache_dir=cache, chunk_size=chunk)
    (folder,) = cache.glob("featurized-*")
    assert sorted(p.name for p in (folder / "shards").iterdir()) == ["00000", "00001"]  # no half shard
    assert not (folder / "report.json").exists()
    seen: list[int] = []
    dataset, report = featurize_table(table, make(None, seen), cache_dir=cache, chunk_size=chunk)
    assert seen == [len(smiles) - 2 * chunk]  # only what the killed run had not finished
    assert as_rows(dataset) == as_rows(expected)  # nothing lost, nothing twice, same conformers
    assert report.to_dict()["skipped"] == expected_report.to_dict()["skipped"]
    assert [s.index for s in report.skipped] == [len(smiles) - 1]
    seen.clear()
    again, _ = featurize_table(table, make(None, seen), cache_dir=cache, chunk_size=chunk)
    assert seen == [] and len(again) == len(expected)  # complete: read, not featurized


def _featurize_into(cache: str, smiles: list[str]) -> list:
    table = MoleculeTable("memory", smiles)
    dataset, _ = featurize_table(table, MoleBlendFeaturizer(conformer="none"), cache_dir=cache, chunk_size=400)
    return dataset["row"]


def test_two_processes_racing_on_one_cache_share_it(tmp_path, esol_smiles):
    cache = str(tmp_path / "cache")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(_featurize_into, [(cache, esol_smiles), (cache, esol_smiles)])
    assert results[0] == results[1] == list(range(len(esol_smiles)))
    (folder,) = Path(cache).glob("featurized-*")
    assert sorted(p.name for p in (folder / "shards").iterdir()) == ["00000", "00001", "00002"]
    assert not list(Path(cache).rglob(".incomplete-*"))


class KillAtSave(TrainerCallback):
    """Dies right after the Trainer saved the given seed's checkpoint of the given epoch."""

    def __init__(self, seed: int, epoch: float):
        self.seed, self.epoch, self.trained = seed, epoch, []

    def on_train_begin(self, args, state, control, **kwargs):
        self.trained.append((args.seed, state.global_step))

    def on_save(self, args, state, control, **kwargs):
        if args.seed == self.seed and state.epoch >= self.epoch:
            raise Killed


def test_finetune_killed_in_the_second_seed_resumes_to_the_same_results(tmp_path, esol_rows):
    data = tmp_path / "data.csv"
    data.write_text("smiles,logS\n" + "".join(f"{r['smiles']},{r['logS']}\n" for r in esol_rows[:40]))
    settings = dict(train_file=data, label_columns=["logS"], seeds=[0, 1], num_train_epochs=3, **TINY)
    reference = finetune(FinetuneArguments(**settings, output_dir=tmp_path / "uninterrupted"))
    out = tmp_path / "killed"
    with pytest.raises(Killed):
        finetune(FinetuneArguments(**settings, output_dir=out), callbacks=[KillAtSave(seed=1, epoch=2)])
    assert (out / "seeds" / "seed_0" / "seed_result.json").is_file() and not (out / "results.json").exists()
    watch = KillAtSave(seed=-1, epoch=0)
    with pytest.raises(InputError, match="--resume"):
        finetune(FinetuneArguments(**settings, output_dir=out))  # no silent restart over a killed run
    resumed = finetune(FinetuneArguments(**settings, output_dir=out, resume=True), callbacks=[watch])
    assert len(watch.trained) == 1 and watch.trained[0][0] == 1 and watch.trained[0][1] > 0  # seed 1, mid-way
    for part in ("validation", "test", "baseline_test"):
        for name, stats in reference.aggregate[part].items():
            np.testing.assert_allclose(resumed.aggregate[part][name]["values"], stats["values"], rtol=1e-5)
    assert [r["best_epoch"] for r in resumed.per_seed] == [r["best_epoch"] for r in reference.per_seed]
    with open(out / "predictions_test.csv") as a, open(tmp_path / "uninterrupted" / "predictions_test.csv") as b:
        rows_a, rows_b = list(csv.DictReader(a)), list(csv.DictReader(b))
    for row_a, row_b in zip(rows_a, rows_b, strict=True):
        assert float(row_a["logS_pred"]) == pytest.approx(float(row_b["logS_pred"]), rel=1e-5)
    assert not list(out.glob("seeds/*/checkpoints"))  # checkpoints (with their pickles) are gone
    with pytest.raises(InputError, match="other settings"):
        finetune(FinetuneArguments(**{**settings, "num_train_epochs": 4}, output_dir=out, resume=True))


def test_truncated_sdf_gz_keeps_every_record_before_the_cut(tmp_path, caplog):
    whole = gzip.decompress(QM9_SAMPLE.read_bytes())
    records = whole.split(b"$$$$\n")[:30]
    cut = tmp_path / "cut.sdf.gz"
    data = gzip.compress(b"$$$$\n".join(records) + b"$$$$\n")
    cut.write_bytes(data[: len(data) * 2 // 3])  # the gzip stream ends early
    table = read_molecule_table(cut, label_columns=["gap_eV"])
    assert 10 < len(table) < 30 and all(s for s in table.smiles)  # every complete record before the cut
    assert "ends early" in caplog.text and str(cut) in caplog.text
    assert table.notes and "ends early" in table.notes[0]
    featurized = MoleBlendFeaturizer(conformer="input").featurize(table.molecules(), label_columns=["gap_eV"])
    assert len(featurized.features) == len(table)


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([["CCO", "1"]] * 40, "holds one class only"),
        ([["CCO", "1"], ["CCC", "0"], ["CCN", "1"]], "at least 10 molecules are needed"),
    ],
)
def test_data_that_cannot_be_trained_fails_fast_naming_the_file(tmp_path, capsys, rows, expected):
    data = tmp_path / "tiny.csv"
    data.write_text("smiles,active\n" + "".join(f"{s},{y}\n" for s, y in rows))
    args = ["finetune", "--train_file", str(data), "--label_columns", "active", "--output_dir", str(tmp_path / "o")]
    assert moleblend([*args, "--split", "random", "--quiet"]) == EXIT_USAGE
    message = capsys.readouterr().err
    assert expected in message and str(data) in message


def test_results_are_written_atomically(tmp_path):
    from modeling_moleblend.files import write_json_atomic

    path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["r.json"]
