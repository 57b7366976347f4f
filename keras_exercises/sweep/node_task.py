"""What one Ray task does on its node: run one stage of one or more grid points in a fresh
clone of the commit, in node-local scratch whose DVC objects every task on the node shares,
its inputs restored from the DVC remote and its outputs and run-cache entry pushed back
there."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from keras_exercises.sweep.grid import PARAMS_FILE, apply

SCRATCH_ENV = "KERAS_EXERCISES_SCRATCH"  # where a node's clones and DVC objects go
# what the stages tag their MLflow runs with (tracking/training_run.py)
SWEEP_ENV = "KERAS_EXERCISES_SWEEP"
POINTS_ENV = "KERAS_EXERCISES_SWEEP_POINTS"
TASK_ENV = "KERAS_EXERCISES_SWEEP_TASK"
PARENT_ENV = "KERAS_EXERCISES_SWEEP_PARENT_RUN"
NODE_ENV = "KERAS_EXERCISES_RAY_NODE"


@dataclass(frozen=True)
class StageJob:
    repo_url: str  # the git remote the nodes clone
    commit: str
    overrides: tuple[str, ...]
    key: str
    address: str  # the stage, as DVC names it
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
    seconds: float  # the whole task
    overhead_seconds: float  # cloning, checking out and pushing: the task less `dvc repro`
    started_at: float  # the task's start and end, seconds since the epoch
    ended_at: float


class StageFailed(Exception):
    """A stage's own failure (bad data, a bug): its message, from the stage's output."""


def node_scratch(node_id: str) -> Path:
    base = Path(os.environ.get(SCRATCH_ENV) or tempfile.gettempdir())
    scratch = base / "keras-exercises-sweep" / node_id[:16]
    (scratch / "work").mkdir(parents=True, exist_ok=True)
    return scratch


def run_stage(job: StageJob, *needed: StageOutcome) -> StageOutcome:
    """Run `job`'s stage once every stage in `needed` is done (Ray passes their outcomes)."""
    import ray

    return run_on_node(job, ray.get_runtime_context().get_node_id())


def run_on_node(job: StageJob, node: str) -> StageOutcome:
    """`job`'s stage in a fresh clone in the scratch of `node` (Ray's node id)."""
    started, started_at = time.monotonic(), time.time()
    scratch = node_scratch(node)
    work = Path(tempfile.mkdtemp(prefix=job.address.replace("@", "-") + "-", dir=scratch / "work"))
    try:
        _run(["git", "clone", "--quiet", "--no-checkout", job.repo_url, str(work)], scratch)
        _run(["git", "checkout", "--quiet", job.commit], work)
        _share_objects(work, scratch)
        apply(job.overrides, work / PARAMS_FILE)
        env = _stage_env(job, node)
        repro_seconds = work / ".dvc" / "tmp" / "repro-seconds"
        task = ["keras_exercises.sweep.reproduce_and_push", job.address, str(repro_seconds)]
        repro = _run([*_TETHER, sys.executable, "-m", *task], work, env)
        stage_seconds = float(repro_seconds.read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - started
    return StageOutcome(
        job.key,
        job.address,
        node,
        socket.gethostname(),
        ran=f"Running stage '{job.address}'" in repro,
        seconds=seconds,
        overhead_seconds=seconds - stage_seconds,
        started_at=started_at,
        ended_at=time.time(),
    )


def _share_objects(work: Path, scratch: Path) -> None:
    """The clone's DVC cache keeps its own run-cache but the node's objects, so inputs are
    pulled once per node. A run-cache of its own: a task stopped before its push leaves
    its entry behind in its clone, where no later task on the node would push it without
    its outputs."""
    objects = scratch / "dvc-cache" / "files"
    objects.mkdir(parents=True, exist_ok=True)
    cache = work / ".dvc" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "files").symlink_to(objects, target_is_directory=True)


def _stage_env(job: StageJob, node: str) -> dict[str, str]:
    """The node's own environment (its credentials stay there), plus where to log and what
    to tag the runs with. A stage that serves one grid point runs as that DVC experiment;
    one shared by several, under the sweep's name."""
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": job.tracking_uri,
        "DVC_EXP_NAME": job.points[0] if len(job.points) == 1 else job.sweep,
        SWEEP_ENV: job.sweep,
        POINTS_ENV: ", ".join(job.points),
        TASK_ENV: f"{job.sweep}/{job.key}",
        PARENT_ENV: job.parent_run_id,
        NODE_ENV: node,
        "PYTHONUNBUFFERED": "1",
    }


# the task's commands end with the Ray worker that runs it (tether.py)
_TETHER = [sys.executable, "-m", "keras_exercises.sweep.tether"]


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    printed = done.stdout + done.stderr
    if done.returncode != 0:
        raise StageFailed(_own_message(printed) or f"`{' '.join(command[-3:])}` failed")
    return printed


def _own_message(printed: str) -> str:
    """The stage's `error: ...` paragraph and DVC's line naming the stage; else the end."""
    lines = [line for line in printed.splitlines() if line.strip()]
    own = [line for line in lines if line.startswith(("error:", "ERROR:"))]
    return "\n".join(own or lines[-10:])
