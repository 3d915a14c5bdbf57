"""3D conformer generation: seeded ETKDGv3 (+ optional MMFF), retries, a per-molecule time limit, and a pool of
worker processes that survives workers that hang or die.

Generation costs 20-80 ms per drug-like molecule, about 1000x the rest of featurization, so it runs once, in
parallel over molecules, before training. Each molecule is embedded with the same seed wherever it lands, so
results do not depend on the number of workers or on the order of the inputs.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import wait

import numpy as np

try:
    from rdkit import Chem, rdBase
    from rdkit.Chem import AllChem, rdDistGeom
except ImportError:  # pragma: no cover
    Chem = None


@dataclass(frozen=True)
class ConformerSettings:
    """How conformers are generated. ``timeout`` is seconds per molecule (wall time, all retries)."""

    seed: int = 0
    mmff: bool = True
    retries: int = 3
    timeout: float = 60.0


@dataclass
class ConformerResult:
    """Coordinates ``[atoms, 3]`` float32 of the molecule's own atoms, or why there are none."""

    coordinates: np.ndarray | None = None
    error: str | None = None
    timed_out: bool = False
    notes: tuple[str, ...] = ()


def embed_conformer(mol, settings: ConformerSettings) -> ConformerResult:
    """Embed one molecule; hydrogens are added for the embedding and dropped from the returned coordinates.

    Attempt k uses ``randomSeed = seed + k``; the last attempt starts from random coordinates, which rescues
    most molecules whose distance-geometry start fails (e.g. strained cages).
    """
    num_atoms = mol.GetNumAtoms()
    with_hydrogens = Chem.AddHs(mol)  # appended after the existing atoms, so atom i keeps index i
    attempts = max(1, settings.retries + 1)
    errors: list[str] = []
    for attempt in range(attempts):
        params = rdDistGeom.ETKDGv3()
        params.randomSeed = int(settings.seed) + attempt
        params.numThreads = 1
        params.timeout = max(1, math.ceil(settings.timeout))
        params.useRandomCoords = attempt == attempts - 1 and attempts > 1
        with rdBase.CaptureErrorLog() as log:
            conformer_id = rdDistGeom.EmbedMolecule(with_hydrogens, params)
        if conformer_id >= 0:
            break
        messages = [line.split("] ", 1)[-1] for line in log.messages.strip().splitlines()]
        errors.append(messages[-1] if messages else "embedding returned no conformer")
    else:
        reason = errors[-1]
        return ConformerResult(error=f"ETKDGv3 embedding failed after {attempts} attempts ({reason})")
    notes = []
    if settings.mmff:
        if AllChem.MMFFHasAllMoleculeParams(with_hydrogens):
            AllChem.MMFFOptimizeMolecule(with_hydrogens, maxIters=1000)
        else:
            notes.append("no MMFF parameters for this molecule: ETKDG geometry kept unoptimised")
    coordinates = with_hydrogens.GetConformer().GetPositions()[:num_atoms].astype(np.float32)
    return ConformerResult(coordinates=coordinates, notes=tuple(notes))


def _worker_loop(connection, settings: ConformerSettings, embed: Callable) -> None:
    """Runs in a worker process: receive (key, mol bytes), send back (key, ConformerResult)."""
    while True:
        job = connection.recv()
        if job is None:
            return
        key, mol_bytes = job
        try:
            result = embed(Chem.Mol(mol_bytes), settings)
        except Exception as error:  # any RDKit exception becomes a reported failure, never a dead pool
            result = ConformerResult(error=f"{type(error).__name__}: {error}")
        connection.send((key, result))


class _Worker:
    def __init__(self, context, settings: ConformerSettings, embed: Callable):
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=_worker_loop, args=(child_end, settings, embed), daemon=True)
        self.process.start()
        child_end.close()
        self.key = None
        self.deadline = math.inf

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.connection.send(None)
            except OSError:
                self.process.kill()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


def _mp_context():
    # fork keeps start-up cheap and works for code loaded from a Hub export (not importable by name in a
    # spawned child); the workers only run RDKit, never torch.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def generate_conformers(
    molecules: Iterable[tuple[int, object]],
    settings: ConformerSettings,
    num_workers: int = 1,
    progress: Callable[[int], None] | None = None,
    embed: Callable | None = None,
) -> dict[int, ConformerResult]:
    """Conformers for ``(key, mol)`` pairs, keyed like the input.

    ``num_workers=0`` embeds in this process (RDKit's own ETKDG time-out only). ``num_workers >= 1`` uses worker
    processes: a molecule past ``settings.timeout`` has its worker killed and replaced, and a worker that dies
    (e.g. a crash inside RDKit) fails only the molecule it was working on. Nothing hangs, nothing is lost.
    """
    embed = embed or embed_conformer  # looked up at call time, so a patched embed_conformer reaches the workers
    jobs = deque((key, mol.ToBinary()) for key, mol in molecules)
    results: dict[int, ConformerResult] = {}
    if num_workers <= 0:
        for key, mol_bytes in jobs:
            try:
                results[key] = embed(Chem.Mol(mol_bytes), settings)
            except Exception as error:
                results[key] = ConformerResult(error=f"{type(error).__name__}: {error}")
            if progress:
                progress(1)
        return results

    context = _mp_context()
    workers = [_Worker(context, settings, embed) for _ in range(min(num_workers, len(jobs)))]

    def finish(worker: _Worker, result: ConformerResult, replace: bool) -> None:
        results[worker.key] = result
        worker.key, worker.deadline = None, math.inf
        if progress:
            progress(1)
        if replace:
            worker.stop(kill=True)
            workers[workers.index(worker)] = _Worker(context, settings, embed)

    try:
        while jobs or any(w.key is not None for w in workers):
            for worker in workers:
                if worker.key is None and jobs:
                    worker.key, mol_bytes = jobs.popleft()
                    worker.connection.send((worker.key, mol_bytes))
                    worker.deadline = time.monotonic() + settings.timeout
            busy = [w for w in workers if w.key is not None]
            wait_for = min(w.deadline for w in busy) - time.monotonic()
            ready = wait([w.connection for w in busy] + [w.process.sentinel for w in busy], max(0.0, wait_for))
            for worker in busy:
                connection_closed = False
                if worker.connection in ready or worker.connection.poll():
                    try:
                        key, result = worker.connection.recv()
                        finish(worker, result, replace=False)
                        continue
                    except (EOFError, OSError):
                        connection_closed = True
                if connection_closed or worker.process.sentinel in ready or not worker.process.is_alive():
                    worker.process.join(timeout=5)  # reap it, so that its exit code is known
                    code = worker.process.exitcode
                    finish(worker, ConformerResult(error=f"conformer worker died (exit code {code})"), replace=True)
                elif time.monotonic() > worker.deadline:
                    message = f"no conformer within {settings.timeout:g} s (worker stopped)"
                    finish(worker, ConformerResult(error=message, timed_out=True), replace=True)
    finally:
        for worker in workers:
            worker.stop(kill=worker.key is not None)
    return results


def default_num_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
