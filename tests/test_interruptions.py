"""A train stage killed mid-epoch leaves outputs whole, its MLflow run ended, the way back to
the previous outputs named, and the next `dvc repro` completes."""

import os
import signal
import sys

import mlflow
import psutil
import pytest

from tests.conftest import ROOT, at_epoch_3, dvc, user_env, write_params

pytestmark = pytest.mark.slow

OUTPUTS = ("model.keras", "metrics.json", "history.csv", "predictions.csv", "run.json")


def outputs(project) -> dict[str, bytes | None]:
    files = {name: project / "outputs/ex1/seed42" / name for name in OUTPUTS}
    return {name: path.read_bytes() if path.exists() else None for name, path in files.items()}


def latest_ex1_run(project):
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlruns/mlflow.db'}")
    experiment = client.get_experiment_by_name("keras-exercises")
    runs = client.search_runs([experiment.experiment_id], "attributes.run_name = 'ex1 seed 42'")
    return max(runs, key=lambda run: run.info.start_time)


def kill_at_epoch_3(command: list[str], project, sig: int, stage_only: bool = False) -> str:
    """Once training has reached epoch 3, signal `command`'s process group (like Ctrl-C in a
    terminal) or, with `stage_only`, just the stage's process (like the kernel's
    out-of-memory killer). Returns all it printed."""

    def signal_it(process) -> None:
        if not stage_only:
            os.killpg(process.pid, sig)
            return
        (stage,) = [
            child
            for child in psutil.Process(process.pid).children(recursive=True)
            if "stages.train" in child.cmdline()
        ]
        stage.send_signal(sig)

    return at_epoch_3(command, project, user_env(), signal_it)


def test_killed_training_never_leaves_half_an_output(finished, small_params):
    project = finished
    before = outputs(project)
    small_params["exercises"]["ex1"]["training"]["epochs"] = 40
    small_params["exercises"]["ex1"]["training"]["early_stopping"] = None
    write_params(project, small_params)

    # the stage itself, killed three ways: its outputs stay exactly as they were
    for sig, statuses in (
        (signal.SIGINT, {"FAILED", "KILLED"}),
        (signal.SIGTERM, {"FAILED", "KILLED"}),
        (signal.SIGKILL, {"RUNNING"}),  # nothing can run after SIGKILL to close the run
    ):
        kill_at_epoch_3([sys.executable, "-m", "stages.train", "ex1", "42"], project, sig)
        assert outputs(project) == before, sig
        assert latest_ex1_run(project).info.status in statuses, sig
    orphan = latest_ex1_run(project)
    leftovers = [p.name for p in (project / "outputs/ex1/seed42").iterdir() if ".tmp" in p.name]
    assert leftovers == []

    # Ctrl-C on `dvc repro`: DVC removes a stage's outputs before running it, so each one
    # is now either gone or the old file, never half of one, and the stage's last words
    # name the command that brings them all back
    printed = kill_at_epoch_3(["dvc", "repro", "train@ex1-42"], project, signal.SIGINT)
    after = outputs(project)
    assert all(after[name] in (None, before[name]) for name in OUTPUTS)
    assert "stopped by signal 2." in printed
    assert "`dvc checkout --force train@ex1-42`" in printed
    dvc(project, "checkout", "--force", "train@ex1-42")
    assert outputs(project) == before

    # that run of the stage found the run SIGKILL had left RUNNING, its process gone
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlruns/mlflow.db'}")
    ended = client.get_run(orphan.info.run_id)
    assert ended.info.status == "KILLED"
    assert "was gone when the next training run started" in ended.data.tags["killed_because"]

    # the stage alone killed outright under `dvc repro` (out of memory, say): nothing can
    # print, and the command the docs name brings the outputs back
    kill_at_epoch_3(["dvc", "repro", "train@ex1-42"], project, signal.SIGKILL, stage_only=True)
    docs = (ROOT / "docs" / "troubleshooting.md").read_text()
    assert "`dvc checkout --force <stage>`" in docs
    dvc(project, "checkout", "--force", "train@ex1-42")
    assert outputs(project) == before

    # ...and the next `dvc repro` completes normally
    dvc(project, "repro")
    assert '"epochs_run": 40' in (project / "outputs/ex1/seed42/metrics.json").read_text()
    assert latest_ex1_run(project).info.status == "FINISHED"
    runs = client.search_runs([latest_ex1_run(project).info.experiment_id])
    assert [r.info.status for r in runs].count("RUNNING") == 0  # every orphan was ended
    assert "Data and pipelines are up to date." in dvc(project, "repro")
