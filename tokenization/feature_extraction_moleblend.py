"""MoleBlendFeaturizer: SMILES, RDKit molecules or SDF files -> the relation tensors MoleBlend consumes.

A ``transformers`` ``FeatureExtractionMixin``: ``save_pretrained`` writes ``preprocessor_config.json`` and
``AutoFeatureExtractor.from_pretrained`` loads it back (with ``trust_remote_code=True`` from a Hub export).

    featurizer = MoleBlendFeaturizer(conformer="auto", max_atoms=512, errors="raise", num_workers=1, seed=0)
    batch = featurizer(["CCO", "c1ccccc1"], return_tensors="pt")     # padded BatchFeature, model(**batch)
    result = featurizer.featurize(Path("set.sdf"), label_columns=["y"])  # per-molecule arrays + report
    result = featurizer.featurize(list(read_sdf_records(path, parse=True)), label_columns=["y"])  # the same

The batch keys, shapes and dtypes are defined in ``batch_layout_moleblend.py``. Besides its keys, a batch carries
``batch.input_indices`` (which input each row came from), ``batch.properties`` (SDF properties, one list per tag,
aligned with the rows, None where a record lacks the tag) and ``batch.report`` (a ``FeaturizationReport``: every
skipped input with its index, text and reason, and every molecule kept without 3D).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence, Sized
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from transformers import BatchFeature, FeatureExtractionMixin

try:
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover
    tqdm = None

try:
    from rdkit import Chem, rdBase
except ImportError:  # pragma: no cover
    Chem = None

from .batch_layout_moleblend import MODEL_INPUT_NAMES
from .collating_moleblend import MoleBlendCollator
from .conformers_moleblend import ConformerSettings, generate_conformers
from .descriptors_moleblend import descriptor_values, unknown_descriptors
from .errors_moleblend import (
    ConformerError,
    ConformerTimeoutError,
    EmptyMoleculeError,
    InvalidMoleculeError,
    MoleculeError,
    MoleculeTooLargeError,
    UnsupportedAtomError,
)
from .labels_moleblend import MISSING_LABEL_TEXTS, check_label_tags, parse_label
from .molecular_graph_moleblend import MAX_BONDS, MAX_HOPS, conformer_coordinates, molecule_relations
from .sdf_moleblend import SdfRecord, parse_sdf_block, rdkit_reason, read_sdf_records

CONFORMER_POLICIES = ("auto", "input", "generate", "none")
PROGRESS_MIN_MOLECULES = 2000  # 2D featurization of fewer molecules takes under a second: no bar
__all__ = [  # parse_label and MISSING_LABEL_TEXTS live in labels_moleblend.py; re-exported for older imports
    "MISSING_LABEL_TEXTS",
    "FeaturizationReport",
    "FeaturizationResult",
    "MoleBlendFeaturizer",
    "SkippedInput",
    "parse_label",
]


@dataclass
class SkippedInput:
    """One input that is not in the output, and why."""

    index: int
    input_text: str
    error_type: str
    reason: str


@dataclass
class FeaturizationReport:
    """What happened to every input: counts, each skipped input, each molecule kept without its 3D."""

    num_inputs: int = 0
    skipped: list[SkippedInput] = field(default_factory=list)
    without_3d: list[SkippedInput] = field(default_factory=list)  # conformer failed, kept as 2D (fallback)
    notes: list[SkippedInput] = field(default_factory=list)  # e.g. no MMFF parameters, geometry unoptimised
    seconds: float = 0.0

    @property
    def num_featurized(self) -> int:
        return self.num_inputs - len(self.skipped)

    def add(self, bucket: list[SkippedInput], error: MoleculeError) -> None:
        bucket.append(SkippedInput(error.index, error.input_text, type(error).__name__, error.reason))

    def to_dict(self) -> dict:
        return {"num_inputs": self.num_inputs, "num_featurized": self.num_featurized, **asdict(self)}

    def summary(self, max_listed: int = 20) -> str:
        lines = [
            f"{self.num_featurized}/{self.num_inputs} molecules featurized in {self.seconds:.2f} s, "
            f"{len(self.skipped)} skipped, {len(self.without_3d)} kept without 3D after a conformer failure"
        ]
        for title, bucket in (("skipped", self.skipped), ("without 3D", self.without_3d), ("note", self.notes)):
            for item in bucket[:max_listed]:
                lines.append(f"  {title}: input {item.index} ({item.input_text!r}): {item.reason}")
            if len(bucket) > max_listed:
                lines.append(f"  ... and {len(bucket) - max_listed} more {title} (see report.{title})")
        return "\n".join(lines)


@dataclass
class FeaturizationResult:
    """Output of ``MoleBlendFeaturizer.featurize``: unpadded per-molecule arrays, in input order."""

    features: list[dict[str, np.ndarray]]
    input_indices: list[int]
    properties: dict[str, list[str | None]]
    report: FeaturizationReport


@dataclass
class _Record:
    """One input on its way through the featurizer."""

    index: int
    text: str
    mol: object = None
    error: MoleculeError | None = None
    properties: dict[str, str] = field(default_factory=dict)


class MoleBlendFeaturizer(FeatureExtractionMixin):
    """Turns molecules into MoleBlend's inputs: atom features, degree, shortest paths, the bonds along them,
    and 3D coordinates.

    Args:
        conformer: where 3D coordinates come from. "input": the input's own (SDF / conformer on a Mol), an error
            if it has none; "generate": always ETKDGv3 (seeded, optional MMFF); "auto": the input's when present,
            else generated; "none": 2D only (``has_3d`` False). A conformer whose z are all 0 is not 3D.
        max_atoms: the largest molecule accepted (atoms in the graph: heavy atoms, or all with
            ``keep_hydrogens``); larger ones are a ``MoleculeTooLargeError`` (or a reported skip).
        errors: "raise" (default): the first bad input raises a ``MoleculeError`` (a ``ValueError``) naming its
            index, text and reason; "skip": bad inputs are left out and listed in the report.
        num_workers: worker processes for conformer generation (0 = in this process, without the hard time
            limit). Each worker has a per-molecule time limit and a dead worker fails only its own molecule.
        seed: the ETKDG random seed (the same for every molecule, so results do not depend on order or workers).
        keep_hydrogens: keep every hydrogen as a graph atom (default: heavy atoms only; isotopic hydrogens such
            as deuterium are always atoms).
        mmff: relax generated conformers with MMFF94 (skipped, and noted in the report, when MMFF has no
            parameters for the molecule).
        conformer_retries: extra embedding attempts (seed + k; the last from random coordinates).
        conformer_timeout: seconds per molecule for conformer generation.
        conformer_fallback: "error" (default): a molecule without 3D where 3D was asked for is an error;
            "2d": keep it without 3D (``has_3d`` False) and list it in ``report.without_3d``.
        allowed_elements: if given, element symbols outside it are an ``UnsupportedAtomError``. Dummy ("*")
            and query atoms are always unsupported.
        max_hops: bonds kept along each shortest path (the paper uses 5).
        pad_to_multiple_of: passed to ``MoleBlendCollator`` by ``__call__``.
        molecule_descriptors: RDKit 2D descriptor names (``descriptors_moleblend.descriptor_names()``); if given,
            every molecule also gets their raw values, ``molecule_descriptors`` ``[len(names)]`` float64 (NaN where
            RDKit fails), computed on the molecule the graph is built from. A model finetuned with
            ``--molecule_descriptors`` reads them; its featurizer lists the names it needs.
    """

    model_input_names = list(MODEL_INPUT_NAMES)

    def __init__(
        self,
        conformer: str = "auto",
        max_atoms: int = 512,
        errors: str = "raise",
        num_workers: int = 1,
        seed: int = 0,
        keep_hydrogens: bool = False,
        mmff: bool = True,
        conformer_retries: int = 3,
        conformer_timeout: float = 60.0,
        conformer_fallback: str = "error",
        allowed_elements: list[str] | None = None,
        max_hops: int = MAX_HOPS,
        pad_to_multiple_of: int | None = None,
        molecule_descriptors: list[str] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if Chem is None:
            raise ImportError("MoleBlendFeaturizer needs RDKit: pip install rdkit")
        checks = [
            (conformer in CONFORMER_POLICIES, f"conformer must be one of {CONFORMER_POLICIES}, got {conformer!r}"),
            (errors in ("raise", "skip"), f"errors must be 'raise' or 'skip', got {errors!r}"),
            (
                conformer_fallback in ("error", "2d"),
                f"conformer_fallback must be 'error' or '2d', got {conformer_fallback!r}",
            ),
            (isinstance(max_atoms, int) and max_atoms >= 1, f"max_atoms must be a positive int, got {max_atoms!r}"),
            (
                isinstance(num_workers, int) and num_workers >= 0,
                f"num_workers must be an int >= 0, got {num_workers!r}",
            ),
            (conformer_retries >= 0, f"conformer_retries must be >= 0, got {conformer_retries!r}"),
            (conformer_timeout > 0, f"conformer_timeout must be > 0 seconds, got {conformer_timeout!r}"),
            (1 <= max_hops <= 32, f"max_hops must be in 1..32, got {max_hops!r}"),
            (
                not molecule_descriptors or not unknown_descriptors(molecule_descriptors),
                f"molecule_descriptors: this RDKit release does not compute "
                f"{unknown_descriptors(molecule_descriptors or [])[:5]}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.conformer = conformer
        self.max_atoms = max_atoms
        self.errors = errors
        self.num_workers = num_workers
        self.seed = seed
        self.keep_hydrogens = keep_hydrogens
        self.mmff = mmff
        self.conformer_retries = conformer_retries
        self.conformer_timeout = float(conformer_timeout)
        self.conformer_fallback = conformer_fallback
        self.allowed_elements = sorted(allowed_elements) if allowed_elements is not None else None
        self.max_hops = max_hops
        self.pad_to_multiple_of = pad_to_multiple_of
        self.molecule_descriptors = list(molecule_descriptors) if molecule_descriptors else None

    def to_dict(self) -> dict:
        return {k: v for k, v in super().to_dict().items() if not k.startswith("_")}

    # ------------------------------------------------------------------ public API

    def __call__(
        self,
        molecules,
        return_tensors: str | None = "pt",
        labels: Sequence | None = None,
        label_columns: Sequence[str] | None = None,
        **overrides,
    ) -> BatchFeature:
        """Featurize and pad: a ``BatchFeature`` that ``MoleBlendModel(**batch)`` accepts.

        ``labels`` (one value or list per input) or ``label_columns`` (SDF property tags) add a float
        ``labels`` tensor [B, tasks] with NaN for missing values; a ``label_columns`` tag that no record has is
        a ``MissingLabelTagError``. ``return_tensors``: "pt" or "np".
        ``overrides`` change this call's settings (e.g. ``errors="skip"``) without changing the featurizer.
        """
        result = self.featurize(molecules, labels=labels, label_columns=label_columns, **overrides)
        if not result.features:
            raise ValueError(f"no molecule could be featurized.\n{result.report.summary()}")
        collator = MoleBlendCollator(self.pad_to_multiple_of, return_tensors=return_tensors or "np")
        batch = collator(result.features)
        batch.input_indices = result.input_indices
        batch.properties = result.properties
        batch.report = result.report
        return batch

    def featurize(
        self,
        molecules,
        labels: Sequence | None = None,
        label_columns: Sequence[str] | None = None,
        progress: bool | None = None,
        **overrides,
    ) -> FeaturizationResult:
        """Per-molecule, unpadded numpy arrays (what a ``datasets`` table stores and the collator pads)."""
        chunks = list(self.featurize_chunks(molecules, None, labels, label_columns, progress, **overrides))
        return _merge_results(chunks)

    def featurize_chunks(
        self,
        molecules,
        chunk_size: int | None = 10_000,
        labels: Sequence | None = None,
        label_columns: Sequence[str] | None = None,
        progress: bool | None = None,
        **overrides,
    ) -> Iterator[FeaturizationResult]:
        """``featurize`` in pieces of ``chunk_size`` inputs (None: one piece), so that a corpus of millions of
        molecules is featurized with bounded memory; ``input_indices`` count from the start of the whole input
        and each piece carries the report of its own inputs."""
        settings = self._with_overrides(overrides)
        size = _input_size(molecules)
        if labels is not None and size is not None and len(labels) != size:
            raise ValueError(f"got {len(labels)} labels for {size} molecules")
        if labels is None and label_columns:
            _check_label_columns(molecules, list(label_columns))
        if progress is None:
            progress = size >= PROGRESS_MIN_MOLECULES if size is not None else _file_mb(molecules) > 1
        chunk: list[_Record] = []
        seen = 0
        chunk_started = time.perf_counter()
        # Streamed: records are parsed lazily and featurized a chunk at a time; only molecules waiting for a
        # conformer keep their RDKit Mol, so memory grows with one chunk's arrays, not with the corpus.
        with rdBase.BlockLogs():  # failures are reported through our errors, not RDKit's stderr log
            for record in self._progress(self._records(molecules), progress, "featurizing", total=size):
                seen += 1
                chunk.append(record)
                if chunk_size and len(chunk) == chunk_size:
                    yield self._featurize_chunk(chunk, settings, labels, label_columns, progress, chunk_started)
                    chunk, chunk_started = [], time.perf_counter()
        if seen == 0:
            raise ValueError("no molecules given (an empty list, or an SDF file without records)")
        if chunk:
            yield self._featurize_chunk(chunk, settings, labels, label_columns, progress, chunk_started)

    def _featurize_chunk(self, records, settings, labels, label_columns, progress, started) -> FeaturizationResult:
        report = FeaturizationReport(num_inputs=len(records))
        features: dict[int, dict] = {}
        properties_by_index: dict[int, dict[str, str]] = {}
        needs_conformer: list[tuple[int, object]] = []
        texts: dict[int, str] = {}
        with rdBase.BlockLogs():
            for record in records:
                try:
                    features[record.index] = self._featurize_record(record, settings, labels, label_columns)
                except MoleculeError as error:
                    self._fail(error, settings, report)
                    continue
                finally:
                    record_mol, record.mol = record.mol, None  # drop the Mol unless a conformer needs it
                if record.properties:
                    properties_by_index[record.index] = record.properties
                if self._wants_generation(features[record.index], settings):
                    needs_conformer.append((record.index, record_mol))
                    texts[record.index] = record.text
        if needs_conformer:
            self._add_conformers(features, needs_conformer, texts, settings, report, progress)
        kept = sorted(features)
        for index in kept:
            fallback = features[index].pop("_fallback", None)
            if fallback is not None:
                report.add(report.without_3d, fallback)
        names = sorted({tag for props in properties_by_index.values() for tag in props})
        properties = {tag: [properties_by_index.get(i, {}).get(tag) for i in kept] for tag in names}
        report.seconds = time.perf_counter() - started
        return FeaturizationResult([features[i] for i in kept], kept, properties, report)

    # ------------------------------------------------------------------ inputs

    def _records(self, molecules) -> Iterator[_Record]:
        if _is_single(molecules):
            molecules = [molecules]
        elif isinstance(molecules, os.PathLike):
            for record in read_sdf_records(Path(molecules)):
                yield self._sdf_record(record.index, record)
            return
        elif not isinstance(molecules, Iterable):
            raise TypeError(
                "molecules must be a SMILES str, an RDKit Mol, an SdfRecord, a list of them, or an os.PathLike to "
                f"a .sdf/.sdf.gz file; got {type(molecules).__name__}"
            )
        for index, item in enumerate(molecules):
            yield self._sdf_record(index, item) if isinstance(item, SdfRecord) else self._item_record(index, item)

    def _item_record(self, index: int, item) -> _Record:
        if isinstance(item, bytes):
            item = item.decode("utf-8", errors="replace")
        if isinstance(item, str):
            mol = Chem.MolFromSmiles(item)
            if mol is None:
                reason = rdkit_reason(lambda: Chem.MolFromSmiles(item))
                if item.strip().lower().endswith((".sdf", ".sdf.gz")):
                    reason += " (a str is read as SMILES: pass a pathlib.Path to read an SDF file)"
                return _Record(index, item, error=InvalidMoleculeError(index, item, f"invalid SMILES: {reason}"))
            return _Record(index, item, mol=mol)
        if isinstance(item, Chem.Mol):
            text = _describe_mol(item)
            mol = Chem.Mol(item)
            try:
                Chem.SanitizeMol(mol)
            except Exception as error:  # RDKit raises its own exception types here
                return _Record(index, text, error=InvalidMoleculeError(index, text, f"cannot sanitize: {error}"))
            return _Record(index, text, mol=mol, properties={k: str(v) for k, v in item.GetPropsAsDict().items()})
        text = repr(item)
        why = "None (a molecule RDKit failed to parse?)" if item is None else f"unsupported type {type(item).__name__}"
        return _Record(index, text, error=InvalidMoleculeError(index, text, f"not a SMILES str or RDKit Mol: {why}"))

    @staticmethod
    def _sdf_record(index: int, record: SdfRecord) -> _Record:
        """An SDF record, from a file or a caller's list: its parsed Mol is used as is, else its block is parsed
        here (the record is left unchanged). ``index`` is the input position; the text names the record."""
        text = record.describe()
        mol, reason = (record.mol, record.error) if record.parsed else parse_sdf_block(record.block)
        if mol is None:
            reason = f"corrupt or unsanitizable SDF record: {reason or 'RDKit could not parse it'}"
            return _Record(index, text, error=InvalidMoleculeError(index, text, reason), properties=record.properties)
        return _Record(index, text, mol=mol, properties=record.properties)

    # ------------------------------------------------------------------ one molecule

    def _featurize_record(self, record: _Record, settings: dict, labels, label_columns) -> dict:
        if record.error is not None:
            raise record.error
        mol = self._clean(record, settings)
        record.mol = mol
        features = molecule_relations(mol, settings["max_hops"])
        self._check_atoms(record, features["atom_ids"], settings)
        coordinates = conformer_coordinates(mol) if settings["conformer"] in ("auto", "input") else None
        features["has_3d"] = np.bool_(coordinates is not None)
        features["coordinates"] = (
            coordinates if coordinates is not None else np.zeros((mol.GetNumAtoms(), 3), np.float32)
        )
        features["num_atoms"] = np.int64(mol.GetNumAtoms())
        if settings["molecule_descriptors"]:
            features["molecule_descriptors"] = descriptor_values(mol, settings["molecule_descriptors"])
        if labels is not None:
            values = labels[record.index]
            values = [values] if np.ndim(values) == 0 else list(values)
            names = label_columns or [f"label {k}" for k in range(len(values))]
            features["labels"] = np.array(
                [parse_label(v, record.index, record.text, n) for v, n in zip(values, names)], dtype=np.float32
            )
        elif label_columns:
            features["labels"] = np.array(
                [parse_label(record.properties.get(t), record.index, record.text, t) for t in label_columns],
                dtype=np.float32,
            )
        if settings["conformer"] == "input" and coordinates is None:
            error = ConformerError(record.index, record.text, "the input has no 3D coordinates (conformer='input')")
            if settings["conformer_fallback"] == "error":
                raise error
            features["_fallback"] = error
        return features

    def _clean(self, record: _Record, settings: dict):
        """Hydrogen policy, then the size checks (before any O(N^2) work)."""
        mol = record.mol
        if settings["keep_hydrogens"]:
            mol = Chem.AddHs(mol, addCoords=mol.GetNumConformers() > 0)
        elif mol.GetNumHeavyAtoms() != mol.GetNumAtoms():
            params = Chem.RemoveHsParameters()
            params.removeDefiningBondStereo = True
            params.removeWithWedgedBond = True
            mol = Chem.RemoveHs(mol, params)  # isotopic H (deuterium, tritium) stay: removeIsotopes is False
        if mol.GetNumAtoms() == 0:
            raise EmptyMoleculeError(record.index, record.text, "no atoms")
        if mol.GetNumAtoms() > settings["max_atoms"]:
            what = "atoms" if settings["keep_hydrogens"] else "heavy atoms"
            reason = f"{mol.GetNumAtoms()} {what} > max_atoms={settings['max_atoms']}"
            raise MoleculeTooLargeError(record.index, record.text, reason)
        if mol.GetNumBonds() > MAX_BONDS:  # also bounds spd: a longer shortest path needs more bonds
            reason = (
                f"{mol.GetNumBonds()} bonds > {MAX_BONDS}: path_bonds holds 1-based bond rows as int16 "
                "(the featurized cache's fixed dtype)"
            )
            raise MoleculeTooLargeError(record.index, record.text, reason)
        return mol

    @staticmethod
    def _check_atoms(record: _Record, atom_ids: np.ndarray, settings: dict) -> None:
        """Dummy/query atoms (atomic number 0) and elements outside ``allowed_elements`` are unsupported."""
        atomic_numbers = atom_ids[:, 0].astype(np.int64)  # = atomic number for 1..118, 119 for "other"
        dummies = np.flatnonzero(atomic_numbers == 119)
        if len(dummies):
            atom = record.mol.GetAtomWithIdx(int(dummies[0]))
            reason = f"dummy or query atom {atom.GetSymbol()!r} at atom index {atom.GetIdx()}"
            raise UnsupportedAtomError(record.index, record.text, reason)
        if settings["allowed_elements"] is not None:
            table = Chem.GetPeriodicTable()
            allowed = [table.GetAtomicNumber(symbol) for symbol in settings["allowed_elements"]]
            outside = np.flatnonzero(~np.isin(atomic_numbers, allowed))
            if len(outside):
                atom = record.mol.GetAtomWithIdx(int(outside[0]))
                reason = f"element {atom.GetSymbol()!r} (atom {atom.GetIdx()}) is not in allowed_elements"
                raise UnsupportedAtomError(record.index, record.text, reason)

    # ------------------------------------------------------------------ conformers

    @staticmethod
    def _wants_generation(features: dict, settings: dict) -> bool:
        if settings["conformer"] == "generate":
            return True
        return settings["conformer"] == "auto" and not features["has_3d"]

    def _add_conformers(self, features, needs_conformer, text, settings, report, show) -> None:
        conformer_settings = ConformerSettings(
            seed=settings["seed"],
            mmff=settings["mmff"],
            retries=settings["conformer_retries"],
            timeout=settings["conformer_timeout"],
        )
        bar = self._progress(None, show, "generating conformers", total=len(needs_conformer))
        results = generate_conformers(
            needs_conformer, conformer_settings, settings["num_workers"], progress=bar.update if bar else None
        )
        if bar:
            bar.close()
        for index, _ in needs_conformer:
            result = results[index]
            if result.coordinates is not None:
                features[index]["coordinates"] = result.coordinates
                features[index]["has_3d"] = np.bool_(True)
                for note in result.notes:
                    report.add(report.notes, ConformerError(index, text[index], note))
                continue
            kind = ConformerTimeoutError if result.timed_out else ConformerError
            error = kind(index, text[index], result.error)
            if settings["conformer_fallback"] == "2d":
                features[index]["_fallback"] = error
                continue
            del features[index]
            self._fail(error, settings, report)

    # ------------------------------------------------------------------ helpers

    def _with_overrides(self, overrides: dict) -> dict:
        settings = {k: v for k, v in self.to_dict().items() if k != "feature_extractor_type"}
        unknown = set(overrides) - set(settings)
        if unknown:
            raise TypeError(f"unknown featurizer settings: {sorted(unknown)}")
        settings.update(overrides)
        if overrides:
            type(self)(**settings)  # validates the overridden values
        return settings

    @staticmethod
    def _fail(error: MoleculeError, settings: dict, report: FeaturizationReport) -> None:
        if settings["errors"] == "raise":
            raise error
        report.add(report.skipped, error)

    @staticmethod
    def _progress(iterable, show: bool, description: str, total: int | None = None):
        if not show or tqdm is None:
            return iterable
        return tqdm(iterable, total=total, desc=description, unit="mol", dynamic_ncols=True)


def _merge_results(chunks: list[FeaturizationResult]) -> FeaturizationResult:
    """One result from consecutive chunks (property tags missing from a chunk are None there)."""
    if len(chunks) == 1:
        return chunks[0]
    report = FeaturizationReport()
    features, indices = [], []
    names = sorted({tag for c in chunks for tag in c.properties})
    properties: dict[str, list] = {tag: [] for tag in names}
    for c in chunks:
        features += c.features
        indices += c.input_indices
        for tag in names:
            properties[tag] += c.properties.get(tag, [None] * len(c.features))
        report.num_inputs += c.report.num_inputs
        report.seconds += c.report.seconds
        for bucket in ("skipped", "without_3d", "notes"):
            getattr(report, bucket).extend(getattr(c.report, bucket))
    return FeaturizationResult(features, indices, properties, report)


def _is_single(molecules) -> bool:
    """One molecule rather than a collection of them."""
    return isinstance(molecules, (str, bytes, SdfRecord)) or (Chem is not None and isinstance(molecules, Chem.Mol))


def _check_label_columns(molecules, label_columns: list[str]) -> None:
    """``label_columns`` are read from the inputs' properties: each must be a tag of at least one record
    (``MissingLabelTagError`` otherwise). Checked when the properties are known up front: an SDF file (its tags
    are scanned, without RDKit) or a sized collection; a one-pass iterator is not checked."""
    if isinstance(molecules, os.PathLike):
        tags = {tag for record in read_sdf_records(molecules) for tag in record.properties}
        check_label_tags(tags, label_columns, str(molecules))
        return
    items = [molecules] if _is_single(molecules) else molecules
    if not isinstance(items, Sized) or isinstance(items, Iterator):
        return
    tags: set[str] = set()
    for item in items:
        if isinstance(item, SdfRecord):
            tags.update(item.properties)
        elif Chem is not None and isinstance(item, Chem.Mol):
            tags.update(item.GetPropsAsDict())
    all_records = len(items) > 0 and all(isinstance(item, SdfRecord) for item in items)
    check_label_tags(tags, label_columns, "SDF records" if all_records else "the input molecules")


def _input_size(molecules) -> int | None:
    """How many molecules a call holds, when that is known without reading them (None for a file)."""
    if _is_single(molecules):
        return 1
    if isinstance(molecules, os.PathLike):
        return None
    return len(molecules) if isinstance(molecules, Sized) else None


def _file_mb(molecules) -> float:
    try:
        return os.path.getsize(molecules) / 1e6 if isinstance(molecules, os.PathLike) else 0.0
    except OSError:
        return 0.0


def _describe_mol(mol) -> str:
    """A short text for a Mol in messages: its name if it has one, else its SMILES."""
    name = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
    try:
        smiles = Chem.MolToSmiles(mol)
    except Exception:  # an unsanitizable Mol may not write SMILES
        smiles = f"<Mol with {mol.GetNumAtoms()} atoms>"
    return f"{name}: {smiles}" if name else smiles
