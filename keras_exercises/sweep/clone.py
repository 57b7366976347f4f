"""A task's workspace on its node: a clone of the sweep's commit in node-local scratch, made
from a bare mirror of the git origin that every task on the node shares (the origin is
asked once per node and commit, not once per task), with the node's shared DVC objects."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCRATCH_ENV = "KERAS_EXERCISES_SCRATCH"  # where a node's clones and DVC objects go


class CloneFailed(Exception):
    """git could not clone or check out the commit: its own message."""


def node_scratch(node_id: str) -> Path:
    base = Path(os.environ.get(SCRATCH_ENV) or tempfile.gettempdir())
    scratch = base / "keras-exercises-sweep" / node_id[:16]
    (scratch / "work").mkdir(parents=True, exist_ok=True)
    return scratch


@contextmanager
def cloned(repo_url: str, commit: str, scratch: Path, label: str) -> Iterator[Path]:
    """A fresh checkout of `commit` whose `origin` is `repo_url`, removed afterwards."""
    mirror = _mirror_with(repo_url, commit, scratch)
    work = Path(tempfile.mkdtemp(prefix=label.replace("@", "-") + "-", dir=scratch / "work"))
    try:
        _git("clone", "--quiet", "--shared", "--no-checkout", str(mirror), str(work))
        _git("-C", str(work), "checkout", "--quiet", commit)
        # experiments are pushed to the real origin, not to the node's mirror
        _git("-C", str(work), "remote", "set-url", "origin", repo_url)
        _share_objects(work, scratch)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _mirror_with(repo_url: str, commit: str, scratch: Path) -> Path:
    """The node's bare mirror of `repo_url`, fetched again only when it lacks `commit`."""
    mirror = scratch / "origin.git"
    with open(scratch / "origin.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the node's tasks start side by side
        if mirror.exists() and _url_of(mirror) != repo_url:
            shutil.rmtree(mirror)
        if not mirror.exists():
            partial = Path(tempfile.mkdtemp(prefix="origin-", dir=scratch))
            _git("clone", "--quiet", "--bare", repo_url, str(partial))
            partial.rename(mirror)
        if not _has(mirror, commit):
            _git("-C", str(mirror), "fetch", "--quiet", "origin", "+refs/heads/*:refs/heads/*")
        if not _has(mirror, commit):  # on no branch any more: asked for by name
            _git("-C", str(mirror), "fetch", "--quiet", "origin", commit)
    return mirror


def _url_of(mirror: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(mirror), "remote", "get-url", "origin"], capture_output=True, text=True
    )
    return done.stdout.strip()


def _has(mirror: Path, commit: str) -> bool:
    check = ["git", "-C", str(mirror), "cat-file", "-e", f"{commit}^{{commit}}"]
    return subprocess.run(check, capture_output=True).returncode == 0


def _share_objects(work: Path, scratch: Path) -> None:
    """The clone's DVC cache keeps its own run-cache but the node's objects, so inputs are
    pulled once per node. A run-cache of its own: a task pushes exactly the entry it made."""
    objects = scratch / "dvc-cache" / "files"
    objects.mkdir(parents=True, exist_ok=True)
    cache = work / ".dvc" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "files").symlink_to(objects, target_is_directory=True)


def _git(*args: str) -> None:
    done = subprocess.run(["git", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise CloneFailed(f"`git {' '.join(args[:2])}` failed: {done.stderr.strip()[-800:]}")
