"""What a sweep checks before anything runs, each failure one line with its fix: the nodes
clone the last commit from the git remote and exchange outputs through the DVC remote, so
both must hold what the sweep runs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from keras_exercises.runtime.errors import PipelineError
from keras_exercises.tracking.links import is_server


def committed_and_pushed(git_remote: str = "origin") -> tuple[str, str]:
    """(the git remote's URL, HEAD's commit) once the workspace is clean and HEAD is on the
    remote."""
    try:
        changed = _git("status", "--porcelain").splitlines()
    except subprocess.CalledProcessError:
        raise PipelineError(
            "not in a git repository: the nodes clone the sweep's commit, so run it from "
            "your clone of the project"
        ) from None
    if changed:
        files = ", ".join(line[3:] for line in changed[:5]) + (", ..." if len(changed) > 5 else "")
        raise PipelineError(
            f"uncommitted changes ({files}): every node runs the last commit, so commit them "
            "(or `git stash`) and push, then sweep"
        )
    commit = _git("rev-parse", "HEAD").strip()
    try:
        url = _git("remote", "get-url", git_remote).strip()
    except subprocess.CalledProcessError:
        raise PipelineError(
            f"no git remote '{git_remote}': the nodes clone the commit from it; "
            f"`git remote add {git_remote} <url>` and `git push`"
        ) from None
    if is_local_path(url) and not Path(url).is_absolute():
        # git reads it from the repository's top folder; the nodes' clones are elsewhere
        url = str((Path(_git("rev-parse", "--show-toplevel").strip()) / url).resolve())
    remote_heads = [line.split()[0] for line in _git("ls-remote", git_remote).splitlines()]
    if not any(_contains(head, commit) for head in remote_heads):
        raise PipelineError(
            f"HEAD ({commit[:7]}) is not on {git_remote} ({url}): the nodes clone it from "
            f"there; `git push {git_remote}` first"
        )
    return url, commit


def _contains(head: str, commit: str) -> bool:
    if head == commit:
        return True
    known = subprocess.run(["git", "cat-file", "-e", f"{head}^{{commit}}"], capture_output=True)
    if known.returncode != 0:  # not fetched here: it cannot be told, so it does not count
        return False
    return subprocess.run(["git", "merge-base", "--is-ancestor", commit, head]).returncode == 0


def dvc_remote_in_project() -> tuple[str, str]:
    """The default DVC remote named in .dvc/config, the file the nodes' clones have: its
    name and its URL, a local path made absolute (DVC reads a relative one from the
    config's folder, which in a node's clone is another)."""
    from dvc.repo import Repo

    with Repo() as repo:
        committed = repo.config.read("repo")  # not config.local: the clones lack it
    name = committed.get("core", {}).get("remote")
    url = committed.get("remote", {}).get(name, {}).get("url", "") if name else ""
    if not name:
        raise PipelineError(
            "no default DVC remote in .dvc/config: the nodes exchange every stage's outputs "
            "through it; `dvc remote add -d <name> <url>` (docs/team.md), commit and push"
        )
    return name, str(Path(url).resolve()) if is_local_path(url) else url


def is_local_path(url: str) -> bool:
    """A path on this machine: no scheme (`ssh://`, `s3://`, ...; `file://` is local) and
    not git's scp-like `host:path`."""
    scheme, sep, _ = url.partition("://")
    if sep:
        return scheme == "file"
    return not re.match(r"^[\w.@-]+:(?![\\/])", url)


def remotes_fit_cluster(git_url: str, dvc_url: str, nodes: int) -> None:
    """With more than one node, the git origin and the DVC remote must be reachable from
    every node: a local path names a folder on this machine alone."""
    if nodes <= 1:
        return
    for what, url, fix in (
        ("the git origin", git_url, "`git remote set-url origin <ssh:// or https:// URL>`"),
        ("the DVC remote", dvc_url, "`dvc remote modify <name> url <s3://, ssh://, ...>`"),
    ):
        if is_local_path(url):
            raise PipelineError(
                f"{what} is {url}, a path on this machine, and the cluster has {nodes} nodes: "
                f"each node needs one it can reach; {fix}, commit and push (docs/cluster.md)"
            )


def names_git_accepts(names: list[str]) -> None:
    """Each point's name as a DVC experiment's ref (refs/exps/...), checked by git's own
    rules before anything runs: a name git refuses would fail only at homecoming, after all
    the training."""
    for name in names:
        check = subprocess.run(
            ["git", "check-ref-format", f"refs/exps/00/0000/{name}"], capture_output=True
        )
        if check.returncode != 0:
            raise PipelineError(
                f"the experiment name '{name}' is not one git accepts (no spaces, '..', '~', "
                "'^', ':', '?', '*', '[', '\\', no ending in '.lock' or '.'; `git help "
                "check-ref-format`): pass another with -n"
            )


def store_fits_cluster(tracking_uri: str, nodes: int) -> None:
    if nodes > 1 and not is_server(tracking_uri):
        raise PipelineError(
            f"the MLflow store is {tracking_uri}, a file on this machine, and the cluster has "
            f"{nodes} nodes: set MLFLOW_TRACKING_URI to the team's tracking server "
            "(docs/team.md) on this machine and every node"
        )


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout
