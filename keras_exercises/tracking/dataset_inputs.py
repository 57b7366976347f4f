"""A training run's data as MLflow dataset inputs: the DVC hash as digest, the DVC path as
source, so the runs table says exactly which data version trained each model."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: Path) -> str:
    """The file's MD5, as DVC records it in dvc.lock."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "md5").hexdigest()


def dvc_source(path: str):
    """A dataset source of type "dvc": a path in this DVC project (`dvc get` fetches it)."""
    from mlflow.data.dataset_source import DatasetSource

    class DvcPath(DatasetSource):
        def __init__(self, path: str):
            self.path = path

        @staticmethod
        def _get_source_type() -> str:
            return "dvc"

        def load(self) -> str:
            return self.path

        @staticmethod
        def _can_resolve(raw_source) -> bool:
            return False  # only made here, never guessed from a string

        @classmethod
        def _resolve(cls, raw_source) -> DvcPath:
            return cls(str(raw_source))

        def to_dict(self) -> dict:
            return {"path": self.path}

        @classmethod
        def from_dict(cls, source_dict: dict) -> DvcPath:
            return cls(source_dict["path"])

    return DvcPath(path)


def log_datasets(ex, exercise: str, data_file: Path) -> str:
    """The training and test slices as the active run's dataset inputs, named by dataset
    and split, with the DVC hash of the prepared file as digest and its DVC path as source;
    return the digest."""
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset

    digest = file_digest(data_file)
    source = dvc_source(Path(data_file).as_posix())
    datasets, contexts = [], []
    for split, n, context in (("train", ex.n_train, "training"), ("test", ex.n_test, "testing")):
        # the exercise in the name too: MLflow keeps one record per name and digest, and
        # exercises 1 and 3 prepare byte-identical files under their own paths
        name = f"{ex.dataset} {split}, {n} images ({exercise})"
        datasets.append(MetaDataset(source, name=name, digest=digest))
        contexts.append(context)
    try:
        mlflow.log_inputs(datasets=datasets, contexts=contexts, tags_list=[None, None])
    except mlflow.MlflowException as exc:
        # MLflow's SQL store looks for each dataset, then inserts those it did not find: a
        # run logging the same data at the same moment (queued experiments, a sweep's
        # stages) can insert it in between, and this insert then breaks the unique key.
        # Logged again, the dataset is found and only linked to this run.
        if not _lost_the_race_to_insert(exc):
            raise
        mlflow.log_inputs(datasets=datasets, contexts=contexts, tags_list=[None, None])
    return digest


# how a broken unique key reads, in the store's error or the server's answer: SQLite and
# PostgreSQL ("UNIQUE constraint failed", "violates unique constraint"), MySQL
_UNIQUE_KEY_BROKEN = ("unique constraint", "duplicate entry")


def _lost_the_race_to_insert(exc: Exception) -> bool:
    return any(words in str(exc).lower() for words in _UNIQUE_KEY_BROKEN)
