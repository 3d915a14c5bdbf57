"""Data, in the order it flows: a file is read into a ``MoleculeTable`` (``tables``), featurized once into a cached
``datasets`` table (``cache``), split (``splits``) and batched (``samplers``). Also the embedded sample data sets
(``ESOL``, ``QM9_SAMPLE``: paths inside the installed package; see ``data/README.md`` for their sources)."""

from importlib import resources
from pathlib import Path

from .cache import dataset_features, featurize_table, merge_reports
from .samplers import LengthBucketedBatchSampler, padding_counts, split_train_validation
from .splits import make_split
from .tables import InputError, MoleculeTable, infer_problem_type, label_statistics, read_molecule_table

_HERE = Path(str(resources.files(__name__)))
ESOL = _HERE / "esol.csv"  # 1,128 molecules, aqueous solubility (logS), Delaney 2004 via MoleculeNet
QM9_SAMPLE = _HERE / "qm9_sample.sdf.gz"  # 2,000 QM9 molecules with DFT geometries and HOMO, LUMO, gap as SDF tags

__all__ = [
    "ESOL",
    "QM9_SAMPLE",
    "InputError",
    "LengthBucketedBatchSampler",
    "MoleculeTable",
    "dataset_features",
    "featurize_table",
    "infer_problem_type",
    "label_statistics",
    "make_split",
    "merge_reports",
    "padding_counts",
    "read_molecule_table",
    "split_train_validation",
]
