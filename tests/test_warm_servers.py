"""Warm servers (keras_exercises/runtime/warm_start.py, warm_server.py): when one starts
(for a stage, early, in the background), which one a stage gets (its environment, its
libraries' versions), where its socket lives, and when it ends (idle, `warm stop`)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from keras_exercises.runtime import warm_start
from tests.support.project_copy import ROOT
from tests.support.warm import (
    CLIENT,
    EARLY,
    run_client,
    servers_in,
    start_client,
    start_early_slowly,
)


def test_an_idle_server_exits_and_takes_its_socket_away(stage_dir):
    done = run_client(stage_dir, {"KERAS_EXERCISES_WARM_IDLE": "1"})
    server = psutil.Process(json.loads(done.stdout)["server"])
    sockets = list((stage_dir / "runtime").resolve().glob("keras-exercises-warm-*/*.sock"))
    assert len(sockets) == 1

    server.wait(timeout=15)
    assert not sockets[0].exists()


def test_another_environment_for_the_imports_gets_its_own_server(stage_dir):
    one = json.loads(run_client(stage_dir).stdout)["server"]
    two = json.loads(run_client(stage_dir, {"TF_ENABLE_ONEDNN_OPTS": "0"}).stdout)["server"]
    again = json.loads(run_client(stage_dir).stdout)["server"]

    assert one != two
    assert one == again


def test_a_runtime_folder_others_can_enter_is_refused_and_the_stage_runs_here(stage_dir):
    folder = (stage_dir / "runtime").resolve() / f"keras-exercises-warm-{os.getuid()}"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    done = run_client(stage_dir)

    assert done.returncode == 99  # hand_off gave None: the caller runs the stage itself
    assert "is not a folder of this user's alone" in done.stdout


def test_a_server_started_early_is_the_one_stages_wait_for(stage_dir):
    """validate starts it and returns; stages that come while it imports wait for it and
    start no other."""
    env = start_early_slowly(stage_dir)
    runtime = (stage_dir / "runtime").resolve()

    # it returned while its server still imports: no socket yet
    assert not list(runtime.glob("keras-exercises-warm-*/*.sock"))
    assert len(servers_in(runtime)) == 1
    subprocess.run([sys.executable, "-c", EARLY], cwd=stage_dir, env=env, check=True)
    clients = [start_client(stage_dir, env) for _ in range(2)]
    outputs = [client.communicate(timeout=60)[0] for client in clients]

    assert [client.returncode for client in clients] == [0, 0]
    early = servers_in(runtime)
    assert len(early) == 1
    assert {json.loads(out)["server"] for out in outputs} == {early[0].pid}
    subprocess.run([sys.executable, "-c", EARLY], cwd=stage_dir, env=env, check=True)
    # already listening: left as it is (its children, forked for a moment, aside)
    assert [p for p in servers_in(runtime) if p.ppid() != early[0].pid] == early


def test_a_server_started_in_the_background_imports_at_the_lowest_priority(stage_dir):
    """The report's, started by validate: its imports take only a core nothing else wants,
    a second start_early starts no other, and the stages it forks run at their usual
    priority."""
    env = start_early_slowly(stage_dir, background=True)
    runtime = (stage_dir / "runtime").resolve()
    subprocess.run([sys.executable, "-c", EARLY], cwd=stage_dir, env=env, check=True)
    servers = servers_in(runtime)
    assert len(servers) == 1
    deadline = time.monotonic() + 30
    while not list(runtime.glob("keras-exercises-warm-*/*.sock")):
        assert time.monotonic() < deadline, "the background server never listened"
        time.sleep(0.05)

    stage = json.loads(start_client(stage_dir, env).communicate(timeout=60)[0])
    assert stage["server"] == servers[0].pid
    assert stage["import_nice"] == 19
    assert stage["nice"] == 0


def test_a_stage_that_comes_before_the_background_server_is_ready_starts_its_own(stage_dir):
    """It does not wait on a core it may never get (another `dvc queue` worker training):
    it starts a server now, and the one in the background, once ready, leaves it be."""
    env = start_early_slowly(stage_dir, background=True)
    runtime = (stage_dir / "runtime").resolve()
    (background,) = servers_in(runtime)
    first = start_client(stage_dir, env)

    served_by = json.loads(first.communicate(timeout=60)[0])["server"]
    assert first.returncode == 0
    assert served_by != background.pid
    background.wait(timeout=30)  # ready, it found the other listening and left
    assert json.loads(start_client(stage_dir, env).communicate(timeout=60)[0])["server"] == (
        served_by
    )


def test_copies_of_the_project_share_one_server(stage_dir):
    """Every clone and `dvc exp` workspace holds its own copy of warm_server.py, written at
    its own time: the same code gets the same server."""
    copies = []
    for name in ("clone", "workspace"):
        root = stage_dir / name
        shutil.copytree(ROOT / "keras_exercises", root / "keras_exercises")
        shutil.copy(stage_dir / "fake_stage.py", root)
        copies.append(root)
    os.utime(copies[1] / "keras_exercises" / "runtime" / "warm_server.py", (0, 0))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    servers = []
    for root in copies:
        done = subprocess.run(
            [sys.executable, "-c", CLIENT], cwd=root, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
        servers.append(json.loads(done.stdout)["server"])

    assert servers[0] == servers[1]


def test_the_idle_time_counts_from_the_last_stage_end(stage_dir):
    env = {"KERAS_EXERCISES_WARM_IDLE": "2", "KERAS_EXERCISES_FAKE_SLEEP": "3"}
    done = run_client(stage_dir, env)
    server = psutil.Process(json.loads(done.stdout.splitlines()[0])["server"])
    assert server.is_running()  # 3 s of stage were not its idle time
    server.wait(timeout=15)  # then it idles out


def test_a_library_upgraded_in_place_gets_a_new_server(stage_dir):
    """Every distribution's installed version is part of the server's identity."""
    site = stage_dir / "site"
    (site / "fakelib-1.0.dist-info").mkdir(parents=True)
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    before = json.loads(run_client(stage_dir, env).stdout)["server"]
    (site / "fakelib-1.0.dist-info").rename(site / "fakelib-1.1.dist-info")
    after = json.loads(run_client(stage_dir, env).stdout)["server"]
    assert before != after


def test_a_runtime_folder_that_is_a_link_is_refused(stage_dir):
    """Someone else's link in /tmp, named as the folder would be: not followed."""
    target = stage_dir / "elsewhere"
    target.mkdir(mode=0o700)
    link = (stage_dir / "runtime").resolve() / f"keras-exercises-warm-{os.getuid()}"
    link.symlink_to(target)
    done = run_client(stage_dir)
    assert done.returncode == 99
    assert "is not a folder of this user's alone" in done.stdout
    assert not list(target.iterdir())


