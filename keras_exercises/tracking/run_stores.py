"""The stores a report's runs live in, each named by its stage's run.json (earlier runs may
be in the local store, later ones on the team server): a client for each, and what went
wrong, with its fix, when one cannot be written to."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

from keras_exercises.tracking.credentials import without_credentials
from keras_exercises.tracking.failures import caused_by
from keras_exercises.tracking.failures import first_line as summary
from keras_exercises.tracking.store import STORE_DIR, default_store, fail_fast_over_http


class StoreUnusable(Exception):
    """A store the report cannot write to; its message says why and what to do."""


def store_of(run: dict) -> str:
    """The tracking URI a run.json names. A project's local store is this project's, wherever
    the run.json was written (the project may have moved, or be a copy), unless
    MLFLOW_TRACKING_URI names a project's local store; a run.json written before they named
    a store means the store in use."""
    uri = run.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri or _is_project_store(uri):
        in_use = os.environ.get("MLFLOW_TRACKING_URI", "")
        # a sweep's tasks run in clones and log to the launching project's local store
        return in_use if _is_project_store(in_use) else default_store()[0]
    return uri


def _is_project_store(uri: str) -> bool:
    return uri.startswith("sqlite:") and _path(uri).parts[-2:] == (STORE_DIR, "mlflow.db")


def _path(sqlite_uri: str) -> Path:
    # sqlite:///relative/path or sqlite:////absolute/path, as SQLAlchemy has them
    return Path(unquote(sqlite_uri.removeprefix("sqlite:///").partition("?")[0]))


def client_for(uri: str):
    """An MlflowClient of the store at `uri` (its credentials, as for any store, from
    MLFLOW_TRACKING_USERNAME/PASSWORD or ~/.mlflow/credentials). A local store that is not
    there is not made: that would hide where the runs went."""
    import mlflow

    if uri.startswith("sqlite:"):
        path = _path(uri)
        if not path.is_file():
            raise StoreUnusable(
                f"there is no MLflow store at {path} (moved or deleted?): restore it, or "
                "retrain those runs into the store in use"
            )
    fail_fast_over_http(uri)
    try:
        return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    except Exception as exc:
        raise StoreUnusable(
            f"{without_credentials(uri)} is not a tracking URI MLflow can open "
            f"({summary(exc)}): correct `tracking_uri` in the runs' run.json, or retrain them"
        ) from None


def failure(uri: str, exc: Exception) -> tuple[bool, str]:
    """(whether the store's other runs may still work, why it failed and the fix) for an
    error writing to a run in the store at `uri`; re-raises what is not a store failure."""
    import requests
    from mlflow.exceptions import MlflowException

    address = without_credentials(uri)
    if caused_by(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return False, (
            f"the store at {address} is unreachable: once it is up, "
            "`dvc repro --force --single-item report` writes them"
        )
    if not isinstance(exc, MlflowException):
        raise exc
    if exc.error_code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return False, (
            f"the store at {address} refused these credentials ({exc.error_code}): set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a teammate's login "
            "(a reader cannot write), then `dvc repro --force --single-item report`"
        )
    if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
        return True, (
            f"the store at {address} has no such run (deleted, or its run.json came from "
            "another store): retrain it with `dvc repro --force` on its train stage"
        )
    return False, f"the store at {address} failed ({summary(exc)})"
