"""What one Ray task does on its node: run one stage of one or more grid points (or a few
small stages, in order) in a fresh clone of the commit (clone.py), its inputs and outputs
moved by stage_runner.py; or, once every stage of a grid point is done, make that point's
DVC experiment there and push it (homecoming.py). The commands run from the clone, so
every node runs the launching commit's own code, whichever version of the project it has
installed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from keras_exercises.sweep.clone import CloneFailed, cloned, node_scratch
from keras_exercises.sweep.grid import PARAMS_FILE, GridPoint, apply
from keras_exercises.tracking.outages import SAID_OF_THE_SERVER

# what the stages tag their MLflow runs with (tracking/training_run.py)
SWEEP_ENV = "KERAS_EXERCISES_SWEEP"
POINTS_ENV = "KERAS_EXERCISES_SWEEP_POINTS"
TASK_ENV = "KERAS_EXERCISES_SWEEP_TASK"
PARENT_ENV = "KERAS_EXERCISES_SWEEP_PARENT_RUN"
NODE_ENV = "KERAS_EXERCISES_RAY_NODE"


@dataclass(frozen=True)
class Source:
    """Where a task's clone comes from, and the DVC remote its outputs go to."""

    repo_url: str  # the git remote the nodes clone
    commit: str
    dvc_remote: str = ""  # the default DVC remote's name...
    dvc_remote_path: str = ""  # ...and, where it is a folder, its absolute path


@dataclass(frozen=True)
class StageJob:
    """One task's stages (their plan keys, and addresses as DVC names them), in order."""

    source: Source
    overrides: tuple[str, ...]
    keys: tuple[str, ...]
    addresses: tuple[str, ...]
    sweep: str
    points: tuple[str, ...]
    tracking_uri: str  # without credentials: each node has its own
    parent_run_id: str


@dataclass(frozen=True)
class StageOutcome:
    key: str
    address: str
    node: str  # Ray's node id
    host: str
    ran: bool  # False: restored from DVC's run-cache
    # the task's share: restoring or running it, and an equal part of what its task spent
    # around its stages (cloning, moving inputs and outputs), which is the overhead
    seconds: float
    overhead_seconds: float
    started_at: float  # the task's start and end, seconds since the epoch
    ended_at: float
    entry: dict = field(default_factory=dict)  # the stage's dvc.lock entry
    task: str = ""  # the key of its task's first stage: the stages that ran together


class StageFailed(Exception):
    """A stage's own failure (bad data, a bug): its message, from the stage's output, and
    the stage, where the task knows it."""

    def __init__(self, message: str, address: str = "") -> None:
        super().__init__(message)
        self.address = address


def run_stage(job: StageJob, *needed: StageOutcome) -> tuple[StageOutcome, ...]:
    """Run `job`'s stages once every stage in `needed` is done (Ray passes their outcomes)."""
    import ray

    return run_on_node(job, ray.get_runtime_context().get_node_id(), needed)


def run_on_node(
    job: StageJob, node: str, needed: tuple[StageOutcome, ...] = ()
) -> tuple[StageOutcome, ...]:
    """`job`'s stages in a fresh clone in the scratch of `node` (Ray's node id)."""
    started, started_at = time.monotonic(), time.time()
    with _clone(job.source, node, job.addresses[0]) as work:
        apply(job.overrides, work / PARAMS_FILE)
        upstream = {outcome.address: outcome.entry for outcome in needed}
        task = {"stages": list(job.addresses), "upstream": upstream}
        done = _run_in_clone(work, "stage_runner", task, _stage_env(job, node))
    seconds, ended_at = time.monotonic() - started, time.time()
    share = (seconds - sum(done["stage_seconds"].values())) / len(job.keys)
    return tuple(
        StageOutcome(
            key,
            address,
            node,
            socket.gethostname(),
            ran=address in done["ran"],
            seconds=done["stage_seconds"][address] + share,
            overhead_seconds=share,
            started_at=started_at,
            ended_at=ended_at,
            entry=done["entries"][address],
            task=job.keys[0],
        )
        for key, address in zip(job.keys, job.addresses, strict=True)
    )


@dataclass(frozen=True)
class PointJob:
    source: Source
    point: GridPoint
    git_remote: str


@dataclass(frozen=True)
class PointOutcome:
    name: str
    node: str
    seconds: float
    ended_at: float


def finish_point(job: PointJob, *stages: StageOutcome) -> PointOutcome:
    """Once every stage of the point is done (Ray passes their outcomes): its DVC experiment,
    made from their entries and pushed to the git origin."""
    import ray

    return finish_on_node(job, ray.get_runtime_context().get_node_id(), stages)


def finish_on_node(job: PointJob, node: str, stages: tuple[StageOutcome, ...]) -> PointOutcome:
    started = time.monotonic()
    with _clone(job.source, node, job.point.name) as work:
        task = {
            "point": {"name": job.point.name, "overrides": list(job.point.overrides)},
            "entries": {outcome.address: outcome.entry for outcome in stages},
            "remote": job.git_remote,
            "commit": job.source.commit,
        }
        _run_in_clone(work, "homecoming", task, {**node_environment(), "PYTHONUNBUFFERED": "1"})
    return PointOutcome(job.point.name, node, time.monotonic() - started, time.time())


