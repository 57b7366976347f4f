"""The MLflow tracking store: the local one under mlruns/ or a server, checked before any
work, and one message when it fails midway."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock

from keras_exercises.runtime.errors import PipelineError
from keras_exercises.runtime.paths import project_root
from keras_exercises.tracking import empty_store

EXPERIMENT = "keras-exercises"
STORE_DIR, DATABASE = "mlruns", "mlflow.db"
# MLflow 3's UI opens an experiment on its GenAI pages unless told it holds model training
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
# the user:password part of a URL; what the stages write or print never carries it
_USERINFO = re.compile(r"(?<=://)[^/?#\s@]+@")


def without_credentials(text: str) -> str:
    """`text` with the user:password of every URL in it removed. A tracking URI may carry
    them (MLflow accepts https://user:password@host), and MLflow's error messages repeat the
    URI; the credentials belong in MLFLOW_TRACKING_USERNAME/PASSWORD instead."""
    return _USERINFO.sub("", text)


def tracking_uri() -> str:
    """The tracking URI in use, fit to be written down: without credentials."""
    import mlflow

    return without_credentials(mlflow.get_tracking_uri())


def default_store() -> tuple[str, str]:
    """(tracking URI, artifact location) of the local store under mlruns/, absolute.

    timeout: parallel experiments (`dvc queue start --jobs 2`) write to one SQLite file;
    a writer waits up to a minute for the lock instead of failing with "database is locked".
    """
    store = project_root() / STORE_DIR
    store.mkdir(exist_ok=True)
    return f"sqlite:///{store / DATABASE}?timeout=60", (store / "artifacts").as_uri()


def connect() -> str:
    """Point MLflow at the store and make sure it answers; return the experiment id.

    Runs before any training so an unreachable server costs seconds, not a training run.
    """
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    artifact_location = None
    if not uri:
        uri, artifact_location = default_store()
    fail_fast_over_http(uri)
    mlflow.set_tracking_uri(uri)
    try:
        if artifact_location is None:
            return _get_or_create_experiment(None)
        # Creating the database and the experiment is not safe to race: parallel stages
        # take turns through a lock file beside the store.
        with FileLock(project_root() / STORE_DIR / ".lock", timeout=120):
            empty_store.seed(project_root() / STORE_DIR / DATABASE)
            return _get_or_create_experiment(artifact_location)
    except Exception as exc:
        raise PipelineError(
            f"cannot use the MLflow tracking store at {without_credentials(uri)} "
            f"({summary(exc)}). Start the "
            "server it names, fix MLFLOW_TRACKING_URI, or unset it to use the local store "
            "under mlruns/."
        ) from None


def fail_fast_over_http(uri: str) -> None:
    """MLflow's default is minutes of retries; a dead server should fail in seconds."""
    if uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def summary(exc: Exception) -> str:
    """An exception's type and first line: MLflow's messages run to whole tracebacks."""
    lines = without_credentials(str(exc)).splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


@contextmanager
def store_failures_reported() -> Iterator[None]:
    """Around a stage's MLflow work after connect(): the store failing midway (its server
    or database gone) ends the stage with one message instead of a traceback."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, requests.exceptions.RequestException) as exc:
        raise PipelineError(
            f"lost the MLflow tracking store at {tracking_uri()} midway "
            f"({summary(exc)}). "
            "Make sure its server and database are up, then rerun `dvc repro`; the run it "
            "leaves RUNNING is marked KILLED by the next training run."
        ) from None


def _get_or_create_experiment(artifact_location: str | None) -> str:
    import mlflow

    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return mlflow.create_experiment(
            EXPERIMENT, artifact_location=artifact_location, tags={KIND_TAG: KIND}
        )
    if experiment.tags.get(KIND_TAG) != KIND:  # an experiment made before the tag existed
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, KIND_TAG, KIND)
    return experiment.experiment_id
