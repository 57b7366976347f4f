"""What the warm-start tests share: a stand-in stage module, the client that hands it to a
warm server, what validate runs to start one early, and the servers a test started. The
server gets a light preload (json), so each test takes seconds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from tests.support.project_copy import ROOT

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


def servers_in(runtime: Path) -> list[psutil.Process]:
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
