"""Runs reach a real `mlflow server`, and parallel experiments share the SQLite store."""

import json
import os
import subprocess

import mlflow
import pytest

from tests.conftest import dvc, run_queue
from tests.support.services import plain_mlflow_server

pytestmark = pytest.mark.slow


@pytest.fixture
def mlflow_server(tmp_path):
    with plain_mlflow_server(tmp_path) as url:
        yield url


def test_runs_go_to_the_server_named_by_the_environment(project, mlflow_server):
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    done = subprocess.run(
        ["dvc", "repro", "train@ex1-42"], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    client = mlflow.MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("keras-exercises")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "ex1 seed 42" and run.info.status == "FINISHED"
    assert (
        run.info.run_id
        == json.loads((project / "outputs/ex1/seed42/run.json").read_text())["run_id"]
    )
    assert "test_accuracy" in run.data.metrics
    assert "evaluation.png" in {a.path for a in client.list_artifacts(run.info.run_id)}
    (model,) = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    assert model.source_run_id == run.info.run_id
    assert not (project / "mlruns").exists()  # nothing went to the local store


def test_two_queued_experiments_in_parallel_share_the_sqlite_store(project):
    dvc(project, "repro", "prepare@ex1")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "data"], cwd=project, check=True)
    rates = ("0.01", "0.005")
    for rate in rates:
        dvc(
            project,
            "exp",
            "run",
            "--queue",
            "train@ex1-42",
            "-S",
            f"exercises.ex1.optimizer.learning_rate={rate}",
        )
    status = run_queue(project, "--jobs", "2")
    assert status.count("Success") == 2, status

    # both runs are in the user's store, not in the temporary copies the queue ran in
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlruns/mlflow.db'}")
    experiment = client.get_experiment_by_name("keras-exercises")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["optimizer.learning_rate"] for r in runs) == sorted(rates)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.tags.get("dvc_experiment") for r in runs)
    logs = "".join(dvc(project, "queue", "logs", name) for name in _experiment_names(status))
    assert "database is locked" not in logs


def _experiment_names(status: str) -> list[str]:
    return [line.split()[1] for line in status.splitlines() if "Success" in line]
