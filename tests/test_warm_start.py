"""Warm start (keras_exercises/runtime/warm_start.py): a stage handed to a warm server runs
there as it would in its own process (its directory, environment, streams, signals, exit),
and the server stays out of the way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from keras_exercises.runtime import warm_start, warm_status
from tests.support.project_copy import ROOT
from tests.support.warm import CLIENT, run_client, servers_in, start_client, wait_for


def test_a_handed_stage_runs_as_the_client_would_and_the_server_is_reused(stage_dir):
    # DVC names each stage in its environment, Ray each task's job: one server for both,
    # each child its own
    first = run_client(
        stage_dir,
        {"DVC_STAGE": "train@ex1-42", "KERAS_EXERCISES_FAKE_CODE": "3", "RAY_JOB_ID": "01000000"},
        input="typed",
    )
    second = run_client(
        stage_dir, {"DVC_STAGE": "train@ex2-42", "RAY_JOB_ID": "02000000"}, input=""
    )

    assert first.returncode == 3 and second.returncode == 0
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["cwd"] == str(stage_dir)
    assert one["argv"] == ["first", "second"]
    assert (one["stage"], two["stage"]) == ("train@ex1-42", "train@ex2-42")
    assert one["stdin"] == "typed"
    assert "to stderr" in first.stderr
    assert one["server"] == two["server"]  # one warm server, a child per stage
    assert one["pid"] != two["pid"]
    # named in `ps` for what it is
    server = psutil.Process(one["server"])
    assert " ".join(server.cmdline()).startswith(f"{warm_status.TITLE} (json; Python ")


def test_a_preload_may_call_what_a_library_would_do_on_first_use(stage_dir):
    """`module:function` in a preload: imported and called once, in the server, so that each
    stage starts with what it did (MLflow's registry of model-registry stores)."""
    (stage_dir / "warmup.py").write_text(
        "import os\nWARMED = None\n\n\ndef warm():\n    global WARMED\n    WARMED = os.getpid()\n"
    )
    env = {"PRELOAD": "warmup:warm", "PYTHONPATH": f"{ROOT}{os.pathsep}{stage_dir}"}
    first, second = (json.loads(run_client(stage_dir, env).stdout) for _ in range(2))
    assert first["warmed"] == second["warmed"] == first["server"] == second["server"]


def test_a_stage_finds_what_the_server_loaded_out_of_the_collectors_sight(stage_dir):
    """The server freezes what it loaded (gc.freeze): a stage's full collections skip the
    preloaded libraries' objects, which live as long as the server does."""
    assert json.loads(run_client(stage_dir).stdout)["frozen"] > 0


def test_the_servers_environment_holds_no_credentials(stage_dir):
    """What the preloaded libraries saw at import (a preload that keeps it), as /proc's copy
    of the server's environment is gone once it names itself in `ps`."""
    (stage_dir / "env_probe.py").write_text("import os\nSEEN = dict(os.environ)\n")
    logins = {"MLFLOW_TRACKING_PASSWORD": "hunter2", "AWS_SECRET": "x", "OPENAI_API_KEY": "y"}
    path = {"PRELOAD": "env_probe", "PYTHONPATH": f"{ROOT}{os.pathsep}{stage_dir}"}
    seen = json.loads(run_client(stage_dir, {**logins, **path, "MPLBACKEND": "agg"}).stdout)

    assert seen["import_env"]["MPLBACKEND"] == "agg"  # the rest of the environment, as it is
    assert not set(logins) & set(seen["import_env"])
    assert "hunter2" not in json.dumps(seen["import_env"])


def test_a_signal_to_the_client_reaches_the_stage(stage_dir):
    client = start_client(stage_dir, {"KERAS_EXERCISES_FAKE_SLEEP": "60"})
    wait_for(stage_dir / "started")
    client.send_signal(signal.SIGTERM)

    assert client.wait(timeout=30) == 128 + signal.SIGTERM  # died of it, as a shell says
    stage = json.loads(client.stdout.readline())
    try:
        alive = psutil.Process(stage["pid"]).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        alive = False
    assert not alive


def test_a_handed_stage_shows_in_ps_as_its_own_process_would(stage_dir):
    """Not under the server's name, which its fork inherits: `ps`, `keras-exercises warm`
    and whatever stops the servers by name tell a stage from a server."""
    client = start_client(stage_dir, {"KERAS_EXERCISES_FAKE_SLEEP": "60"})
    try:
        wait_for(stage_dir / "started")
        stage = psutil.Process(json.loads(client.stdout.readline())["pid"])
        assert " ".join(stage.cmdline()).rstrip() == f"{sys.executable} -m fake_stage"
        assert warm_status.TITLE not in " ".join(stage.cmdline())
    finally:
        client.kill()
        client.wait()


def test_a_client_killed_outright_takes_its_stage_and_what_it_started_with_it(stage_dir):
    client = start_client(
        stage_dir, {"KERAS_EXERCISES_FAKE_SLEEP": "60", "KERAS_EXERCISES_FAKE_CHILD": "1"}
    )
    wait_for(stage_dir / "started")
    stage = psutil.Process(json.loads(client.stdout.readline())["pid"])
    child = psutil.Process(json.loads(client.stdout.readline())["child"])
    client.kill()
    client.wait()

    _, alive = psutil.wait_procs([stage, child], timeout=10)  # they may be gone already
    assert alive == []


def test_a_preload_not_installed_is_skipped_where_it_is_optional(stage_dir):
    """An optional extra's library ("name?"), not installed, leaves the server as it is; a
    library a server needs, not installed, leaves the stage to run in its own process."""
    optional = run_client(stage_dir, {"PRELOAD": "no_such_library_here?"})
    assert optional.returncode == 0, optional.stderr  # run by a server (99: by none)
    needed = run_client(stage_dir, {"PRELOAD": "no_such_library_here"})
    assert needed.returncode == 99 and "note: no warm start" in needed.stdout


def test_switched_off_or_nested_it_is_not_used(monkeypatch):
    monkeypatch.setenv("KERAS_EXERCISES_WARM", "0")
    assert not warm_start.enabled()
    monkeypatch.setenv("KERAS_EXERCISES_WARM", "1")
    monkeypatch.setenv(warm_start.INSIDE, "123")
    assert not warm_start.enabled()
    monkeypatch.delenv(warm_start.INSIDE)
    assert warm_start.enabled() == (sys.platform == "linux")


def test_a_sitecustomize_runs_in_the_stage_with_the_stages_environment(stage_dir):
    """As in a process of its own: start-up hooks (coverage, profilers, the benchmark's
    instrument, a test's injected fault) see the stage's environment."""
    hooks = stage_dir / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import os\nos.environ['DVC_STAGE'] = 'hooked ' + os.environ.get('DVC_ROOT', 'none')\n"
    )
    python_path = os.pathsep.join([str(hooks), str(ROOT)])
    first = run_client(stage_dir, {"PYTHONPATH": python_path, "DVC_ROOT": "dark"})
    second = run_client(stage_dir, {"PYTHONPATH": python_path, "DVC_ROOT": "light"})

    assert json.loads(first.stdout)["stage"] == "hooked dark"
    assert json.loads(second.stdout)["stage"] == "hooked light"
    assert json.loads(first.stdout)["server"] == json.loads(second.stdout)["server"]


