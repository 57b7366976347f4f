"""Addresses of runs and experiments in the MLflow UI, and where the report's links lead."""

from __future__ import annotations

from urllib.parse import urlsplit

from keras_exercises.tracking.credentials import without_credentials

MODEL_TRAINING_VIEW = "workflowType=machine_learning"
LOCAL_UI_COMMAND = (
    "mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --host 127.0.0.1 --port {port}"
)


def is_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def ui_address(tracking_uri: str, mlflow_ui: str) -> str:
    """Where the MLflow UI shows runs of `tracking_uri`: the tracking server itself, or for
    the local store the `mlflow ui` that the README starts (`mlflow_ui` in params.yaml).
    Never with credentials, even from a run.json written before they were left out."""
    return without_credentials(tracking_uri) if is_server(tracking_uri) else mlflow_ui


def experiment_page(base_url: str, experiment_id: str) -> str:
    """The address of the experiment's runs table (its model-training view) in the UI."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING_VIEW}"


def run_page(base_url: str, experiment_id: str, run_id: str) -> str:
    return (
        f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING_VIEW}"
    )


def page_of(run: dict, mlflow_ui: str) -> str:
    """The UI page of a run as a stage's run.json records it."""
    base = ui_address(run.get("tracking_uri") or "", mlflow_ui)
    return run_page(base, run["experiment_id"], run["run_id"])


def links_note(tracking_uri: str, mlflow_ui: str) -> str:
    """Where the run links lead, and for the local store how to start the UI they open."""
    if is_server(tracking_uri):
        return f"Run links open the tracking server {without_credentials(tracking_uri)}."
    port = urlsplit(mlflow_ui).port or 80
    return (
        f"Run links open the MLflow UI at {mlflow_ui}; start it from the project root with "
        f"`{LOCAL_UI_COMMAND.format(port=port)}`."
    )
