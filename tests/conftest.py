"""One fixture shrinks the real params.yaml; tests never invent a second config."""

from __future__ import annotations

import copy
import gc
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from keras_exercises.data.mirror import build_mirror
from tests.support.environment import environment_kept
from tests.support.project_copy import ROOT, copy_project, git, set_dvc_remote
from tests.support.sweeps import ray_without_token


def shrink(params: dict, mirror: str | None) -> dict:
    """The real params at toy size: a few dozen samples, 2 epochs, a small random MobileNetV2,
    one TensorFlow thread per stage (the suite runs three workers on two cores)."""
    small = copy.deepcopy(params)
    small["data"]["mirror"] = mirror
    small["threads"] = 1
    for ex in small["exercises"].values():
        ex["n_train"], ex["n_test"] = 40, 20
        ex["training"]["epochs"] = 2
        if ex["model"]["kind"] == "mobilenet_v2":
            ex["model"]["weights"], ex["model"]["input_size"] = None, 32
        if "mc" in ex:
            ex["mc"]["passes"] = 3
    return small


def pytest_configure(config: pytest.Config) -> None:
    # DVC, MLflow and Ray report usage to their servers; tests talk to 127.0.0.1. MLflow's
    # telemetry thread, once it fails to reach its server, also unsets an environment
    # variable of its own while the stage's thread may be reading os.environ (a KeyError
    # inside `requests` failed a training stage once)
    os.environ["DVC_NO_ANALYTICS"] = "1"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Ray's nodes, and the sweep drivers tests start, on 127.0.0.1 rather than the
    # machine's outward address (read when ray is imported, which tests do lazily)
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


# The two longest files, a worker each from the start: the team's servers and the sweep's
# Ray cluster side by side once starved each other on two cores, while every team request
# spent half a second of the server's CPU checking a password; MLflow's credential cache
# (tools/team.sh) ended that.
LONGEST = ("test_team.py", "test_sweep.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first, so the workers (pyproject's addopts: each file on one worker,
    in this order) finish together: the team's servers and the sweep, then the other real
    pipelines, then the rest; within each, files with more tests first, as xdist orders."""
    tests_in = Counter(item.path for item in items)

    def weight(item: pytest.Item) -> tuple[int, int]:
        tier = 1 if item.get_closest_marker("slow") else 2
        return (0 if item.path.name in LONGEST else tier), -tests_in[item.path]

    items.sort(key=weight)  # stable: within a file, collection order


def pytest_collection_finish(session: pytest.Session) -> None:
    # What the test modules imported (MLflow, Ray, DVC, boto: millions of objects) lives to
    # the end: out of the collector's sight, each full collection (Python's own while tests
    # run, pytest's five at the end to find unraisable exceptions) skips them
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def no_stray_mlflow_store():
    """MLflow's default store is sqlite:///mlflow.db in the working directory: whatever
    touches MLflow before the project's tracking set-up (keras_exercises.tracking) leaves one
    in the checkout. Fail the session if any test or code under test does."""
    stray = [Path.cwd() / "mlflow.db", ROOT / "mlflow.db"]
    before = {path for path in stray if path.exists()}
    yield
    made = [str(path) for path in stray if path.exists() and path not in before]
    assert not made, f"something used MLflow's default store and made {made}"


@pytest.fixture
def ray_environment_restored(tmp_path):
    """No token mode left on for the tests after (ray_without_token), nor Ray's debugger
    hook in PYTHONBREAKPOINT, which would give their stages warm interpreters of their own."""
    with ray_without_token(tmp_path):
        yield


@pytest.fixture
def stage_dir(tmp_path, monkeypatch):
    """A folder with the stand-in stage, and servers of their own: their own temp dir,
    short enough for a socket's path (pytest's are not)."""
    from tests.support.warm import STAGE, servers_in

    (tmp_path / "fake_stage.py").write_text(STAGE)
    runtime = Path(tempfile.mkdtemp(prefix="warm-", dir="/tmp"))
    (tmp_path / "runtime").symlink_to(runtime)
    monkeypatch.setenv("TMPDIR", str(runtime))
    monkeypatch.setenv("KERAS_EXERCISES_WARM_IDLE", "30")
    yield tmp_path
    for server in servers_in(runtime):
        server.kill()
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("project")


@pytest.fixture(scope="module")
def local_store(project_dir):
    """A project folder whose MLflow store is the local one, connected; one for each module
    that asks, as making a store's schema takes seconds."""
    import mlflow

    from keras_exercises.tracking import store

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project_dir)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("DVC_ROOT", raising=False)
        experiment_id = store.connect()
        yield experiment_id, mlflow.MlflowClient()
        mlflow.set_tracking_uri(None)


