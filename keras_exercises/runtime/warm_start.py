"""Warm start: a stage that trains or evaluates a model, or writes the report, hands itself
to a warm interpreter (warm_server.py) that has imported its libraries (TensorFlow, MLflow,
scikit-learn, matplotlib; the report's: MLflow, SciPy, DVC) once, instead of importing them
again in every stage process (3-15 s each, by the machine and the stage); so does each task
of a sweep on its node (sweep/stage_runner.py: DVC, 0.5 s). The stage runs
in a child forked from that interpreter, with this process's working directory,
environment, arguments and standard streams; this process forwards signals to it, waits,
and exits with its exit code, so DVC sees one process, as before.

`validate` starts TensorFlow's server without waiting for it and the report's in the
background (start_early); a stage that finds none starts one. A server is shared by the
stages after it (those of parallel `dvc queue` workers too), and exits after
`KERAS_EXERCISES_WARM_IDLE` seconds after its last stage ended (default 300). It holds no
project code, only libraries, so an edited stage runs as edited; another Python, any other
installed version of any distribution, or another environment (all of it but what DVC and
this project set per stage, and logins) gets a server of its own, so that what a library
reads at import is what it would read in the stage's own process. `KERAS_EXERCISES_WARM=0`
runs every stage in its own process; `keras-exercises warm` lists the servers and
`keras-exercises warm stop` ends them. Linux only: elsewhere every stage runs in its own
process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from keras_exercises.runtime import warm_server

SWITCH, IDLE = "KERAS_EXERCISES_WARM", "KERAS_EXERCISES_WARM_IDLE"
# set in a stage the server runs, so that it runs there rather than handing itself on again
INSIDE = "KERAS_EXERCISES_WARM_CHILD"
_MLFLOW = (
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    # the model registry finds its store plugins on first use by reading the entry points of
    # every installed package (0.44 s here, in every stage that registers or sets an alias)
    "mlflow.tracking._model_registry.utils:_get_store_registry",
)
# what each kind of stage imports, a server for each: the report's holds no TensorFlow, so
# a report forked from it weighs about what it would in a process of its own
PRELOADS = {
    "tensorflow": (
        "tensorflow",
        "keras",
        *_MLFLOW,
        "mlflow.keras",
        "sklearn.metrics",
        "matplotlib",
    ),
    "report": (*_MLFLOW, "scipy.stats", "matplotlib.figure", "jinja2", "dvc.api"),
    # a sweep's tasks (sweep/stage_runner.py, homecoming.py): DVC and, where installed ("?"),
    # the S3 client its remote may need; about half a second of imports per task
    "dvc": (
        "dvc",
        "dvc.repo",
        "dvc.repo.reproduce",
        "dvc.repo.pull",
        "dvc.repo.push",
        "dvc.stage.cache",
        "dvc.utils.hydra",
        "dvc.repo.experiments.refs",
        "dvc_s3?",
        "s3fs?",
    ),
}
# What a server is neither told apart by nor given: what DVC and this project set per stage,
# and logins. Every other variable is part of the server's identity and environment, so a
# preloaded library reads at import exactly what it would in a process of the stage's own
# (tests/test_warm_servers.py records every variable the preloads look up at import, and
# checks none of these is among them); the stage's child gets the whole environment.
_PER_STAGE = {"DVC_STAGE", "DVC_ROOT", INSIDE, "PWD", "OLDPWD", "SHLVL", "_"}
_PER_STAGE_PREFIXES = ("DVC_EXP_", "KERAS_EXERCISES_", "MLFLOW_TRACKING_", "TEAM_")
_PER_STAGE_PREFIXES += ("MLFLOW_HTTP_REQUEST_", "PYTEST_XDIST_")
# a Ray worker names its job and raylet in these, which no preloaded library reads: each
# sweep (a Ray job of its own) would start its own servers on every node, a gigabyte each
_PER_STAGE_PREFIXES += ("RAY_",)
_LOGIN_SUFFIXES = ("PASSWORD", "_TOKEN", "_SECRET", "_SECRET_ACCESS_KEY", "_ACCESS_KEY_ID")
_LOGIN_SUFFIXES += ("_API_KEY",)
# read at import only for whether it is set: pytest names the running test in it, and MLflow
# takes any value as "under test" (telemetry/utils.py), so each test needs no server of its own
_PRESENCE_ONLY = {"PYTEST_CURRENT_TEST"}
# read at import only to name MLflow's telemetry session (a random id where unset), which
# changes nothing a stage does; but every process that imports MLflow sets it for what it
# starts, a sweep's driver for the local Ray instance it starts and so every stage there
INERT_AT_IMPORT = {"_MLFLOW_TELEMETRY_SESSION_ID"}
INSTALLED_SUFFIXES = (".dist-info", ".egg-info")
_MAX_SOCKET_PATH = 107  # bytes, on Linux
_START_TIMEOUT = 300  # seconds: two loaded cores took over two minutes to import it all


def enabled() -> bool:
    return (
        sys.platform == "linux"
        and os.environ.get(SWITCH, "1") != "0"
        and not os.environ.get(INSIDE)
    )


def hand_off_main(kind: str) -> None:
    """Hand the running `python -m` module to a warm interpreter of `kind` (PRELOADS) and
    exit as it does; return where none takes it (switched off, not Linux, already inside
    one, or run as a file rather than with `python -m`)."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is None or not enabled():
        return
    code = hand_off(spec.name, PRELOADS[kind])
    if code is not None:
        # it ran and ended elsewhere: nothing is left to do or clean up here
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def hand_off(module: str, preload: tuple[str, ...]) -> int | None:
    """Run the stage `module` (`python -m MODULE`) in a warm server's child and return its
    exit code; None when no server could take it (this process then runs the stage)."""
    for _ in range(2):  # a server that stops for idleness as we connect: start another
        try:
            conn = _connect(preload)
        except (OSError, TimeoutError) as exc:
            print(f"note: no warm start ({exc}); this stage imports its libraries itself.")
            return None
        with conn:
            env = dict(os.environ, **{INSIDE: str(os.getpid())})
            request = {"module": module, "argv": sys.argv, "cwd": os.getcwd(), "env": env}
            try:
                warm_server.send_message(conn, {**request, "path": sys.path}, [0, 1, 2])
                started = warm_server.receive_message(conn)
            except OSError:
                started = None
            if started is None:
                continue
            if "error" in started[0]:
                print(
                    f"note: no warm start (the warm interpreter could not set up the stage: "
                    f"{started[0]['error']}); this stage imports its libraries itself."
                )
                return None
            return _wait_for(conn, started[0]["pid"])
    return None


