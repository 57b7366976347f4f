"""A copy of this project's tracked files in a fresh git repo: for tests and benchmarks,
which must never run DVC or write MLflow runs in the user's checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def copy_project(dest: Path, params_yaml: str | None = None) -> Path:
    """Copy the tracked files to `dest`, replace params.yaml if given, and commit."""
    for name in filter(None, git(ROOT, "ls-files", "-z").split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    if params_yaml is not None:
        (dest / "params.yaml").write_text(params_yaml)
    git(dest, "init", "-q")
    # dvc exp commits too: give the repo its own identity rather than rely on a global one
    git(dest, "config", "user.name", "pipeline copy")
    git(dest, "config", "user.email", "copy@localhost")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "copy of the project")
    return dest


def set_dvc_remote(project: Path, url: str, **options: str) -> None:
    """As `dvc remote add -f -d store URL` and `dvc remote modify store KEY VALUE` for each
    option, through DVC's API: a `dvc` command costs a quarter of a CPU second to start."""
    from dvc.repo import Repo

    with Repo(project) as repo, repo.config.edit() as config:
        config["remote"]["store"] = {"url": url, **options}
        config["core"]["remote"] = "store"


def set_params(project: Path, changes: dict[str, object]) -> None:
    """Set dotted keys ("exercises.ex1.training.epochs") in the copy's params.yaml."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
