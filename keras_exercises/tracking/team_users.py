"""`tools/team.sh add-user [--reader] NAME`: a teammate or a reader on the team's MLflow
server (its basic-auth app), run by an admin. The experiment and every exercise's
registered model are made first, by the admin, so that teammates get EDIT on them and
never MANAGE (which MLflow gives whoever creates a resource): only admins delete."""

from __future__ import annotations

import argparse
import os
import warnings

from keras_exercises.params import EXERCISES
from keras_exercises.runtime.errors import PipelineError, run_stage
from keras_exercises.tracking.failures import first_line as summary
from keras_exercises.tracking.store import EXPERIMENT, KIND, KIND_TAG, tracking_uri
from keras_exercises.tracking.training_run import REGISTERED_MODEL

PASSWORD_ENV = "TEAM_USER_PASSWORD"


def team_resources(client) -> tuple[str, list[str]]:
    """The experiment's id and the registered models' names, each made if missing."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        experiment_id = client.create_experiment(EXPERIMENT, tags={KIND_TAG: KIND})
    else:
        experiment_id = experiment.experiment_id
    models = [REGISTERED_MODEL.format(exercise=exercise) for exercise in EXERCISES]
    for model in models:
        try:
            client.create_registered_model(model)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    return experiment_id, models


def add_user(name: str, password: str, reader: bool) -> str:
    """Make the user and grant READ (a reader) or EDIT (a teammate: runs, model versions,
    aliases) on the team's experiment and models; return what was granted."""
    import mlflow
    from mlflow.server import get_app_client

    uri = mlflow.get_tracking_uri()
    client = mlflow.MlflowClient(uri)
    experiment_id, models = team_resources(client)
    auth = get_app_client("basic-auth", tracking_uri=uri)
    auth.create_user(name, password)
    permission = "READ" if reader else "EDIT"
    auth.grant_user_permission(name, "experiment", experiment_id, permission)
    for model in models:
        auth.grant_user_permission(name, "registered_model", model, permission)
    return permission


def main(argv: list[str]) -> None:
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # MLflow's, on import
    parser = argparse.ArgumentParser(prog="tools/team.sh add-user", description=__doc__)
    parser.add_argument("--reader", action="store_true", help="read only")
    parser.add_argument("name")
    args = parser.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        raise PipelineError(
            f"no password for {args.name}: set {PASSWORD_ENV} (not an argument, which `ps` "
            "would show to everyone on the machine)."
        )
    if not os.environ.get("MLFLOW_TRACKING_URI", "").startswith(("http://", "https://")):
        raise PipelineError(
            "MLFLOW_TRACKING_URI must name the team's server (https://<name>:<port>), "
            "with an admin's login in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD."
        )
    try:
        permission = add_user(args.name, password, args.reader)
    except Exception as exc:
        raise PipelineError(
            f"could not add {args.name} on {tracking_uri()} ({summary(exc)}). Adding users "
            "takes an admin's login (MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD); "
            "a name can be added once."
        ) from None
    print(f"{args.name} added with {permission} on {EXPERIMENT} and its models")


if __name__ == "__main__":
    run_stage(main)