def _wait_for(conn: socket.socket, pid: int) -> int:
    """Forward signals to the stage until it ends; its exit code (128 + N: killed by N)."""

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    # the server reaps the stage and says how it ended: its exit code, or 128 + N for a
    # stage killed by signal N, as a shell tells a process of its own
    ended = warm_server.receive_message(conn)
    if ended is None:
        print(
            "error: the warm interpreter running this stage ended before the stage did "
            f"(`keras-exercises warm` lists the running ones; {SWITCH}=0 runs stages without).",
            file=sys.stderr,
        )
        return 1
    return int(ended[0]["exit"])


def start_early(
    now: tuple[tuple[str, ...], ...] = (PRELOADS["tensorflow"],),
    in_background: tuple[tuple[str, ...], ...] = (PRELOADS["report"],),
) -> None:
    """Start a warm server for each preload, if none is up or starting, and return without
    waiting. TensorFlow's starts now: it imports on the other core while DVC runs the quick
    stages before the first one that needs it. The report's starts in the background: it
    imports at the lowest priority, on a core nothing else wants (while the first training
    stage waits for TensorFlow, between stages), so that it slows no training and is ready
    when the report comes; a report that comes first starts its own (warm_server.py). Any
    trouble is left to the stages, which start one themselves or say why not."""
    if not enabled():
        return
    for preload, when in [(p, "now") for p in now] + [(p, "background") for p in in_background]:
        try:
            path = _socket_path(preload)
            with open(f"{path}.lock", "w") as lock, open(f"{path}.background", "w") as ahead:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while one starts
                fcntl.flock(ahead, fcntl.LOCK_EX | fcntl.LOCK_NB)  # or imports in the background
                if not warm_server.is_listening(path):
                    held = lock if when == "now" else ahead
                    _start_server(path, preload, held.fileno(), when)
        except OSError:
            continue


