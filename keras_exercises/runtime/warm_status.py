"""`keras-exercises warm` and `keras-exercises warm stop`: the warm interpreters of this user
(warm_server.py) that are running, and ending them, as `gradle --status` and `--stop` do
for Gradle's daemons. Each server keeps a small state file beside its socket."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass

from keras_exercises.runtime.warm_start import runtime_folder

TITLE = "keras-exercises warm interpreter"


@dataclass
class Server:
    pid: int
    kind: str  # what it preloads first: tensorflow, mlflow
    python: str
    memory_mb: float  # its own, not shared with its stages: what ending it frees
    stages: int  # running now
    idle_seconds: float  # since its last stage ended; 0 while one runs
    exits_in: float | None  # seconds; None while a stage runs

    def line(self) -> str:
        if self.stages:
            when = f"running {self.stages} stage(s)"
        else:
            when = f"idle {self.idle_seconds:.0f} s, exits in {self.exits_in:.0f} s"
        return f"{self.pid:>8}  {self.kind:<10}  {self.memory_mb:>7.0f} MB  {when}  ({self.python})"


def running() -> list[Server]:
    """The servers whose state file names a live process of theirs."""
    import psutil

    found = []
    for state_file in sorted(runtime_folder().glob("*.sock.json")):
        try:
            state = json.loads(state_file.read_text())
            process = psutil.Process(state["pid"])
            if TITLE not in " ".join(process.cmdline()):
                continue  # the pid went to another process
            memory = process.memory_full_info().uss / 1e6
        except (OSError, ValueError, KeyError, psutil.Error):
            continue
        idle = 0.0 if state["stages"] else max(0.0, time.time() - state["last_end"])
        found.append(
            Server(
                pid=state["pid"],
                kind=state["kind"],
                python=state["python"],
                memory_mb=memory,
                stages=state["stages"],
                idle_seconds=idle,
                exits_in=None if state["stages"] else max(0.0, state["idle_seconds"] - idle),
            )
        )
    return found


def status() -> str:
    servers = running()
    if not servers:
        return f"No warm interpreter is running (folder {runtime_folder()})."
    lines = [f"{'PID':>8}  {'PRELOADS':<10}  {'MEMORY':>10}  STATE"]
    lines += [server.line() for server in servers]
    lines.append(
        "`keras-exercises warm stop` ends them (a running stage first finishes); "
        "KERAS_EXERCISES_WARM=0 runs stages without them."
    )
    return "\n".join(lines)


def stop(timeout: float = 60) -> str:
    """SIGTERM to each server: it takes no new stage, lets its running ones finish, and
    exits. Waits for them up to `timeout` seconds."""
    import psutil

    servers = running()
    processes = []
    for server in servers:
        try:
            os.kill(server.pid, signal.SIGTERM)
            processes.append(psutil.Process(server.pid))
        except (ProcessLookupError, psutil.Error):
            continue
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    ended = len(processes) - len(alive)
    said = f"Stopped {ended} warm interpreter(s)."
    if alive:
        pids = ", ".join(str(process.pid) for process in alive)
        said += f" Still finishing a stage after {timeout:.0f} s: {pids}."
    return said
