"""`python -m keras_exercises.sweep.tether COMMAND...`: run COMMAND in a process group of
its own and kill that whole group when this process's parent dies.

A Ray worker whose node is lost, or whose driver is killed, dies at once; the `dvc repro`
it started, and the stage DVC started, would live on and finish a run nobody waits for.
Through the tether they end with the worker, as they would on a machine that went down,
and the task's next attempt finds their MLflow run still RUNNING and marks it KILLED.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def main(command: list[str]) -> int:
    parent = os.getppid()
    # Linux: a signal when the parent dies; elsewhere the command is just run
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    child = subprocess.Popen(command, start_new_session=True)

    def end_group(signum: int, frame: object) -> None:
        os.killpg(child.pid, signal.SIGKILL)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, end_group)
    if os.getppid() != parent:  # the parent died before the signal was armed
        end_group(signal.SIGTERM, None)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
