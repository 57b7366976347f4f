"""Warm start (keras_exercises/runtime/warm_start.py): a stage handed to a warm server runs
there as it would in its own process, and the server stays out of the way. These tests give
the server a light preload (json) and a stand-in stage module, so they take seconds."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from keras_exercises.runtime import warm_start, warm_status

ROOT = Path(__file__).resolve().parents[1]

STAGE = """
import gc, json, os, sys, time
print(json.dumps({"cwd": os.getcwd(), "argv": sys.argv[1:], "pid": os.getpid(),
                  "server": os.getppid(), "stage": os.environ.get("DVC_STAGE"),
                  "stdin": sys.stdin.read(),
                  "warmed": getattr(sys.modules.get("warmup"), "WARMED", None),
                  "frozen": gc.get_freeze_count(), "nice": os.nice(0),
                  "import_nice": getattr(sys.modules.get("slow_import"), "NICE", None),
                  "import_env": getattr(sys.modules.get("env_probe"), "SEEN", None)}),
      flush=True)
print("to stderr", file=sys.stderr)
if os.environ.get("KERAS_EXERCISES_FAKE_CHILD"):  # as a stage runner's `dvc repro` starts one
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(json.dumps({"child": child.pid}), flush=True)
if os.environ.get("KERAS_EXERCISES_FAKE_SLEEP"):
    open("started", "w").close()
    time.sleep(float(os.environ["KERAS_EXERCISES_FAKE_SLEEP"]))
if os.environ.get("KERAS_EXERCISES_FAKE_SIGNAL"):
    os.kill(os.getpid(), int(os.environ["KERAS_EXERCISES_FAKE_SIGNAL"]))
sys.exit(int(os.environ.get("KERAS_EXERCISES_FAKE_CODE", "0")))
"""

# what a stage's process runs: hand the stage module over, exit with its code
CLIENT = textwrap.dedent(
    """
    import os, sys
    from keras_exercises.runtime import warm_start, warm_status
    code = warm_start.hand_off("fake_stage", preload=(os.environ.get("PRELOAD", "json"),))
    sys.exit(99 if code is None else code)
    """
)
# what validate runs: start a server and return
EARLY = textwrap.dedent(
    """
    import os
    from keras_exercises.runtime import warm_start, warm_status
    preload = (os.environ.get("PRELOAD", "json"),)
    if os.environ.get("BACKGROUND"):
        warm_start.start_early(now=(), in_background=(preload,))
    else:
        warm_start.start_early(now=(preload,), in_background=())
    """
)


@pytest.fixture
def stage_dir(tmp_path, monkeypatch):
    """A folder with the stand-in stage, and servers of their own: their own temp dir,
    short enough for a socket's path (pytest's are not)."""
    (tmp_path / "fake_stage.py").write_text(STAGE)
    runtime = Path(tempfile.mkdtemp(prefix="warm-", dir="/tmp"))
    (tmp_path / "runtime").symlink_to(runtime)
    monkeypatch.setenv("TMPDIR", str(runtime))
    monkeypatch.setenv("KERAS_EXERCISES_WARM_IDLE", "30")
    yield tmp_path
    for server in _servers(runtime):
        server.kill()
    shutil.rmtree(runtime, ignore_errors=True)


def _servers(runtime: Path) -> list[psutil.Process]:
    """The test's servers: their socket folder in their name in `ps` (or, before they name
    themselves, in their arguments)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(runtime) in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def run_client(
    folder: Path, env: dict | None = None, unset: tuple[str, ...] = (), **kwargs
) -> subprocess.CompletedProcess:
    """The stand-in stage handed over by a client, with `env` over the test's environment
    and `unset` taken out of it."""
    base = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "-c", CLIENT, "first", "second"],
        cwd=folder,
        env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


