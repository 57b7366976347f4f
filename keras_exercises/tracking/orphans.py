"""Runs left RUNNING by a process that died without ending them."""

from __future__ import annotations

import socket

PROCESS_TAG = "process"  # host:pid:start time of the process that opened the run


def this_process() -> str:
    import psutil

    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{me.create_time():.2f}"


def _process_gone(tag: str) -> bool:
    """Whether the process a run's tag names is gone; False when it can't be told (another
    machine, or a run without the tag). The start time tells a reused pid from the original."""
    import psutil

    host, pid, started = (tag.rsplit(":", 2) + ["", "", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        return abs(psutil.Process(int(pid)).create_time() - float(started)) > 1
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, ValueError):
        return False


def end_orphaned_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the runs still RUNNING whose process on this machine is gone.

    A stage killed outright (SIGKILL, out of memory, power loss) cannot end its run, which
    MLflow would then show as running forever. Returns the run ids it ended.
    """
    import mlflow

    client = mlflow.MlflowClient()
    ended = []
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'"):
        tag = run.data.tags.get(PROCESS_TAG, "")
        if _process_gone(tag):
            client.set_tag(
                run.info.run_id,
                "killed_because",
                f"its process ({tag}) was gone when the next training run started",
            )
            client.set_terminated(run.info.run_id, "KILLED")
            ended.append(run.info.run_id)
    return ended