def _connect(preload: tuple[str, ...]) -> socket.socket:
    path = _socket_path(preload)
    try:
        return warm_server.open_connection(path)
    except OSError:
        pass
    # one client starts the server; a server holds this lock until it listens, so the
    # others wait for it here
    deadline = time.monotonic() + _START_TIMEOUT
    with open(f"{path}.lock", "w") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the warm server did not start in {_START_TIMEOUT} s"
                    ) from None
                time.sleep(0.05)
        try:
            return warm_server.open_connection(path)
        except OSError:
            pass
        server = _start_server(path, preload, lock.fileno())
    while time.monotonic() < deadline:
        try:
            return warm_server.open_connection(path)
        except OSError:
            if server.poll() is not None:
                raise OSError(f"the warm server exited with {server.returncode}") from None
            time.sleep(0.05)
    server.kill()
    raise TimeoutError(f"the warm server did not start in {_START_TIMEOUT} s")


def _start_server(
    path: str, preload: tuple[str, ...], lock_fd: int, when: str = "now"
) -> subprocess.Popen:
    Path(path).unlink(missing_ok=True)  # a server that died without cleaning up
    idle = os.environ.get(IDLE, "300")
    # the server's own environment holds only what shapes the imports: no credentials.
    # PYTHONPATH goes as an argument: a sitecustomize on it runs in each stage, with the
    # stage's environment, as in a process of its own, not once in the server
    env = {k: v for k, v in server_environment().items() if k != "PYTHONPATH"}
    return subprocess.Popen(
        [sys.executable, warm_server.__file__, path, idle, str(lock_fd), when]
        + [os.environ.get("PYTHONPATH", ""), *preload],
        env=env,
        pass_fds=(lock_fd,),
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # not in DVC's process group: it outlives this stage
    )


def server_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a server for a process of environment `env` (this one's unless
    given) imports with, and is told apart by."""
    return {
        name: "set" if name in _PRESENCE_ONLY else value
        for name, value in sorted((os.environ if env is None else env).items())
        if _shapes_imports(name)
    }


def _shapes_imports(name: str) -> bool:
    if name == IDLE:  # the server's own setting
        return True
    return not (
        name in _PER_STAGE
        or name in INERT_AT_IMPORT
        or name.startswith(_PER_STAGE_PREFIXES)
        or name.endswith(_LOGIN_SUFFIXES)
    )


def runtime_folder() -> Path:
    """Where the servers' sockets are: $XDG_RUNTIME_DIR (this user's alone, made by the
    system at login) where there is one, else a folder of this user's in the temp dir,
    checked without following a link someone else may have planted there."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        folder = Path(runtime) / "keras-exercises-warm"
    else:
        folder = Path(tempfile.gettempdir()) / f"keras-exercises-warm-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise OSError(f"{folder} is not a folder of this user's alone")
    return folder


def _socket_path(preload: tuple[str, ...]) -> str:
    """One server per Python, installed distributions and environment, in a folder only
    this user can enter."""
    folder = runtime_folder()
    identity = {
        "python": sys.executable,
        "env": server_environment(),
        "preload": preload,
        # every distribution installed where this Python imports from, with its version
        # (the names of their .dist-info folders, which importlib.metadata reads): an
        # upgrade of any of them, in place or not, gets a new server
        "distributions": installed_distributions(),
        # by content, not file time: every clone and `dvc exp` workspace of the project
        # has its own copy of this file, and they share one server
        "server": hashlib.sha256(Path(warm_server.__file__).read_bytes()).hexdigest(),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    path = str(folder / f"{digest}.sock")
    if len(path) + 8 > _MAX_SOCKET_PATH:  # the server binds it with .<pid> added first
        raise OSError(f"the socket path {path} is too long: set TMPDIR to a shorter folder")
    return path


def installed_distributions() -> list[str]:
    """name-version of every distribution on sys.path: a directory listing per entry (a
    millisecond), where reading each one's metadata would take a tenth of a second. By name
    only: every copy of the project (a clone, a `dvc exp` workspace) shares the server."""
    found = set()
    for entry in sys.path:
        with contextlib.suppress(OSError):
            found.update(
                name for name in os.listdir(entry or ".") if name.endswith(INSTALLED_SUFFIXES)
            )
    return sorted(found)
