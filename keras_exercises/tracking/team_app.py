"""`mlflow server --app-name team-auth` (tools/team.sh server): MLflow's basic-auth app, with
the team's experiment and registered models kept the team's.

MLflow's EDIT, which a teammate needs to log runs and register versions, is also what
renaming the experiment or a registered model takes (the same "update" action), and whoever
then runs next would make a new `keras-exercises` of their own. So on top of MLflow's own
checks, only admins rename or delete the experiment `keras-exercises` and the exercises'
registered models; everything else, other experiments and models included, is as MLflow
decides. Loaded through MLflow's own app plugins (the `mlflow.app` entry point in
pyproject.toml), on the server's machine only.
"""

from __future__ import annotations

# the request paths (REST and the UI's ajax ones end alike) that rename or delete, and the
# parameter naming what they act on
_GUARDED = {
    "/mlflow/experiments/update": "experiment_id",
    "/mlflow/experiments/delete": "experiment_id",
    "/mlflow/registered-models/rename": "name",
    "/mlflow/registered-models/delete": "name",
}


def create_app():
    """The basic-auth app, then this check after MLflow's own (Flask runs a request's
    checks in the order they were added, so the user is known and logged in by then)."""
    from mlflow.server import app
    from mlflow.server.auth import create_app as basic_auth_app

    served = basic_auth_app(app)
    app.before_request(_team_resources_kept)
    return served


def _team_resources_kept():
    from flask import g, jsonify, request
    from mlflow.server.auth import _get_request_param, sender_is_admin

    parameter = next((p for path, p in _GUARDED.items() if request.path.endswith(path)), None)
    if parameter is None or getattr(g, "mlflow_authenticated_user", None) is None:
        return None
    if sender_is_admin():
        return None
    what = _team_resource(parameter, _get_request_param(parameter))
    if what is None:
        return None
    response = jsonify(
        error_code="PERMISSION_DENIED",
        message=(
            f"{what} is the team's: only an admin renames or deletes it, so that every "
            "teammate's runs keep going to one place (docs/team.md)."
        ),
    )
    response.status_code = 403
    return response


def _team_resource(parameter: str, value: str) -> str | None:
    """What the request would rename or delete, named, if it is one of the team's."""
    from mlflow.server.handlers import _get_tracking_store

    from keras_exercises.params import EXERCISES
    from keras_exercises.tracking.store import EXPERIMENT
    from keras_exercises.tracking.training_run import REGISTERED_MODEL

    if parameter == "experiment_id":
        from mlflow.exceptions import MlflowException

        try:
            name = _get_tracking_store().get_experiment(value).name
        except MlflowException:
            return None  # no such experiment: MLflow answers that itself
        return f"The experiment {EXPERIMENT}" if name == EXPERIMENT else None
    models = {REGISTERED_MODEL.format(exercise=exercise) for exercise in EXERCISES}
    return f"The registered model {value}" if value in models else None