def test_a_warm_stage_imports_no_library_before_it_hands_itself_over():
    """What the process DVC starts imports before run_stage hands the stage over is imported
    again in the warm child, for nothing: the stage's libraries load inside main()."""
    warm = [p for p in sorted((ROOT / "stages").glob("*.py")) if "warm=" in p.read_text()]
    assert len(warm) >= 4  # train, embed, mc_evaluate, report
    libraries = ("numpy", "pydantic", "scipy", "mlflow", "tensorflow", "matplotlib", "yaml")
    probe = "import importlib, sys; importlib.import_module(sys.argv[1]); " + (
        f"print(sorted(m for m in {libraries!r} if m in sys.modules))"
    )
    for path in warm:
        module = f"stages.{path.stem}"
        loaded = subprocess.run(
            [sys.executable, "-c", probe, module],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert loaded == "[]", f"importing {module} loads {loaded}"


def test_ctrl_c_while_a_stage_waits_for_its_server_stops_it_in_one_line(stage_dir):
    """A first stage waits seconds for its server's imports: Ctrl-C there is the stage's
    usual stop (exit 130, one line), not a traceback; the server, in a session of its own,
    is left to finish starting for the next stage."""
    (stage_dir / "slow_library.py").write_text("import time\ntime.sleep(60)\n")
    (stage_dir / "slow_stage.py").write_text(
        textwrap.dedent(
            """
            from keras_exercises.runtime import errors, warm_start
            warm_start.PRELOADS["slow"] = ("slow_library",)
            if __name__ == "__main__":
                errors.run_stage(lambda argv: print("ran"), warm="slow")
            """
        )
    )
    stage = subprocess.Popen(
        [sys.executable, "-m", "slow_stage"],
        cwd=stage_dir,
        env={**os.environ, "PYTHONPATH": f"{stage_dir}:{ROOT}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not servers_in((stage_dir / "runtime").resolve()):  # it imports slow_library
        assert stage.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    stage.send_signal(signal.SIGINT)
    out, err = stage.communicate(timeout=30)
    assert stage.returncode == 130, err
    assert err.strip() == "stopped by signal 2." and out == ""


@pytest.mark.parametrize("signum", [signal.SIGABRT, signal.SIGSEGV, signal.SIGKILL])
def test_a_stage_killed_by_a_signal_ends_its_client_as_a_cold_process_would(stage_dir, signum):
    """128 + the signal, as a shell reports a process of its own: a native crash is not
    taken for the out-of-memory killer's SIGKILL."""
    done = run_client(stage_dir, {"KERAS_EXERCISES_FAKE_SIGNAL": str(int(signum))})
    assert done.returncode == 128 + signum, done.stderr


def test_a_failing_sitecustomize_is_reported_and_the_stage_runs(stage_dir):
    """As Python's site module does in a process of its own."""
    hooks = stage_dir / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text("raise RuntimeError('a broken hook')\n")
    done = run_client(stage_dir, {"PYTHONPATH": os.pathsep.join([str(hooks), str(ROOT)])})
    assert done.returncode == 0
    assert "Error in sitecustomize; set PYTHONVERBOSE for traceback:" in done.stderr
    assert "RuntimeError: a broken hook" in done.stderr


def test_a_stage_the_server_cannot_set_up_runs_here_and_says_why(stage_dir):
    client = CLIENT.replace("import os, sys", "import os, sys\nos.getcwd = lambda: '/gone'")
    done = subprocess.run(
        [sys.executable, "-c", client],
        cwd=stage_dir,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 99  # hand_off gave None: the caller runs the stage itself
    assert "the warm interpreter could not set up the stage: FileNotFoundError" in done.stdout