@pytest.fixture
def environment_restored():
    """connect() to a server sets MLflow's retry and login variables for the stage's whole
    process; a test's must not reach the tests after it."""
    with environment_kept():
        yield


@pytest.fixture(scope="session")
def real_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def made_once(tmp_path_factory, worker_id: str, name: str, make) -> Path:
    """`make(path)` once a test session, whichever xdist worker asks first; the others wait
    for it and share `path`, which no test may change (tests copy it). A worker whose `make`
    failed leaves no mark, so the next one to ask tries again and fails the same way."""
    if worker_id == "master":  # one process, which asks once
        make(tmp_path_factory.getbasetemp() / name)
        return tmp_path_factory.getbasetemp() / name
    shared = tmp_path_factory.getbasetemp().parent  # the session's, above every worker's
    path, done = shared / name, shared / f"{name}.done"
    with FileLock(shared / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)
            make(path)
            done.touch()
    return path


@pytest.fixture(scope="session")
def tiny_mirror(tmp_path_factory, worker_id) -> Path:
    """Synthetic npz files of every dataset's real shape (no network, no shared slices)."""

    def make(mirror: Path) -> None:
        mirror.mkdir()
        build_mirror(mirror, real=None, n_train=60, n_test=30)

    return made_once(tmp_path_factory, worker_id, "mirror", make)


@pytest.fixture
def small_params(real_params, tiny_mirror) -> dict:
    return shrink(real_params, str(tiny_mirror))


def write_params(directory: Path, params: dict) -> Path:
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture
def project(tmp_path, small_params) -> Path:
    """A copy of this project's tracked files in a fresh git repo, with shrunk params."""
    return copy_project(tmp_path / "project", yaml.safe_dump(small_params, sort_keys=False))


@pytest.fixture
def pushed_project(project: Path, tmp_path: Path, monkeypatch) -> Path:
    """`project`, pushed to a bare git origin, with a local DVC remote; the working
    directory, as for a user who runs a command there."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    git(project, "remote", "add", "origin", str(origin))
    set_dvc_remote(project, str(tmp_path / "dvc-remote"))
    git(project, "commit", "-qam", "a DVC remote")
    git(project, "push", "-q", "origin", "HEAD:refs/heads/main")
    monkeypatch.chdir(project)
    return project


def user_env(env: dict | None = None) -> dict[str, str]:
    """The environment a user's command gets: the local MLflow store unless `env` says."""
    base = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**base, **(env or {})}


