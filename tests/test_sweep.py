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

from keras_exercises.cli import main
from keras_exercises.comparison import Revision
from keras_exercises.params import load_params
from keras_exercises.sweep.clone import SCRATCH_ENV
from keras_exercises.sweep.grid import GridPoint
from keras_exercises.sweep.joining import AUTH_MODE_ENV, connect
from keras_exercises.sweep.node_task import StageOutcome
from keras_exercises.sweep.plan import Plan, PlannedStage
from keras_exercises.sweep.results import PointResult, compare_with_launch, results_table
from keras_exercises.sweep.schedule import run_plan
from tests.conftest import dvc
from tests.support.networked import git_daemon, put_online, run_cache_entries
from tests.support.project_copy import git
from tests.support.ray_join import join, last_line
from tests.support.services import S3_CREDENTIALS, free_port, plain_mlflow_server, s3_endpoint

pytestmark = pytest.mark.slow

RATES = "exercises.ex1.optimizer.learning_rate=0.001,0.002"
NO_DASHBOARD = {"include_dashboard": False}


@pytest.fixture(autouse=True)
def ray_auth_mode_restored(monkeypatch, tmp_path):
    """connect() may turn Ray's token mode on in this process, as `ray start` would; and
    does where this machine has a token (~/.ray/auth_token, from any `ray get-auth-token
    --generate` here), which these clusters, started without one, are not given."""
    monkeypatch.delenv(AUTH_MODE_ENV, raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "no-token-here"))


@pytest.fixture
def s3(monkeypatch):
    """moto's S3 server, its credentials in the environment the cluster's nodes start with."""
    for name, value in {**S3_CREDENTIALS, "AWS_DEFAULT_REGION": "us-east-1"}.items():
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
    # no dashboard: on two cores its polling is taken from the stages
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
    # in the environment the finished pipeline ran in (its project has no S3 remote): its
    # stages are handed to that run's warm interpreters rather than to new ones
    monkeypatch.delenv("AWS_DEFAULT_REGION")
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


@pytest.fixture(scope="module")
def gpu_cluster():
    """A head that runs no task (with a Ray Client server, for `ray://` addresses), a node
    of two CPUs and one of two CPUs and a logical GPU."""
    from ray.cluster_utils import Cluster

    client_port = free_port()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "ray_client_server_port": client_port, **NO_DASHBOARD},
    )
    cluster.add_node(num_cpus=2)
    cluster.gpu_node = cluster.add_node(num_cpus=2, num_gpus=1)
    cluster.client_address = f"ray://127.0.0.1:{client_port}"
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_a_failing_stage_fails_its_grid_point_with_its_message_and_the_others_finish(
    gpu_cluster,
):
    """Scheduling alone: a stage's own failure (its `error:`
    message) ends the points it serves, its downstream stages never run, and the other
    point's stages all finish. A stage whose process dies on every attempt is named with
    Ray's words, the cause and the fix."""
    import ray

    from keras_exercises.sweep.command import _result
    from keras_exercises.sweep.node_task import StageFailed

    message = "error: mnist holds 60 train samples but n_train asks for 100000."

    def task(keys: tuple[str, ...], *needed: StageOutcome) -> tuple[StageOutcome, ...]:
        if "bad" in keys:  # shipped by value
            raise StageFailed(message)
        if "crash" in keys:  # as a worker killed, or out of memory, each time Ray retries
            os._exit(1)
        return tuple(StageOutcome(k, k, "node", "host", True, 0.0, 0.0, 0.0, 0.0) for k in keys)

    stages = {
        "validate": PlannedStage("validate", "validate", (), None, ["g-1", "g-2"]),
        "good": PlannedStage("good", "prepare@ex1", ("validate",), None, ["g-1"]),
        "bad": PlannedStage("bad", "prepare@ex1", ("validate",), None, ["g-2"]),
        "report-1": PlannedStage("report-1", "report", ("good",), None, ["g-1"]),
        "report-2": PlannedStage("report-2", "report", ("bad",), None, ["g-2"]),
        "crash": PlannedStage("crash", "train@ex2-42", ("validate",), None, ["g-3"]),
    }
    plan = Plan(
        stages,
        {
            "g-1": ["validate", "good", "report-1"],
            "g-2": ["validate", "bad", "report-2"],
            "g-3": ["validate", "crash"],
        },
    )
    connect(gpu_cluster.address)
    try:
        progress = run_plan(plan, lambda keys: keys, task=task)
    finally:
        ray.shutdown()
    assert set(progress.outcomes) == {"validate", "good", "report-1"}
    assert set(progress.failures) == {"bad", "report-2", "crash"}
    crashed = progress.failures["crash"]  # Ray's words, then the cause and the fix
    assert crashed.startswith("train@ex2-42: The worker died unexpectedly"), crashed
    assert "sweep again with the same command" in crashed
    done = _result(GridPoint("g-1", ()), plan, progress)
    failed = _result(GridPoint("g-2", ()), plan, progress)
    assert (done.status, failed.status) == ("done", "failed")
    assert failed.message == f"prepare@ex1: {message}"  # its own, not report's
    crashed_point = _result(GridPoint("g-3", ()), plan, progress).message.splitlines()
    assert crashed_point[-1].startswith("The process or node that ran it died"), crashed_point