@contextmanager
def _clone(source: Source, node: str, label: str) -> Iterator[Path]:
    try:
        with cloned(source.repo_url, source.commit, node_scratch(node), label) as work:
            _same_sweep_code(work, source.commit)
            if source.dvc_remote_path:  # as `dvc remote modify --local`: the path resolved
                config = f"['remote \"{source.dvc_remote}\"']\n    url = {source.dvc_remote_path}\n"
                (work / ".dvc" / "config.local").write_text(config)
            yield work
    except CloneFailed as exc:  # raised by git alone, before the body runs
        raise StageFailed(str(exc)) from None


def _same_sweep_code(work: Path, commit: str) -> None:
    """The stages run the commit's code from the clone, but this task's own code is the
    node's installed keras_exercises.sweep: refused where it is not the commit's."""
    installed = Path(__file__).parent

    def sources(folder: Path) -> dict[str, bytes]:
        return {path.name: path.read_bytes() for path in sorted(folder.glob("*.py"))}

    if sources(installed) != sources(work / "keras_exercises" / "sweep"):
        asked = ["git", "-C", str(installed), "log", "-1", "--format=%h"]
        version = subprocess.run(asked, capture_output=True, text=True).stdout.strip()
        raise StageFailed(
            f"node {socket.gethostname()} runs the sweep code installed at {installed}"
            f"{f' (commit {version})' if version else ''}, which differs from commit "
            f"{commit[:7]}'s: install the launching commit there (`git checkout {commit[:7]}` "
            'in its clone, then `pip install -e ".[team,cluster]"`) and sweep again'
        )


# What Ray's worker sets for itself (its debugger's hook, setproctitle's switch, one OpenMP
# thread per CPU of the task), which the node was not started with
_RAY_WORKERS_OWN = ("OMP_NUM_THREADS", "PYTHONBREAKPOINT", "SPT_NOENV")


def node_environment() -> dict[str, str]:
    """This Ray worker's environment less what the worker set for itself: the node's own, as
    `dvc repro` there gets it. A stage then runs as it would there, and shares the warm
    interpreters of the node's own runs (warm_start.py tells them apart by environment)."""
    import psutil

    env = dict(os.environ)
    try:  # the raylet's environment is the node's as started
        started_with = psutil.Process(int(env["RAY_RAYLET_PID"])).environ()
    except (KeyError, ValueError, psutil.Error):  # not in a Ray worker, or not readable
        return env
    for name in _RAY_WORKERS_OWN:
        if name not in started_with:
            env.pop(name, None)
    return env


def _stage_env(job: StageJob, node: str) -> dict[str, str]:
    """The node's own environment (its credentials stay there), plus where to log and what
    to tag the runs with. A stage that serves one grid point runs as that DVC experiment;
    one shared by several, under the sweep's name."""
    return {
        **node_environment(),
        "MLFLOW_TRACKING_URI": job.tracking_uri,
        "DVC_EXP_NAME": job.points[0] if len(job.points) == 1 else job.sweep,
        SWEEP_ENV: job.sweep,
        POINTS_ENV: ", ".join(job.points),
        TASK_ENV: f"{job.sweep}/{job.keys[0]}",
        PARENT_ENV: job.parent_run_id,
        NODE_ENV: node,
        "PYTHONUNBUFFERED": "1",
    }


# the task's commands end with the Ray worker that runs it (tether.py)
_TETHER = [sys.executable, "-m", "keras_exercises.sweep.tether"]


def _run_in_clone(work: Path, module: str, task: dict, env: dict[str, str]) -> dict:
    """`python -m keras_exercises.sweep.<module> TASK RESULT` in the clone, ended with this
    worker: RESULT's content. Its failure names the stage that failed where RESULT says
    which."""
    folder = work / ".dvc" / "tmp"  # DVC's own scratch: git ignores it
    folder.mkdir(parents=True, exist_ok=True)
    task_file, result = folder / "sweep-task.json", folder / "sweep-result.json"
    task_file.write_text(json.dumps(task))
    command = [sys.executable, "-m", f"keras_exercises.sweep.{module}", str(task_file)]
    try:
        run_command([*_TETHER, *command, str(result)], work, env)
    except StageFailed as failed:
        said = json.loads(result.read_text()) if result.exists() else {}
        raise StageFailed(str(failed), said.get("failed", "")) from None
    return json.loads(result.read_text()) if result.exists() else {}


# hears, while a task's command runs, each line it prints of the MLflow server (that it
# waits for it, that it is back): the task's driver shows it (heard_by)
_listener: Callable[[str], None] | None = None


@contextmanager
def heard_by(listener: Callable[[str], None]) -> Iterator[None]:
    """Within it, `listener` hears each line the task's commands print of the MLflow
    server, as they print it."""
    global _listener
    _listener = listener
    try:
        yield
    finally:
        _listener = None


def run_command(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    """A task's command; its failure a StageFailed with the command's own message."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    printed = []
    for line in process.stdout:
        printed.append(line)
        if _listener is not None and line.startswith(SAID_OF_THE_SERVER):
            _listener(line.strip())
    if process.wait() != 0:
        raise StageFailed(_own_message("".join(printed)) or f"`{' '.join(command[-3:])}` failed")


def _own_message(printed: str) -> str:
    """The stage's `error: ...` paragraph and DVC's line naming the stage; else the end."""
    lines = [line for line in printed.splitlines() if line.strip()]
    own = [line for line in lines if line.startswith(("error:", "ERROR:"))]
    return "\n".join(own or lines[-10:])
