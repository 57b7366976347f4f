"""The MLflow tracking store: the local one under mlruns/ or a server, checked before any
work, waited for while it is away, and one message naming the cause when it fails."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock

from keras_exercises.runtime.errors import PipelineError
from keras_exercises.runtime.paths import project_root
from keras_exercises.tracking import empty_store, failures, outages
from keras_exercises.tracking.credentials import move_into_environment, without_credentials
from keras_exercises.tracking.links import is_server

EXPERIMENT = "keras-exercises"
STORE_DIR, DATABASE = "mlruns", "mlflow.db"
# MLflow 3's UI opens an experiment on its GenAI pages unless told it holds model training
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"


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
    """Point MLflow at the store and make sure this stage can log to it; return the
    experiment id. Runs before any data is loaded, so that a wrong login or a missing
    permission costs seconds, not a training run; a server that is away is waited for
    (outages.py), here and at every later request of the stage."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri and is_server(uri):
        return _connect_to_server(move_into_environment(uri))
    artifact_location = None
    if not uri:
        uri, artifact_location = default_store()
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
            f"({failures.first_line(exc)}). Fix MLFLOW_TRACKING_URI, or unset it to use "
            "the local store under mlruns/."
        ) from None


def _connect_to_server(uri: str) -> str:
    import mlflow

    limit = outages.wait_limit()
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    with failures_reported("connecting"):
        experiment = _reach(client, uri, limit)
        # it answers: from here on, this function's writes too are retried while it is away
        outages.wait_out_outages(without_credentials(uri), limit)
        if experiment is None:
            if _has_logins(uri):
                # a teammate who made it would own it (MANAGE): the team's stays the admins'
                raise PipelineError(
                    f"the experiment {EXPERIMENT} is missing on the MLflow tracking server at "
                    f"{without_credentials(uri)} (renamed or deleted): an admin restores it "
                    "(renames it back, or `mlflow experiments restore`), or makes it anew "
                    "with `tools/team.sh add-user`."
                )
            experiment_id = mlflow.create_experiment(EXPERIMENT, tags={KIND_TAG: KIND})
        else:
            experiment_id = experiment.experiment_id
            # the same value again: a write that changes nothing, and fails now, not after
            # the training, where this login may not log runs (a reader's)
            client.set_experiment_tag(experiment_id, KIND_TAG, KIND)
    return experiment_id


def _reach(client, uri: str, limit: float):
    """The team's experiment (None if there is none), once the server answers: asked again
    every few seconds for up to `limit` while it is away, failing at once on anything
    waiting does not mend (TLS, login, permission)."""
    outages.use_retries(0)  # each try answers at once; this loop does the waiting
    waiting = outages.Waiting(without_credentials(uri), limit)
    deadline = time.monotonic() + limit
    while True:
        try:
            experiment = client.get_experiment_by_name(EXPERIMENT)
        except Exception as exc:
            left = deadline - time.monotonic()
            if not failures.is_outage(exc) or left <= 0:
                raise
            waiting.started(failures.how_away(exc))
            time.sleep(min(5.0, left))
            continue
        waiting.ended()
        return experiment


def _has_logins(uri: str) -> bool:
    """Whether the server runs MLflow's auth app, which answers who is logged in."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    response = http_request(
        get_default_host_creds(uri), "/api/2.0/mlflow/users/current", "GET", max_retries=0
    )
    return response.status_code == 200


@contextmanager
def failures_reported(doing: str, left_running: bool = False) -> Iterator[None]:
    """Around a stage's MLflow work: a store failure ends the stage with one paragraph
    naming its cause and fix instead of a traceback. `left_running`: a training run is open,
    which the next training run marks KILLED."""
    try:
        yield
    except PipelineError:
        raise
    except Exception as exc:
        import mlflow

        uri = mlflow.get_tracking_uri()
        waited = outages.wait_limit() if is_server(uri) else 0
        message = failures.describe(uri, exc, doing, waited)
        if message is None:
            raise
        if left_running:
            message += "; the run it leaves RUNNING is marked KILLED by the next training run"
        raise PipelineError(message + ".") from None


def fail_fast_over_http(uri: str) -> None:
    """For the report, which writes to stores it did not connect to: a store that is away
    costs it its runs' annotations, never a training, so it waits only seconds for one."""
    if is_server(uri):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


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
