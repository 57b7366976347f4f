"""A two-stage DVC project of plain commands with a local DVC remote, for the tests of what
reaches the remote's run-cache when a push stops midway."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.support.project_copy import ROOT, git, set_dvc_remote

# `first` writes something new each run, as a training stage does (its MLflow run's id);
# `second` the same each run, unless it thinks it runs in a warm interpreter (a sweep's task
# hands itself to one, and the stages DVC starts from there must not think so);
# DVC run-caches only a stage with a dependency; `per_seed` has a stage per seed in params
PIPELINE = """\
stages:
  first:
    cmd: python -c "import pathlib, uuid; pathlib.Path('first.txt').write_text(uuid.uuid4().hex)"
    deps: [input.txt]
    outs: [first.txt]
  second:
    cmd: python -c "import os, pathlib; pathlib.Path('second.txt').write_text('second' +
      os.environ.get('KERAS_EXERCISES_WARM_CHILD', ''))"
    deps: [input.txt]
    outs: [second.txt]
  per_seed:
    foreach: ${seeds}
    do:
      cmd: python -c "import pathlib; pathlib.Path('seed-${item}.txt').write_text('${item}')"
      deps: [input.txt]
      outs: ["seed-${item}.txt"]
"""


def two_stage_repo(repo: Path, remote: Path) -> str:
    """Make the project in `repo`, its default DVC remote `remote`; return its commit."""
    from dvc.repo import Repo

    repo.mkdir()
    # the sweep's tasks run the commit's own keras_exercises, and check it is theirs
    package = [name for name in git(ROOT, "ls-files", "keras_exercises").split("\n") if name]
    for name in package:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "test")
    git(repo, "config", "user.email", "test@localhost")
    Repo.init(repo).close()
    set_dvc_remote(repo, str(remote))
    (repo / "dvc.yaml").write_text(PIPELINE)
    (repo / "params.yaml").write_text("seeds: [1]\n")
    (repo / "input.txt").write_text("input")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "two stages")
    return git(repo, "rev-parse", "HEAD").strip()


def refuse_outputs(remote: Path) -> None:
    """Where the remote keeps outputs becomes a file: pushing them fails, entries still go."""
    remote.mkdir(exist_ok=True)
    (remote / "files").write_text("")


def entries(remote: Path) -> list[str]:
    """The command of each run-cache entry in the remote."""
    runs = remote / "runs"
    found = runs.rglob("*") if runs.exists() else []
    return sorted(yaml.safe_load(p.read_text())["cmd"] for p in found if p.is_file())
