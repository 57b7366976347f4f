"""`python -m keras_exercises.sweep.homecoming TASK`, in a clone on a node, once every stage
of a grid point is done: the point comes home as a named DVC experiment made there and
pushed to the git origin, in parallel with the other points' work; the launching
repository then brings every point in with one `dvc exp pull`.

TASK holds the point (name, overrides) and the dvc.lock entry of each of its stages, from
the tasks that made them. Written into dvc.lock, with their outputs fetched from the DVC
remote, they make `dvc exp run` restore every stage from the DVC cache: nothing trains, and
no remote run-cache is read.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from keras_exercises.runtime.errors import PipelineError
from keras_exercises.sweep.grid import PARAMS_FILE, apply
from keras_exercises.sweep.stage_runner import write_lock_entries

# validate's output persists (so a bad params.yaml keeps it), and DVC never run-caches a
# stage with a persistent output: it runs again, in a second
RERUNS_AT_HOME = {"validate"}


def bring_home(name: str, overrides: list[str], entries: dict[str, dict], git_remote: str) -> None:
    """`dvc exp run -n <name>` of the point's overrides, every stage restored from the
    entries; then `dvc exp push`, failing on DVC's "has diverged" (which exits 0)."""
    from dvc.repo import Repo

    _identity()
    # the point's params first: they decide which stages dvc.yaml has (one per seed)
    apply(tuple(overrides), Path(PARAMS_FILE))
    write_lock_entries(entries)
    with Repo() as repo:
        repo.fetch(targets=list(entries))
    printed = _dvc("exp", "run", "-n", name, *[a for o in overrides for a in ("-S", o)])
    trained = set(re.findall(r"Running stage '([^']+)'", printed)) - RERUNS_AT_HOME
    if trained:
        raise PipelineError(
            f"bringing {name} home ran {', '.join(sorted(trained))} again instead of "
            "restoring it from its sweep task's outputs: a bug, please report it"
        )
    pushed = _dvc("exp", "push", git_remote, name)
    # DVC prints this and exits 0: the origin has another experiment of that name (an
    # earlier attempt of this sweep that came home, or someone else's)
    if "has diverged" in pushed:
        raise PipelineError(
            f"`dvc exp push {git_remote} {name}` pushed nothing: {pushed.strip()[-800:]} "
            "Sweep again under another name (-n), or, where it is an earlier attempt's, "
            f"remove that one first (`dvc exp remove -g {git_remote} {name}`)"
        )


def _identity() -> None:
    """The experiment is a git commit: the node's own git identity, else the sweep's."""
    asked = subprocess.run(["git", "config", "user.email"], capture_output=True, text=True)
    if not asked.stdout.strip():
        subprocess.run(["git", "config", "user.name", "keras-exercises sweep"], check=True)
        subprocess.run(["git", "config", "user.email", "sweep@localhost"], check=True)


def _dvc(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    printed = done.stdout + done.stderr
    if done.returncode != 0:
        raise PipelineError(f"`dvc {' '.join(args)}` failed: {printed.strip()[-1500:]}")
    return printed


def main(task_file: Path) -> int:
    task = json.loads(task_file.read_text())
    point = task["point"]
    from dvc.exceptions import DvcException

    try:
        bring_home(point["name"], point["overrides"], task["entries"], task["remote"])
    except (PipelineError, DvcException) as exc:
        print(
            f"error: {' '.join(str(exc).split())}", file=sys.stderr
        )  # one line: the task reads it
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
