"""`python -m keras_exercises.sweep.push STAGE`, in a task's clone: the stage's outputs to
the DVC remote, and only then the run-cache entries.

`dvc push --run-cache` sends the entries first. A task stopped between the two (its node
lost, its driver killed) would leave the remote an entry whose outputs never arrived, and
DVC restores a stage from the newest entry of its key alone: bringing the grid point home
would run that stage again. In this order an entry reaches the remote after its outputs.
"""

from __future__ import annotations

import sys


def push(stage: str) -> None:
    from dvc.repo import Repo

    with Repo() as repo:
        repo.push(targets=[stage])
        repo.push(targets=[stage], run_cache=True)  # the outputs are there: entries alone


if __name__ == "__main__":
    push(sys.argv[1])
