"""`keras-exercises sweep` for real: a Ray cluster of several nodes on this machine
(ray.cluster_utils.Cluster, each node its own raylet), a bare git origin, a local DVC remote
and a real `mlflow server`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import psutil
import pytest

from keras_exercises.comparison import Revision
from keras_exercises.params import load_params
from keras_exercises.sweep.clone import SCRATCH_ENV
from keras_exercises.sweep.grid import GridPoint
from keras_exercises.sweep.results import PointResult, compare_with_launch, results_table
from tests.conftest import dvc
from tests.support.networked import git_daemon, put_online, run_cache_entries
from tests.support.services import S3_CREDENTIALS, plain_mlflow_server, s3_endpoint
from tests.support.sweeps import NO_DASHBOARD, RATES

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_environment_restored")]


@pytest.fixture
def s3(monkeypatch):
    """moto's S3 server, its credentials in the environment the cluster's nodes start with."""
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with s3_endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def online_project(pushed_project, s3, tmp_path):
    """`pushed_project` with its origin served by `git daemon` and its DVC remote on S3, as
    the nodes of a real cluster reach them."""
    with git_daemon(tmp_path) as served:
        put_online(pushed_project, f"{served}/origin.git", s3)
        yield pushed_project


@pytest.fixture
def cluster(online_project, tmp_path, monkeypatch):
    """A head that runs no task and two one-CPU nodes, every node its own raylet; the
    nodes' scratch (clones, DVC caches) under tmp_path."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv(SCRATCH_ENV, str(tmp_path / "scratch"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, **NO_DASHBOARD})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def training_runs(client, status: str | None = None) -> list:
    experiment = client.get_experiment_by_name("keras-exercises")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], "tags.sweep = 'grid'")
    return [
        r for r in runs if "mlflow.parentRunId" in r.data.tags and status in (None, r.info.status)
    ]


def pushed_trainings(s3) -> set[tuple[str, str, str]]:
    """(exercise, seed, learning rate) of each training stage in the DVC remote's
    run-cache: the stages a sweep has done."""
    found = set()
    for done in run_cache_entries(s3):
        if "stages.train " in done["cmd"]:
            exercise, seed = done["cmd"].split()[-2:]  # python -m stages.train ex1 42
            optimizer = done["params"]["params.yaml"][f"exercises.{exercise}.optimizer"]
            found.add((exercise, seed, str(optimizer["learning_rate"])))
    return found


def training_of(run) -> tuple[str, str, str]:
    name = run.info.run_name.split()[0]
    return (name, run.data.tags["seed"], run.data.params["optimizer.learning_rate"])


def wait_for(found, process: subprocess.Popen, timeout: float = 900):
    deadline = time.monotonic() + timeout
    while not (result := found()):
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(1)
    return result


