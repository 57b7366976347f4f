"""Runs left RUNNING by a process that died without ending them."""

from __future__ import annotations

import hashlib
import os
import socket
from functools import cache

PROCESS_TAG = "process"  # machine:pid:start time of the process that opened the run
# a sweep's <name>/<stage key>: Ray runs a task again only once its earlier attempt is dead
SWEEP_TASK_TAG = "sweep_task"

# What tells one pid space from another. A hostname does not: containers often share one.
# The machine id names the installation, the boot id its current boot (pids restart at
# every boot), and the pid namespace tells containers on one kernel apart.
_IDENTITY_FILES = ("/etc/machine-id", "/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid")


@cache
def this_machine() -> str:
    """`hostname/digest`: the hostname for people, the digest of the machine id, boot id and
    pid namespace for telling whether a pid in a tag is one this process can look up."""
    parts = [socket.gethostname()]
    for path in _IDENTITY_FILES:
        try:
            parts.append(os.readlink(path) if path.startswith("/proc/self/ns") else _read(path))
        except OSError:
            parts.append("")  # not Linux, or not readable: the hostname still tells
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    return f"{parts[0]}/{digest}"


def _read(path: str) -> str:
    with open(path) as file:
        return file.read().strip()


def this_process() -> str:
    import psutil

    me = psutil.Process()
    return f"{this_machine()}:{me.pid}:{me.create_time():.2f}"


def _process_gone(tag: str) -> bool:
    """Whether the process a run's tag names is gone; False when it can't be told (another
    machine, container or boot, or a run without the tag). The start time tells a reused
    pid from the original."""
    import psutil

    machine, pid, started = (tag.rsplit(":", 2) + ["", "", ""])[:3]
    if machine != this_machine() or not pid.isdigit():
        return False
    try:
        return abs(psutil.Process(int(pid)).create_time() - float(started)) > 1
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, ValueError):
        return False


def end_orphaned_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the runs still RUNNING whose process on this machine is gone, or whose
    sweep task this process runs again.

    A stage killed outright (SIGKILL, out of memory, power loss) cannot end its run, which
    MLflow would then show as running forever. Returns the run ids it ended.
    """
    import mlflow

    client = mlflow.MlflowClient()
    ended = []
    retrying = os.environ.get("KERAS_EXERCISES_SWEEP_TASK")
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'"):
        tag = run.data.tags.get(PROCESS_TAG, "")
        if retrying and run.data.tags.get(SWEEP_TASK_TAG) == retrying:
            # on another machine its pid tells nothing; that the task runs again does
            why = f"its sweep task ({retrying}) ran again: the earlier attempt was lost"
        elif _process_gone(tag):
            why = f"its process ({tag}) was gone when the next training run started"
        else:
            continue
        client.set_tag(run.info.run_id, "killed_because", why)
        client.set_terminated(run.info.run_id, "KILLED")
        ended.append(run.info.run_id)
    return ended
