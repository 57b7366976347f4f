"""`python -m keras_exercises.sweep.reproduce_and_push STAGE SECONDS_FILE`, in a task's
clone: `dvc repro --pull STAGE`, then the stage's outputs to the DVC remote, and only then
its run-cache entries; one process, so a task pays for starting Python and DVC once.
SECONDS_FILE gets how long the `dvc repro` took (the task's overhead is the rest).

The order of the pushes: `dvc push --run-cache` sends the entries first. A task stopped
between the two (its node lost, its driver killed) would leave the remote an entry whose
outputs never arrived, and DVC restores a stage from the newest entry of its key alone:
bringing the grid point home would run that stage again. In this order an entry reaches
the remote after its outputs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def reproduce_and_push(stage: str, seconds_file: Path) -> int:
    """DVC's exit code: its command line's, in this process, or 0 once pushed."""
    from dvc.cli import main as dvc
    from dvc.repo import Repo

    started = time.monotonic()
    # DVC's own command line prints what `dvc repro` prints: the stage's output, its
    # "Running stage" lines and its errors, which the task reads
    code = dvc(["repro", "--pull", stage])
    seconds_file.parent.mkdir(parents=True, exist_ok=True)
    seconds_file.write_text(f"{time.monotonic() - started:.3f}\n")
    if code != 0:
        return code
    with Repo() as repo:
        repo.push(targets=[stage])
        repo.push(targets=[stage], run_cache=True)  # the outputs are there: entries alone
    return 0


if __name__ == "__main__":
    sys.exit(reproduce_and_push(sys.argv[1], Path(sys.argv[2])))
