"""What the team's tests share: each machine's login, DVC run as its user, the reader's
requests, params changed as a user would, and two machines that shared a pipeline."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from mlflow.exceptions import MlflowException

from tests.conftest import NATIVE_LOG_NOISE, dvc, dvc_run
from tests.support.project_copy import copy_project, git, set_params
from tests.support.services import READER, team_script


def env_of(team, clone: Path) -> dict[str, str]:
    """Machine A is alice's, B is bob's: two teammates, each with their own login."""
    return team.user_env("bob" if clone.name == "b" else "alice")


def login_in_uri(team, clone: Path) -> tuple[dict[str, str], str, str]:
    """The clone's environment with its login in MLFLOW_TRACKING_URI, not in MLflow's
    variables; the user and password."""
    env = env_of(team, clone)
    password = env.pop("MLFLOW_TRACKING_PASSWORD")
    user = env.pop("MLFLOW_TRACKING_USERNAME")
    env["MLFLOW_TRACKING_URI"] = team.url.replace("://", f"://{user}:{password}@")
    return env, user, password


def refused(change: Callable[[], object]) -> str:
    """What the server said refusing `change`, which must be refused as not permitted."""
    with pytest.raises(MlflowException) as refusal:
        change()
    assert refusal.value.error_code == "PERMISSION_DENIED"
    return str(refusal.value)


def team_dvc(team, clone: Path, *args: str) -> str:
    return dvc(clone, *args, env=env_of(team, clone))


def get_as(
    team, login: tuple[str, str] | None, path: str, headers: dict | None = None, **params
) -> requests.Response:
    """GET `path` on the team's server with `login` (None: none), trusting its certificate."""
    return requests.get(
        f"{team.url}{path}",
        params=params,
        auth=login,
        headers=headers,
        verify=str(team.cert),
        timeout=10,
    )


def experiment_answer(team, login: tuple[str, str] | None, headers: dict | None = None) -> int:
    """The HTTP status of asking the server for the team's experiment with `login`."""
    path = "/api/2.0/mlflow/experiments/get-by-name"
    return get_as(team, login, path, headers, experiment_name="keras-exercises").status_code


def reader_get(team, path: str, **params) -> requests.Response:
    return get_as(team, (READER, team.passwords[READER]), path, **params)


def set_rate(clone: Path, rate: float, epochs: int | None = None) -> None:
    changes = {"exercises.ex1.optimizer.learning_rate": rate}
    if epochs:
        changes |= {
            "exercises.ex1.training.epochs": epochs,
            "exercises.ex1.training.early_stopping": None,
        }
    set_params(clone, changes)


def restore_named(team, clone: Path, output: str) -> None:
    (command,) = set(re.findall(r"`(dvc checkout [^`]+)`", output))
    team_dvc(team, clone, *command.split()[1:])


def stage_fails(project: Path, env: dict[str, str]) -> str:
    """`python -m stages.train ex1 42` by hand in `project`, which has no data: a failure
    that is not the missing data came before any data was loaded."""
    done = subprocess.run(
        [sys.executable, "-m", "stages.train", "ex1", "42"],
        cwd=project,
        env={**env, "KERAS_EXERCISES_WARM": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "prepare@ex1" not in done.stderr
    return done.stdout + done.stderr


def shared_by_two_machines(team, tmp: Path, params: str) -> tuple[Path, Path]:
    """Machine A has run the pipeline with `params` and shared it; B is a fresh clone that
    synced."""
    origin = tmp / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    a = copy_project(tmp / "a", params)
    git(a, "remote", "add", "origin", str(origin))
    team_script(a, team.env, "remote")
    git(a, "commit", "-qam", "the team's DVC remote")
    # each stage in a process of its own, where the finished project ran warm: TensorFlow
    # imported in each, and the lines it prints then filtered out
    done = dvc_run(a, "repro", env={**env_of(team, a), "KERAS_EXERCISES_WARM": "0"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert not NATIVE_LOG_NOISE.findall(done.stderr), done.stderr
    git(a, "add", "-A")
    git(a, "commit", "-qm", "results")
    team_script(a, team.env, "share")

    b = tmp / "b"
    subprocess.run(["git", "clone", "-q", str(origin), str(b)], check=True)
    git(b, "config", "user.name", "teammate")
    git(b, "config", "user.email", "teammate@localhost")
    team_script(b, env_of(team, b), "sync")
    return a, b


def experiments_shown(team, clone: Path) -> dict[str, dict]:
    """What `dvc exp show --json` shows of each named experiment in `clone`."""
    shown = json.loads(team_dvc(team, clone, "exp", "show", "--json"))
    return {
        e["name"]: e["data"]
        for baseline in shown
        for e in [exp for run in (baseline.get("experiments") or []) for exp in run["revs"]]
    }


def files_written(*clones: Path) -> list[Path]:
    """Every file the pipeline, DVC and the team's script wrote in `clones`."""
    return [
        path
        for clone in clones
        for folder in ("outputs", "reports", ".dvc")
        for path in (clone / folder).rglob("*")
        if path.is_file()
    ] + [clone / "dvc.lock" for clone in clones]


def cached_files(clone: Path) -> list[Path]:
    return sorted(p.relative_to(clone) for p in (clone / ".dvc/cache").rglob("*") if p.is_file())
