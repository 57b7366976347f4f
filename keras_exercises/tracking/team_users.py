"""`tools/team.sh add-user [--reader] [--reset-password] NAME`: a teammate or a reader on the
team's MLflow server (its basic-auth app), run by an admin; again for an existing user, it
grants what is missing (or resets the password). The experiment and every exercise's
registered model are made first, by the admin, so that teammates get EDIT on them and
never MANAGE (which MLflow gives whoever creates a resource): only admins delete."""

from __future__ import annotations

import argparse
import os
import warnings
from urllib.parse import urlsplit

from keras_exercises.params import EXERCISES
from keras_exercises.runtime.errors import PipelineError, run_stage
from keras_exercises.tracking.failures import first_line as summary
from keras_exercises.tracking.links import is_server
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


def add_user(name: str, password: str | None, reader: bool, reset_password: bool) -> list[str]:
    """Make the user (if missing) and grant READ (a reader) or EDIT (a teammate: runs, model
    versions, aliases) on the team's experiment and models, whatever of it is missing: run
    again, it completes an addition that stopped midway. Returns what it did."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    uri = mlflow.get_tracking_uri()
    experiment_id, models = team_resources(mlflow.MlflowClient(uri))
    auth = get_app_client("basic-auth", tracking_uri=uri)
    done = []
    try:
        auth.get_user(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        auth.create_user(name, _password(name, password, "new"))
        done.append("created")
    else:
        if reset_password:
            auth.update_user_password(name, _password(name, password, "reset"))
            done.append("password reset")
    permission = "READ" if reader else "EDIT"
    wanted = [("experiment", experiment_id)] + [("registered_model", m) for m in models]
    for kind, resource in wanted:
        # what the user can do there now, from a grant or the server's default
        if auth.get_user_permission(name, kind, resource).permission == permission:
            continue
        try:
            auth.grant_user_permission(name, kind, resource, permission)
        except MlflowException as exc:  # another permission was granted: replaced
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            auth.revoke_user_permission(name, kind, resource)
            auth.grant_user_permission(name, kind, resource, permission)
        done.append(f"{permission} on {resource if kind != 'experiment' else EXPERIMENT}")
    return done


def _password(name: str, password: str | None, why: str) -> str:
    if not password:
        raise PipelineError(
            f"no password for {name} ({why}): set {PASSWORD_ENV} (not an argument, which "
            "`ps` would show to everyone on the machine)."
        )
    return password


def refuse_plain_http(uri: str) -> None:
    """An admin's password over http:// crosses the network in the clear, except to this
    machine (a server behind a reverse proxy here)."""
    from keras_exercises.tracking.team_server_checks import is_loopback

    parts = urlsplit(uri)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise PipelineError(
            f"MLFLOW_TRACKING_URI is http://{parts.hostname}...: adding users sends the admin's "
            "password and the new one, which plain HTTP shows to anyone on the path. Use the "
            "server's https:// address."
        )


def main(argv: list[str]) -> None:
    # MLflow's on import, and Starlette's (a UserWarning) when MLflow's server app loads for
    # its auth client: neither is this command's to fix, nor its user's
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")
    parser = argparse.ArgumentParser(prog="tools/team.sh add-user", description=__doc__)
    parser.add_argument("--reader", action="store_true", help="read only")
    parser.add_argument(
        "--reset-password", action="store_true", help=f"an existing user's, to {PASSWORD_ENV}"
    )
    parser.add_argument("name")
    args = parser.parse_args(argv)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not is_server(uri):
        raise PipelineError(
            "MLFLOW_TRACKING_URI must name the team's server (https://<name>:<port>), "
            "with an admin's login in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD."
        )
    refuse_plain_http(uri)
    password = os.environ.get(PASSWORD_ENV)
    try:
        done = add_user(args.name, password, args.reader, args.reset_password)
    except PipelineError:
        raise
    except Exception as exc:
        raise PipelineError(
            f"could not add {args.name} on {tracking_uri()} ({summary(exc)}). Adding users "
            "takes an admin's login (MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD); "
            "run it again to complete what it did not."
        ) from None
    said = ", ".join(done) if done else "nothing was missing"
    print(f"{args.name} on {EXPERIMENT} and its models: {said}")


if __name__ == "__main__":
    run_stage(main)
