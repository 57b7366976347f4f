"""A sweep's DVC experiments in git: made on a node, pushed to the origin, pulled into the
launching repository; what `dvc exp run`'s commit, `dvc exp push --no-cache` and
`dvc exp pull` do, with git itself.

DVC moves experiment refs with dulwich, a git written in Python: here it took 5 s to push
one experiment's commit (it reads and repacks the objects in Python) and 10 s to pull four,
where git takes a tenth of a second. The refs are DVC's own (`ExpRefInfo`:
refs/exps/<commit's first two hex digits>/<the rest>/<name>), so `dvc exp show`, `apply` and
`remove` see them as if DVC had moved them. The outputs need no push from the node: every
stage's task pushed them to the DVC remote already.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any, TypeVar

from keras_exercises.runtime.errors import PipelineError

T = TypeVar("T")


def experiment_ref(commit: str, name: str) -> str:
    from dvc.repo.experiments.refs import ExpRefInfo

    return str(ExpRefInfo(baseline_sha=commit, name=name))


def commit_experiment(commit: str, name: str, paths: list[str]) -> None:
    """The workspace's `paths` committed on `commit` under the experiment's ref, with the
    node's git identity, else the sweep's."""
    identity = ["-c", "user.name=keras-exercises sweep", "-c", "user.email=sweep@localhost"]
    if _git("config", "user.email").stdout.strip():
        identity = []
    _checked("add", *paths)
    _checked(*identity, "commit", "--quiet", "-m", f"dvc: commit experiment {name}")
    _checked("update-ref", experiment_ref(commit, name), "HEAD")


def push_experiment(git_remote: str, commit: str, name: str) -> None:
    """The experiment's ref to `git_remote`; refused (git's message, with the fix) where the
    origin has another experiment of that name: an earlier attempt's, or someone else's."""
    ref = experiment_ref(commit, name)
    done = _git("push", git_remote, f"{ref}:{ref}")
    if done.returncode != 0:
        raise PipelineError(
            f"pushing experiment {name} to {git_remote} failed: {_said(done)} Where the origin "
            "has another experiment of that name, sweep again under another name (-n), or, "
            f"where it is an earlier attempt's, remove that one first (`dvc exp remove -g "
            f"{git_remote} {name}`)"
        )


def fetch_experiments(git_remote: str, commit: str, names: list[str]) -> None:
    """Every named experiment of `commit` from `git_remote`, its ref alone (each replaces a
    local one of its name: the nodes made it for this sweep)."""
    refs = [experiment_ref(commit, name) for name in names]
    done = _git("fetch", git_remote, *[f"+{ref}:{ref}" for ref in refs])
    if done.returncode != 0:
        raise PipelineError(
            f"fetching experiments {', '.join(names)} from {git_remote} failed: {_said(done)}"
        )


def read_then_fetch(git_remote: str, commit: str, name: str, read: Callable[[Any], T]) -> T:
    """`read(repo)` on the fetched experiment (a DVC repository at its commit: files not in
    the cache yet are read from the DVC remote), then its outputs fetched into the cache.
    In this order DVC builds its index of the commit's pipeline once, for both: a fetch
    that brings anything drops it (half of what a point's arrival cost, built twice)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo, lock_repo

    sha = _git("rev-parse", experiment_ref(commit, name)).stdout.strip()
    with Repo(rev=sha) as repo, lock_repo(repo):  # held: no reset of the index between
        what_was_read = read(repo)
        try:
            repo.fetch()
        except DvcException as exc:
            raise PipelineError(
                f"experiment {name} came home, but fetching its outputs from the DVC remote "
                f"failed: {exc}. Fetch them later with `dvc exp pull {git_remote} {name}`"
            ) from exc
    return what_was_read


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True)


def _checked(*args: str) -> None:
    done = _git(*args)
    if done.returncode != 0:
        raise PipelineError(f"`git {' '.join(args[:3])}` failed: {_said(done)}")


def _said(done: subprocess.CompletedProcess) -> str:
    return " ".join((done.stdout + done.stderr).split())[-800:]