def dvc_run(project: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """A DVC command as a user types it, with the local MLflow store unless `env` says."""
    return subprocess.run(
        ["dvc", *args],
        cwd=project,
        env=user_env(env),
        capture_output=True,
        text=True,
        timeout=1200,
    )


def dvc(project: Path, *args: str, env: dict | None = None) -> str:
    done = dvc_run(project, *args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dvc_fails(project: Path, *args: str, env: dict | None = None) -> str:
    """Everything a failing DVC command printed."""
    done = dvc_run(project, *args, env=env)
    assert done.returncode != 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def run_queue(project: Path, *start: str, env: dict | None = None, timeout: float = 600) -> str:
    """`dvc queue start START...`, then `dvc queue status` once no experiment is queued or
    running (asked every 10 s: each asking costs DVC seconds of CPU, taken from the
    experiments it waits for), then `dvc queue stop`. Returns that status.

    The workers `queue start` spawns keep its standard streams. Read through a pipe (as
    `dvc()` reads), `queue start` would return only once they exit, and a worker whose idle
    monitor died never does: two workers' replies race in DVC's file broker
    (treeverse/dvc-task#73; seen here once, the experiments done, a worker left idle). A
    file, like a user's terminal, lets it return at once."""
    with tempfile.TemporaryFile("w+") as printed:
        started = subprocess.run(
            ["dvc", "queue", "start", *start],
            cwd=project,
            env=user_env(env),
            stdout=printed,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
        printed.seek(0)
        assert started.returncode == 0, printed.read()
    deadline = time.monotonic() + timeout
    try:
        while True:
            status = dvc(project, "queue", "status", env=env)
            if "Running" not in status and "Queued" not in status:
                return status
            assert time.monotonic() < deadline, status
            time.sleep(10)
    finally:
        dvc(project, "queue", "stop", env=env)


def user_files(project: Path) -> dict[str, str]:
    """What a user sees of the results: each file under data/, outputs/ and reports/, by
    path, with the SHA-256 of its bytes."""
    return {
        path.relative_to(project).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in ("data", "outputs", "reports")
        for path in sorted((project / folder).rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="session")
def finished_project(tmp_path_factory, worker_id, real_params, tiny_mirror) -> Path:
    """The shrunk pipeline after one complete `dvc repro`, committed; made once a session,
    for every worker."""

    def make(directory: Path) -> None:
        params = yaml.safe_dump(shrink(real_params, str(tiny_mirror)), sort_keys=False)
        project = copy_project(directory / "project", params)
        done = dvc_run(project, "repro")
        assert done.returncode == 0, done.stdout + done.stderr
        (directory / "repro.log").write_text(done.stdout + done.stderr)  # what the user saw
        git(project, "add", "-A")
        git(project, "commit", "-qm", "results of the first dvc repro")

    return made_once(tmp_path_factory, worker_id, "finished", make) / "project"


def answers_and_metrics(project: Path) -> dict[str, bytes]:
    """The files a rerun of the same params must repeat byte for byte: the answers, and
    each exercise's metrics, curves, predictions and model."""
    names = ["reports/answers.json", "reports/intervals.json"] + [
        f"outputs/{ex}/seed42/{name}"
        for ex in ("ex1", "ex2", "ex3", "ex4", "ex5", "ex6")
        for name in ("metrics.json", "history.csv", "predictions.csv", "model.keras")
    ]
    names += [
        f"outputs/{ex}/seed42/{name}"
        for ex in ("ex3", "ex6")
        for name in ("mc_metrics.json", "mc_predictions.csv", "reliability.csv")
    ]
    return {name: (project / name).read_bytes() for name in names}


@pytest.fixture
def finished(finished_project, tmp_path) -> Path:
    """A copy of the finished pipeline, with its DVC cache and MLflow store, to break."""
    return Path(shutil.copytree(finished_project, tmp_path / "finished", symlinks=True))


# what TensorFlow and absl print at E or W level, which a healthy run on a CPU must not show
NATIVE_LOG_NOISE = re.compile(r"^(?:[EW]\d{4} .*|WARNING: All log messages before absl.*)$", re.M)


def at_epoch_3(command: list[str], cwd: Path, env: dict, act, succeeds: bool = False) -> str:
    """Start `command` in its own process group; once training prints "Epoch 3/", call
    `act(process)` (signal it, stop a server, ...) and let it end, in failure unless
    `succeeds`. Returns all it printed."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("Epoch 3/"):
            act(process)
            break
    else:
        pytest.fail("training never reached epoch 3:\n" + "".join(seen))
    seen.append(process.stdout.read())
    assert (process.wait(timeout=300) == 0) == succeeds, "".join(seen)
    return "".join(seen)
