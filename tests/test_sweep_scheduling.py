"""The sweep's scheduling and its checks against a real Ray cluster of several nodes on
this machine (ray.cluster_utils.Cluster, each node its own raylet), one for the whole
module: where stages go, a failing stage, what only this machine reaches, a stage no node
fits, a long wait named, a token the cluster does not use."""

from __future__ import annotations

import os
import re

import pytest

from keras_exercises.cli import main
from keras_exercises.sweep.grid import GridPoint
from keras_exercises.sweep.joining import AUTH_MODE_ENV, connect
from keras_exercises.sweep.node_task import StageOutcome
from keras_exercises.sweep.plan import Plan, PlannedStage
from keras_exercises.sweep.schedule import run_plan
from tests.support.networked import git_daemon
from tests.support.project_copy import git, set_dvc_remote
from tests.support.ray_join import join, last_line
from tests.support.services import free_port
from tests.support.sweeps import NO_DASHBOARD, RATES, ray_without_token

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_environment_restored")]


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory):
    """A head that runs no task (with a Ray Client server, for `ray://` addresses), a node
    of two CPUs and one of two CPUs and a logical GPU; without token authentication, as the
    tests join it, whatever an earlier test left set."""
    from ray.cluster_utils import Cluster

    client_port = free_port()
    with ray_without_token(tmp_path_factory.mktemp("ray")):
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


def test_a_stage_gets_the_nodes_environment_and_so_its_warm_interpreters(gpu_cluster):
    """Ray's worker sets variables for itself that the node was not started with; a stage
    gets the node's own environment, as `dvc repro` there would, and so the warm
    interpreters of the node's own runs (here: of this process, which started the nodes)."""
    import ray

    from keras_exercises.runtime.warm_start import server_environment

    def environments() -> tuple[dict, dict]:  # shipped by value
        import os

        from keras_exercises.sweep.node_task import node_environment

        return dict(os.environ), node_environment()

    here = server_environment()  # before Ray sets its debugger's hook in this process too
    connect(gpu_cluster.address)
    try:
        workers, stages = ray.get(ray.remote(num_cpus=1)(environments).remote())
    finally:
        ray.shutdown()
    added = {"OMP_NUM_THREADS": "1", "PYTHONBREAKPOINT": "ray.util.rpdb.set_trace"}
    assert added.items() <= workers.items() and "SPT_NOENV" in workers
    assert not {*added, "SPT_NOENV"} & set(stages)
    assert server_environment(stages) == here
    assert server_environment(workers) != here


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
        set_dvc_remote(pushed_project, "s3://sweep/dvc")
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
