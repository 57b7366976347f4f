"""`python -m keras_exercises.sweep.homecoming TASK`, in a clone on a node, once every stage
of a grid point is done: the point comes home as a named DVC experiment made there and
pushed to the git origin (exp_refs.py), in parallel with the other points' work; the
launching repository then brings every point in at once.

TASK holds the point (name, overrides) and the dvc.lock entry of each of its stages, from
the tasks that made them. A DVC experiment is a commit on the launching commit, under a ref
DVC names: here, the point's params.yaml and a dvc.lock of exactly those entries, which is
what `dvc exp run` commits once it has restored every stage from them. Made with git
alone, it takes a second; `dvc exp run` took 7 to 17 s a point here, checking, restoring
and `git add`ing each of two dozen stages whose outputs it never needed (they are on the
DVC remote already, and `dvc exp pull` or `apply` fetches them from there).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from keras_exercises.runtime.errors import PipelineError
from keras_exercises.sweep.exp_refs import experiment_ref, push_experiment
from keras_exercises.sweep.grid import PARAMS_FILE, apply
from keras_exercises.sweep.stage_runner import LOCK_FILE, write_lock_entries


def bring_home(
    name: str, overrides: list[str], entries: dict[str, dict], git_remote: str, commit: str
) -> None:
    """The experiment `name` of the point's overrides on `commit`, its stages' `entries`
    in its dvc.lock; then pushed to `git_remote`."""
    apply(tuple(overrides), Path(PARAMS_FILE))
    write_lock_entries(entries, alone=True)
    _git("add", PARAMS_FILE, LOCK_FILE)
    _git(*_identity(), "commit", "--quiet", "-m", f"dvc: commit experiment {name}")
    _git("update-ref", experiment_ref(commit, name), "HEAD")
    push_experiment(git_remote, commit, name)


def _identity() -> list[str]:
    """The experiment is a git commit: the node's own git identity, else the sweep's."""
    asked = subprocess.run(["git", "config", "user.email"], capture_output=True, text=True)
    if asked.stdout.strip():
        return []
    return ["-c", "user.name=keras-exercises sweep", "-c", "user.email=sweep@localhost"]


def _git(*args: str) -> None:
    done = subprocess.run(["git", *args], capture_output=True, text=True)
    if done.returncode != 0:
        said = " ".join((done.stdout + done.stderr).split())[-800:]
        raise PipelineError(f"`git {' '.join(args[:3])}` failed: {said}")


def main(task_file: Path) -> int:
    task = json.loads(task_file.read_text())
    point = task["point"]
    try:
        bring_home(
            point["name"], point["overrides"], task["entries"], task["remote"], task["commit"]
        )
    except PipelineError as exc:  # one line: the task reads it
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
