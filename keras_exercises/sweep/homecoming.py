"""`python -m keras_exercises.sweep.homecoming TASK RESULT`, in a clone on a node, once
every stage of a grid point is done: the point comes home as a named DVC experiment made
there and pushed to the git origin (exp_refs.py), in parallel with the other points' work;
the launching repository then brings every point in at once. RESULT names the experiment.

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
import sys
from pathlib import Path

from keras_exercises.runtime.errors import PipelineError
from keras_exercises.sweep.exp_refs import commit_experiment, push_experiment
from keras_exercises.sweep.grid import PARAMS_FILE, apply
from keras_exercises.sweep.stage_runner import LOCK_FILE, write_lock_entries


def bring_home(
    name: str, overrides: list[str], entries: dict[str, dict], git_remote: str, commit: str
) -> None:
    """The experiment `name` of the point's overrides on `commit`, its stages' `entries`
    in its dvc.lock; then pushed to `git_remote`."""
    apply(tuple(overrides), Path(PARAMS_FILE))
    write_lock_entries(entries, alone=True)
    commit_experiment(commit, name, [PARAMS_FILE, LOCK_FILE])
    push_experiment(git_remote, commit, name)


def main(task_file: Path, result_file: Path) -> int:
    task = json.loads(task_file.read_text())
    point = task["point"]
    try:
        bring_home(
            point["name"], point["overrides"], task["entries"], task["remote"], task["commit"]
        )
    except PipelineError as exc:  # one line: the task reads it
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    result_file.write_text(json.dumps({"experiment": point["name"]}))
    return 0


if __name__ == "__main__":
    from keras_exercises.runtime import warm_start

    warm_start.hand_off_main("dvc")  # returns only where no warm interpreter takes it
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