def test_stages_that_run_tensorflow_go_to_the_node_with_a_gpu(gpu_cluster):
    """Scheduling alone, joined through the Ray Client (`ray://`): a logical GPU on one of
    two nodes draws every stage that reads `threads`, and only those."""
    import ray

    def where_am_i(keys: tuple[str, ...]) -> tuple[StageOutcome, ...]:  # shipped by value
        import ray

        context = ray.get_runtime_context()
        gpus = str(len(context.get_accelerator_ids().get("GPU", [])))
        node = context.get_node_id()
        return tuple(StageOutcome(k, k, node, gpus, True, 0.0, 0.0, 0.0, 0.0) for k in keys)

    assert connect(gpu_cluster.client_address) == 3
    try:
        stages = {
            f"s{i}": PlannedStage(f"s{i}", f"stage-{i}", (), threads, ["p"])
            for i, threads in enumerate([1, None, 1, None, 1, None])
        }
        plan = Plan(stages, {"p": list(stages)})
        outcomes = run_plan(plan, lambda keys: keys, task=where_am_i)
    finally:
        ray.shutdown()
    assert not outcomes.failures, outcomes.failures
    for key, stage in stages.items():
        outcome = outcomes.outcomes[key]
        if stage.threads:  # where_am_i's host: the GPUs Ray gave the task
            assert (outcome.node, outcome.host) == (gpu_cluster.gpu_node.node_id, "1"), key
        else:
            assert outcome.host == "0", key


def test_a_token_the_cluster_does_not_use_is_named_with_its_fix(gpu_cluster, tmp_path):
    """This machine has a Ray token, so the sweep joins with it (as `ray start` would);
    the cluster runs without one: it lets the process join, but never starts the actors the
    process owns. Said once joined, with the fix, in a process of its own (Ray keeps its
    auth mode for the process)."""
    token = tmp_path / "auth_token"
    token.write_text("0123456789abcdef" * 4)
    env = {k: v for k, v in os.environ.items() if k != AUTH_MODE_ENV}
    done = join(gpu_cluster.address, {**env, "RAY_AUTH_TOKEN_PATH": str(token)})
    assert done.returncode == 1, done.stderr[-3000:]
    error = last_line(done)
    assert error.startswith(
        f"error: joined the Ray cluster at {gpu_cluster.address} with token authentication"
    ), error
    assert "the cluster runs without it" in error and "`export RAY_AUTH_MODE=disabled`" in error


