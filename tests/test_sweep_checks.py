"""What `keras-exercises sweep` refuses before anything runs, each with one line and its
fix; and how it reads a grid (DVC's own sweep syntax) and plans it (shared stages once)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import psutil
import pytest

from keras_exercises.cli import main
from keras_exercises.sweep.grid import grid_points
from keras_exercises.sweep.plan import plan_sweep
from tests.support.project_copy import ROOT, git
from tests.support.ray_join import join, last_line
from tests.support.services import free_port
from tests.support.sweeps import RATES


def sweep_error(capsys, *args: str) -> str:
    assert main(["sweep", *args]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1, error
    return error


def test_the_grid_is_the_product_of_the_overrides_in_dvcs_syntax(project):
    points = grid_points("g", [RATES, "seeds=[42],[42,43]"], project / "params.yaml")
    assert [p.name for p in points] == ["g-1", "g-2", "g-3", "g-4"]
    assert points[3].overrides == ("exercises.ex1.optimizer.learning_rate=0.002", "seeds=[42,43]")
    ranged = grid_points("g", ["exercises.ex1.training.epochs=range(1,4)"], project / "params.yaml")
    assert [p.overrides for p in ranged] == [
        (f"exercises.ex1.training.epochs={n}",) for n in (1, 2, 3)
    ]
    assert [p.overrides for p in grid_points("g", [], project / "params.yaml")] == [()]


@pytest.mark.slow  # reads the pipeline through DVC's index once per grid point
def test_shared_stages_are_planned_once(project):
    commit = git(project, "rev-parse", "HEAD").strip()
    points = grid_points("g", [RATES, "seeds=[42],[42,43]"], project / "params.yaml")
    plan = plan_sweep(project, commit, points)
    by_address: dict[str, list] = {}
    for stage in plan.stages.values():
        by_address.setdefault(stage.address, []).append(stage)
    # one of everything the rates don't touch; per rate and seed list, exercise 1 and report
    assert len(by_address["train@ex2-42"]) == len(by_address["validate"]) == 1
    assert by_address["train@ex2-42"][0].points == ["g-1", "g-2", "g-3", "g-4"]
    assert sorted(s.points for s in by_address["train@ex1-42"]) == [["g-1", "g-2"], ["g-3", "g-4"]]
    assert len(by_address["report"]) == 4
    assert len(plan.point_stages["g-2"]) == 26 and len(plan.point_stages["g-1"]) == 19
    assert by_address["train@ex1-42"][0].threads == 1  # the shrunk params' `threads`
    assert by_address["fetch@mnist"][0].threads is None
    for stage in plan.stages.values():  # every stage comes after the stages it needs
        order = list(plan.stages)
        assert all(order.index(up) < order.index(stage.key) for up in stage.upstream)
    # the small stages that lead the pipeline run in one task, in order; the rest alone
    leading, *others = plan.tasks()
    addresses = [plan.stages[key].address for key in leading]
    assert addresses[0] == "validate" and len(addresses) == 10, addresses
    assert {a.split("@")[0] for a in addresses[1:]} == {"fetch", "prepare"}
    assert all(len(task) == 1 for task in others)
    assert sorted(k for task in plan.tasks() for k in task) == sorted(plan.stages)


def test_uncommitted_changes(pushed_project, capsys):
    (pushed_project / "params.yaml").write_text((pushed_project / "params.yaml").read_text() + "\n")
    error = sweep_error(capsys, "-S", RATES)
    assert "uncommitted changes (params.yaml)" in error and "commit them" in error


def test_head_not_pushed(pushed_project, capsys):
    git(pushed_project, "commit", "-q", "--allow-empty", "-m", "not pushed")
    error = sweep_error(capsys, "-S", RATES)
    assert "is not on origin" in error and "`git push origin` first" in error


def test_no_dvc_remote(pushed_project, capsys):
    subprocess.run(["dvc", "remote", "remove", "store"], cwd=pushed_project, check=True)
    git(pushed_project, "commit", "-qam", "no remote")
    git(pushed_project, "push", "-q", "origin", "HEAD:refs/heads/main")
    error = sweep_error(capsys, "-S", RATES)
    assert "no default DVC remote in .dvc/config" in error and "dvc remote add -d" in error


@pytest.mark.slow  # each a copy of the project pushed to its own origin
@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("exercises.ex1.optimizer.learning_rate=0.001,", "cannot read the overrides"),
        ("exercises.ex1.optimizre.learning_rate=0.1", "cannot apply"),
        ("exercises.ex1.training.epochs=0,2", "grid point sweep-1: invalid params.yaml"),
    ],
)
def test_bad_overrides(pushed_project, capsys, override, says):
    assert says in sweep_error(capsys, "-n", "sweep", "-S", override)


def test_an_experiment_name_git_refuses_is_refused_before_anything_runs(pushed_project, capsys):
    for name in ("two words", "a..b", "x:y", "what?", "tilde~1"):
        error = sweep_error(capsys, "-n", name, "-S", RATES)
        assert f"the experiment name '{name}-1' is not one git accepts" in error
        assert "pass another with -n" in error


def test_unreachable_cluster(pushed_project, capsys):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    error = sweep_error(capsys, "--address", address, "-S", RATES)
    assert f"cannot reach the Ray cluster at {address}" in error
    assert "--address names it" in error


def test_a_tethered_command_ends_with_its_parent(tmp_path):
    """A Ray worker that dies takes its `dvc repro` and the stage under it along."""
    pid_file = tmp_path / "pid"
    parent = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-m', 'keras_exercises.sweep.tether', 'sh', '-c', "
        f"'echo $$ > {pid_file}; sleep 300'])\n"
        "time.sleep(300)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", parent], cwd=ROOT)
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    grandchild = psutil.Process(int(pid_file.read_text()))
    process.kill()  # as Ray kills a worker: nothing runs in it after
    process.wait()
    gone, _ = psutil.wait_procs([grandchild], timeout=10)
    assert gone == [grandchild]


def test_leaving_ends_rays_autoscaler_monitor_without_its_second_of_grace(tmp_path):
    """A child of this process at the path of Ray's own monitor, deaf to SIGTERM as Ray's is
    once its GCS is gone: ended at once; a child at any other path is left alone."""
    import ray.autoscaler._private.monitor as ray_monitor

    from keras_exercises.sweep import joining

    assert ray_monitor.__file__.endswith(joining._AUTOSCALER_MONITOR)
    deaf = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('deaf', flush=True); time.sleep(300)"
    )
    scripts = {}
    for name in ("monitor.py", "other.py"):
        script = tmp_path / "ray" / "autoscaler" / "_private" / name
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(deaf)
        scripts[name] = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    try:
        for process in scripts.values():
            assert process.stdout.readline() == b"deaf\n"
        joining.leave()
        assert scripts["monitor.py"].wait(timeout=5) == -9
        assert scripts["other.py"].poll() is None
    finally:
        for process in scripts.values():
            process.kill()
            process.wait()


# connect() turns Ray's token mode on in this process where the machine has a token: left
# on, the next cluster this worker starts would want one
@pytest.mark.usefixtures("ray_environment_restored")
@pytest.mark.parametrize("failures, joined", [(3, True), (4, False)])
def test_a_ray_client_server_that_dies_as_it_starts_is_tried_again(monkeypatch, failures, joined):
    """Ray's race (ray-project/ray#63202), with the message the Ray Client raises for it: up
    to three more attempts, then the one-line error. Ray's calls are stand-ins here: the
    race cannot be made to happen on demand."""
    import ray

    from keras_exercises.runtime.errors import PipelineError
    from keras_exercises.sweep import joining

    attempts = []

    def init(**options):
        attempts.append(options["address"])
        if len(attempts) <= failures:
            raise ConnectionAbortedError(
                "Initialization failure from server:\nTraceback (most recent call last):\n"
                "psutil.ZombieProcess: PID still exists but it's a zombie (pid=13393)"
            )

    monkeypatch.setattr(joining, "_reachable", lambda address: None)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True}, {"Alive": False}])
    if joined:
        assert joining.connect("ray://127.0.0.1:10001") == 1
    else:
        with pytest.raises(PipelineError, match="cannot join the Ray cluster at ray://"):
            joining.connect("ray://127.0.0.1:10001")
    assert attempts == ["ray://127.0.0.1:10001"] * min(failures + 1, 4)


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow  # a head from `ray start`, and Ray's 20 s of retries on a refused token
def test_a_head_started_as_the_docs_say_takes_the_sweep_with_its_token(tmp_path, monkeypatch):
    """docs/cluster.md's recipe with the pinned Ray: the head has a token (`ray
    get-auth-token --generate`), so `ray start --head` turns token authentication on. A
    machine without the token is refused, and told so with the fix; with the head's token
    in ~/.ray/auth_token (RAY_AUTH_MODE unset, as the docs' recipe leaves it) it joins."""
    import os
    import signal

    from keras_exercises.sweep import joining

    head_home, here = tmp_path / "head", tmp_path / "here"
    here.mkdir()
    env = {**os.environ, "HOME": str(head_home), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env.pop(joining.AUTH_MODE_ENV, None)
    generated = ["ray", "get-auth-token", "--generate"]
    token = subprocess.run(generated, env=env, capture_output=True, text=True, check=True).stdout
    port = free_port()
    head = subprocess.Popen(
        ["ray", "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1"]
        + ["--num-cpus=1", "--include-dashboard=false", "--block"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    monkeypatch.setenv("HOME", str(here))
    monkeypatch.delenv(joining.AUTH_MODE_ENV, raising=False)
    try:
        deadline = time.monotonic() + 120
        while not listening(port):  # before `ray status`, 1.7 CPU s an attempt
            assert head.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        status = ["ray", "status", f"--address=127.0.0.1:{port}"]
        asking = {**env, joining.AUTH_MODE_ENV: "token"}  # `ray status` wants it said too
        while subprocess.run(status, env=asking, capture_output=True).returncode != 0:
            assert head.poll() is None and time.monotonic() < deadline
            time.sleep(1)
        refused = join(f"127.0.0.1:{port}")
        assert refused.returncode == 1, refused.stderr[-3000:]
        message = last_line(refused)
        assert message.startswith(
            f"error: the Ray cluster at 127.0.0.1:{port} refused this machine: "
            "it uses token authentication"
        ), message
        assert "`ray get-auth-token` on the head" in message
        assert "`export RAY_AUTH_MODE=token`" in message

        (here / ".ray").mkdir()
        (here / ".ray" / "auth_token").write_text(token.strip())
        # as the user runs it again after the fix
        joined = join(f"127.0.0.1:{port}")
        assert joined.stdout.strip() == "1", joined.stderr[-2000:]
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # this head alone: `ray stop` ends every Ray here
        head.wait(timeout=60)