def running_in(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.cwd().startswith(str(folder)):
                found.append(process)
        except psutil.Error:
            pass
    return found


def wait_until_stopped(scratch: Path, timeout: float = 120) -> None:
    """Until nothing runs in the nodes' scratch: a killed driver's tasks run on until Ray
    sees it gone, and may push what they made meanwhile."""
    deadline = time.monotonic() + timeout
    while running_in(scratch):
        assert time.monotonic() < deadline, [p.cmdline() for p in running_in(scratch)]
        time.sleep(0.5)


def lose_node(cluster, node_id: str, scratch: Path) -> None:
    """As if the machine went down: its raylet and everything running in its scratch."""
    (node,) = [n for n in cluster.worker_nodes if n.node_id == node_id]
    cluster.remove_node(node)
    for process in running_in(scratch / "keras-exercises-sweep" / node_id[:16]):
        with contextlib.suppress(psutil.Error):
            process.kill()
    cluster.add_node(num_cpus=1)


def test_a_grid_on_two_nodes_comes_home_as_dvc_experiments(
    online_project, s3, cluster, tmp_path, finished, monkeypatch
):
    project = online_project
    with plain_mlflow_server(tmp_path) as server:
        env = {**os.environ, "MLFLOW_TRACKING_URI": server}
        command = ["keras-exercises", "sweep", "--address", cluster.address, "-n", "grid"]
        command += ["-S", RATES, "--json"]
        client = mlflow.MlflowClient(server)

        def start() -> subprocess.Popen:
            return subprocess.Popen(
                command,
                cwd=project,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )

        # the driver killed once a training stage is done (pushed: its MLflow run ends
        # before its outputs are saved and pushed)...
        remote = s3
        first = start()
        wait_for(lambda: pushed_trainings(remote), first)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        wait_until_stopped(tmp_path / "scratch")
        done_before = pushed_trainings(remote)

        # ...and the same command again, which loses a node midway through a training run
        second, started = start(), time.time() * 1000
        running = wait_for(
            lambda: [r for r in training_runs(client, "RUNNING") if r.info.start_time > started],
            second,
        )
        lost_run = running[0]
        lose_node(cluster, lost_run.data.tags["ray_node"], tmp_path / "scratch")
        printed, progress = second.communicate(timeout=1800)
        assert second.returncode == 0, printed + progress
        table = json.loads(printed)  # --json: stdout holds the table alone
        assert [(p["name"], p["status"]) for p in table["points"]] == [
            ("grid-1", "done"),
            ("grid-2", "done"),
        ]
        assert "task/s" in progress or "s/task" in progress  # tqdm's bar, with its rate

        # each point came home on a node of the cluster, and into this repository as it did
        workers = {node.node_id for node in cluster.worker_nodes}
        assert sorted(h["name"] for h in table["homecomings"]) == ["grid-1", "grid-2"]
        assert {h["node"] for h in table["homecomings"]} <= workers
        assert sorted(a["name"] for a in table["arrivals"]) == ["grid-1", "grid-2"]

        # the rerun trained each stage once, and none the killed driver had done
        experiment = client.get_experiment_by_name("keras-exercises")
        parents = client.search_runs(
            [experiment.experiment_id], "attributes.run_name = 'sweep grid'"
        )
        (last,) = [p.info.run_id for p in parents if p.info.status == "FINISHED"]
        runs = training_runs(client)
        rerun = [
            training_of(r)
            for r in runs
            if r.info.status == "FINISHED" and r.data.tags["mlflow.parentRunId"] == last
        ]
        assert len(rerun) == len(set(rerun)), "a stage trained twice"
        assert not done_before & set(rerun)
        # exercise 1 per rate, the 5 others once for both points: each trained once in all
        assert done_before | set(rerun) == pushed_trainings(remote)
        assert len(pushed_trainings(remote)) == 2 + 5
        lost = client.get_run(lost_run.info.run_id)
        assert lost.info.status == "KILLED", lost.info.status
        # ended by the task's next attempt, or (on this one machine) by the first training
        # run to start after its processes were gone
        assert re.search("ran again|was gone", lost.data.tags["killed_because"])
        done_again = {r.data.tags["sweep_task"] for r in runs if r.info.status == "FINISHED"}
        assert lost.data.tags["sweep_task"] in done_again  # and its stage was done elsewhere
        # one parent run per attempt, the last FINISHED, the earlier KILLED
        assert sorted(p.info.status for p in parents) == ["FINISHED", "KILLED"]
        assert {r.data.tags["mlflow.parentRunId"] for r in runs} <= {p.info.run_id for p in parents}

        # two exercises of one grid point trained on two nodes at the same time (exercise 1's
        # stages differ between the points; the others serve both)
        trains = [t for t in table["stages"] if t["address"].startswith("train")]
        trains = [t for t in trains if not t["address"].startswith("train@ex1-")]
        assert any(
            a["node"] != b["node"]
            and a["started_at"] < b["ended_at"]
            and b["started_at"] < a["ended_at"]
            for a in trains
            for b in trains
        ), trains

    # four DVC experiments, pushed, with the answers a local run of their params gives
    remote_refs = subprocess.run(
        ["git", "ls-remote", "origin"], cwd=project, capture_output=True, text=True
    ).stdout
    assert all(f"/grid-{i}\n" in remote_refs for i in (1, 2)), remote_refs
    answers = finished / "reports/answers.json"
    expected = {"grid-1": answers.read_text()}
    faster = "exercises.ex1.optimizer.learning_rate=0.002"
    dvc(finished, "exp", "run", "-n", "local-2", "-S", faster)
    expected["grid-2"] = answers.read_text()
    for name, text in expected.items():
        assert Revision(name, project).read("reports/answers.json") == text, name

    # the launching commit had no results: no differences; where it has, the table gives
    # them (compare's paired test): here, for the local run, against the finished HEAD
    assert all(point["differences"] == {} for point in table["points"])
    monkeypatch.chdir(finished)
    local = PointResult(GridPoint("local-2", (faster,)), "done")
    compare_with_launch(local, load_params().statistics, Revision("HEAD"))
    assert local.answers == json.loads(expected["grid-2"])
    assert set(local.differences) == set(local.answers)
    for question, (difference, beyond) in local.differences.items():
        if not question.startswith("Q1."):  # exercise 1's rate alone changed
            assert (difference, beyond) == (0.0, False), question
    launched = json.loads(expected["grid-1"])  # the finished HEAD's answers, one seed
    assert local.differences["Q1.1"][0] == pytest.approx(local.answers["Q1.1"] - launched["Q1.1"])
    row = results_table([local]).splitlines()[1]
    assert row.startswith("local-2") and row.count("(+") + row.count("(-") == len(local.answers)