def test_a_cluster_of_several_nodes_refuses_what_only_this_machine_reaches(
    gpu_cluster, pushed_project, tmp_path, capsys, monkeypatch
):
    """A git origin or DVC remote that is a path here, or an MLflow store in a file here:
    each node would miss it or keep its own that nobody sees. Each is refused once the
    cluster is joined, before any run or stage, with its fix."""
    import ray

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def refusal() -> str:
        assert main(["sweep", "--address", gpu_cluster.address, "-S", RATES]) == 1
        assert not ray.is_initialized()  # left the cluster
        return capsys.readouterr().err.strip().splitlines()[-1]

    error = refusal()
    assert error.startswith(f"error: the git origin is {tmp_path / 'origin.git'}, a path on"), error
    assert "the cluster has 3 nodes: each node needs one it can reach" in error
    with git_daemon(tmp_path) as served:
        git(pushed_project, "remote", "set-url", "origin", f"{served}/origin.git")
        error = refusal()
        assert error.startswith(f"error: the DVC remote is {tmp_path / 'dvc-remote'}"), error
        assert "`dvc remote modify <name> url <s3://, ssh://, ...>`" in error
        subprocess.run(["dvc", "remote", "add", "-f", "-d", "store", "s3://sweep/dvc"], check=True)
        git(pushed_project, "commit", "-qam", "the DVC remote on S3")
        git(pushed_project, "push", "-q", "origin", "HEAD:refs/heads/main")
        error = refusal()
    assert error.startswith("error: the MLflow store is sqlite:///"), error
    assert "the cluster has 3 nodes: set MLFLOW_TRACKING_URI" in error
    assert not (pushed_project / "mlruns" / "mlflow.db").exists(), "a store was made"


def test_a_stage_no_node_can_run_is_refused_and_long_waits_are_named(
    gpu_cluster, capsys, monkeypatch
):
    """Scheduling alone, on nodes of two CPUs: a stage asking for four is refused before
    anything runs (a warning where the cluster autoscales); a stage that waits over the
    limit for a busy node is named on the progress line, with why; so is a stage whose
    command, on its node, says it waits for the MLflow server."""
    import ray

    from keras_exercises.runtime.errors import PipelineError
    from keras_exercises.sweep import resources
    from keras_exercises.sweep.resources import check_feasible

    connect(gpu_cluster.address)
    try:
        nodes, big = ray.nodes(), PlannedStage("big", "train@ex1-42", (), 4, ["p"])
        plan = Plan({"big": big}, {"p": ["big"]})
        with pytest.raises(PipelineError) as refused:
            check_feasible(plan, nodes, has_gpus=True, autoscales=False)
        assert str(refused.value).startswith(
            "stage train@ex1-42 asks for 4 CPUs and 1 GPU (threads: 4 in params.yaml), and no "
            "node of the cluster can run it (the largest node offers 2 CPUs): sweep with "
            "-S threads=2, or start nodes"
        ), refused.value
        warning = check_feasible(plan, nodes, has_gpus=True, autoscales=True)
        assert warning.startswith("warning: stage train@ex1-42 asks for 4 CPUs"), warning

        def slow(keys: tuple[str, ...]) -> tuple[StageOutcome, ...]:  # shipped by value
            import sys
            from pathlib import Path

            from keras_exercises.sweep.node_task import run_command

            # as a training stage prints it on its node (tracking/outages.py), to stderr;
            # 10 s: long enough for the board, an actor Ray starts now, to answer
            said = "The MLflow tracking server at http://127.0.0.1:9 does not answer (no "
            said += "connection): waiting up to 120 s for it (KERAS_EXERCISES_TRACKING_WAIT)."
            stage = f"import sys, time; print({said!r}, file=sys.stderr); time.sleep(10)"
            run_command([sys.executable, "-c", stage], Path.cwd())
            return tuple(StageOutcome(k, k, "node", "host", True, 0, 0, 0, 0) for k in keys)

        # two TensorFlow stages, one node with a GPU: the second waits for the first
        stages = {k: PlannedStage(k, f"train@ex{k}-42", (), 2, ["p"]) for k in ("1", "2")}
        monkeypatch.setattr(resources, "WAIT_BEFORE_SAYING_S", 1.0)
        run_plan(Plan(stages, {"p": list(stages)}), lambda keys: keys, task=slow)
    finally:
        ray.shutdown()
    progress = capsys.readouterr().err
    assert re.search(
        r"train@ex\d-42 waited \d+ s for 2 CPUs and 1 GPU: every node that fits it "
        r"is busy with other tasks",
        progress,
    ), progress
    assert re.search(
        r"train@ex\d-42: the MLflow tracking server at http://127.0.0.1:9 does not answer "
        r"\(no connection\), waited \d+ s so far",
        progress,
    ), progress