def test_the_sockets_live_in_the_users_runtime_folder_where_there_is_one(stage_dir, tmp_path):
    runtime = Path(tempfile.mkdtemp(prefix="xdg-", dir="/tmp"))
    try:
        done = run_client(stage_dir, {"XDG_RUNTIME_DIR": str(runtime)})
        assert done.returncode == 0, done.stdout + done.stderr
        assert list((runtime / "keras-exercises-warm").glob("*.sock"))
    finally:
        for server in servers_in(runtime):
            server.kill()
        shutil.rmtree(runtime, ignore_errors=True)


def test_warm_lists_the_servers_and_warm_stop_ends_them(stage_dir):
    server = psutil.Process(json.loads(run_client(stage_dir).stdout)["server"])
    command = [sys.executable, "-m", "keras_exercises.cli", "warm"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    listed = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    (line,) = [line for line in listed.splitlines() if line.split()[0] == str(server.pid)]
    assert " json " in line and " MB  idle " in line and "exits in" in line
    assert "`keras-exercises warm stop` ends them" in listed

    stopped = subprocess.run(
        [*command, "stop"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert stopped.strip() == "Stopped 1 warm interpreter(s)."
    assert not server.is_running() or server.status() == psutil.STATUS_ZOMBIE
    runtime = (stage_dir / "runtime").resolve()
    assert not list(runtime.glob("keras-exercises-warm-*/*.sock"))  # nor its state file
    assert not list(runtime.glob("keras-exercises-warm-*/*.sock.json"))
    listed = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    assert listed.startswith("No warm interpreter is running")


@pytest.mark.slow
def test_every_variable_the_preloads_read_at_import_makes_a_server_of_its_own(tmp_path):
    """Warm equals cold: the libraries a server preloads (both kinds), imported with every
    lookup of os.environ recorded, read none of the variables a server leaves out of its
    identity (DVC's per-stage ones, this project's, logins). A library that starts reading
    one at import fails this test, not a stage."""
    probe = textwrap.dedent(
        """
        import importlib, json, os, sys
        read = set()
        get, contains = os._Environ.__getitem__, os._Environ.__contains__
        os._Environ.__getitem__ = lambda self, key: read.add(key) or get(self, key)
        os._Environ.__contains__ = lambda self, key: read.add(key) or contains(self, key)
        from keras_exercises.runtime.warm_start import PRELOADS
        for entry in {p for kind in PRELOADS.values() for p in kind}:
            module, _, function = entry.partition(":")
            imported = importlib.import_module(module.removesuffix("?"))  # all installed here
            if function:
                getattr(imported, function)()
        print(json.dumps(sorted(k for k in read if isinstance(k, str))))
        """
    )
    # only what a lookup names is recorded: a copy of the environment reads what is in it
    minimal = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**minimal, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    read = json.loads(done.stdout.splitlines()[-1])
    assert "MLFLOW_LOGGING_LEVEL" in read and "TF_USE_LEGACY_KERAS" in read  # it records
    left_out = [name for name in read if not warm_start._shapes_imports(name)]
    assert left_out == sorted(warm_start.INERT_AT_IMPORT)  # each with its reason


def test_what_the_running_test_is_called_makes_no_server_of_its_own(stage_dir):
    """MLflow reads PYTEST_CURRENT_TEST at import for whether it is set, never its value."""
    named = {"PYTEST_CURRENT_TEST": "tests/a.py::test_one (call)"}
    one = json.loads(run_client(stage_dir, named).stdout)["server"]
    named = {"PYTEST_CURRENT_TEST": "tests/a.py::test_two (call)"}
    assert json.loads(run_client(stage_dir, named).stdout)["server"] == one
    done = run_client(stage_dir, unset=("PYTEST_CURRENT_TEST",))
    assert json.loads(done.stdout)["server"] != one


def test_mlflows_telemetry_session_makes_no_server_of_its_own(stage_dir):
    """A process that imported MLflow (a sweep's driver, whose local Ray instance starts the
    stages) passes its telemetry session on: its stages share the servers of a stage
    started from a shell."""
    from_shell = run_client(stage_dir, unset=("_MLFLOW_TELEMETRY_SESSION_ID",))
    from_driver = run_client(stage_dir, {"_MLFLOW_TELEMETRY_SESSION_ID": "0123abcd" * 4})
    assert json.loads(from_driver.stdout)["server"] == json.loads(from_shell.stdout)["server"]


@pytest.mark.slow
def test_an_mlflow_setting_read_at_import_is_what_a_cold_process_reads(stage_dir):
    """MLflow sets its loggers' level from MLFLOW_LOGGING_LEVEL when it is imported: a stage
    run warm after another level's stage sees its own, as a process of its own would."""
    (stage_dir / "mlflow_level.py").write_text(
        "import logging, mlflow\nprint(logging.getLogger('mlflow').level)\n"
    )
    client = CLIENT.replace('"fake_stage"', '"mlflow_level"')

    def level_seen(level: str, *command: str) -> str:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PRELOAD": "mlflow"}
        env["MLFLOW_LOGGING_LEVEL"] = level
        return subprocess.run(
            command, cwd=stage_dir, env=env, capture_output=True, text=True, timeout=120
        ).stdout.strip()

    levels = {
        level: (
            level_seen(level, sys.executable, "-c", client),  # warm
            level_seen(level, sys.executable, "mlflow_level.py"),  # cold
        )
        for level in ("WARNING", "DEBUG")
    }
    assert levels["WARNING"][0] == levels["WARNING"][1] == str(logging.WARNING)
    assert levels["DEBUG"][0] == levels["DEBUG"][1] == str(logging.DEBUG)