def start_client(folder: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


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


def test_switched_off_or_nested_it_is_not_used(monkeypatch):
    monkeypatch.setenv("KERAS_EXERCISES_WARM", "0")
    assert not warm_start.enabled()
    monkeypatch.setenv("KERAS_EXERCISES_WARM", "1")
    monkeypatch.setenv(warm_start.INSIDE, "123")
    assert not warm_start.enabled()
    monkeypatch.delenv(warm_start.INSIDE)
    assert warm_start.enabled() == (sys.platform == "linux")


def test_a_runtime_folder_others_can_enter_is_refused_and_the_stage_runs_here(stage_dir):
    folder = (stage_dir / "runtime").resolve() / f"keras-exercises-warm-{os.getuid()}"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    done = run_client(stage_dir)

    assert done.returncode == 99  # hand_off gave None: the caller runs the stage itself
    assert "is not a folder of this user's alone" in done.stdout


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


SLOW_IMPORT = (
    "import os, threading, time\n"
    "NICE = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())\n"
    "time.sleep(3)\n"
)


def start_early_slowly(stage_dir: Path, background: bool = False) -> dict:
    """What validate does, with a preload that takes 3 s to import (its thread's nice value
    kept), the server started now or in the background; the environment used."""
    (stage_dir / "slow_import.py").write_text(SLOW_IMPORT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(stage_dir), str(ROOT)]),
        "PRELOAD": "slow_import",
        **({"BACKGROUND": "1"} if background else {}),
    }
    subprocess.run([sys.executable, "-c", EARLY], cwd=stage_dir, env=env, check=True)
    return env


def test_a_server_started_early_is_the_one_stages_wait_for(stage_dir):
    """validate starts it and returns; stages that come while it imports wait for it and
    start no other."""
    env = start_early_slowly(stage_dir)
    runtime = (stage_dir / "runtime").resolve()

    # it returned while its server still imports: no socket yet
    assert not list(runtime.glob("keras-exercises-warm-*/*.sock"))
    assert len(_servers(runtime)) == 1
    subprocess.run([sys.executable, "-c", EARLY], cwd=stage_dir, env=env, check=True)
    clients = [start_client(stage_dir, env) for _ in range(2)]
    outputs = [client.communicate(timeout=60)[0] for client in clients]

    assert [client.returncode for client in clients] == [0, 0]
    early = _servers(runtime)
    assert len(early) == 1
    assert {json.loads(out)["server"] for out in outputs} == {early[0].pid}
    subprocess.run([sys.executable, "-c", EARLY], cwd=stage_dir, env=env, check=True)
    # already listening: left as it is (its children, forked for a moment, aside)
    assert [p for p in _servers(runtime) if p.ppid() != early[0].pid] == early


def test_a_server_started_in_the_background_imports_at_the_lowest_priority(stage_dir):
    """The report's, started by validate: its imports take only a core nothing else wants,
    a second start_early starts no other, and the stages it forks run at their usual
    priority."""
    env = start_early_slowly(stage_dir, background=True)
    runtime = (stage_dir / "runtime").resolve()
    subprocess.run([sys.executable, "-c", EARLY], cwd=stage_dir, env=env, check=True)
    servers = _servers(runtime)
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
    (background,) = _servers(runtime)
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
    while not _servers((stage_dir / "runtime").resolve()):  # it imports slow_library
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
        for server in _servers(runtime):
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
    assert [name for name in read if not warm_start._shapes_imports(name)] == []


def test_what_the_running_test_is_called_makes_no_server_of_its_own(stage_dir):
    """MLflow reads PYTEST_CURRENT_TEST at import for whether it is set, never its value."""
    named = {"PYTEST_CURRENT_TEST": "tests/a.py::test_one (call)"}
    one = json.loads(run_client(stage_dir, named).stdout)["server"]
    named = {"PYTEST_CURRENT_TEST": "tests/a.py::test_two (call)"}
    assert json.loads(run_client(stage_dir, named).stdout)["server"] == one
    done = run_client(stage_dir, unset=("PYTEST_CURRENT_TEST",))
    assert json.loads(done.stdout)["server"] != one


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
