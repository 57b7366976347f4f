"""What a sweep's task leaves in the DVC remote when it stops midway: never a run-cache
entry without its outputs, which would make DVC run the stage again when its grid point
comes home. Real git and DVC, on a two-stage project of plain commands."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from keras_exercises.sweep.node_task import SCRATCH_ENV, StageFailed, StageJob, run_on_node
from tests.support.project_copy import git

# `first` writes something new each run, as a training stage does (its MLflow run's id);
# DVC run-caches only a stage with a dependency
PIPELINE = """\
stages:
  first:
    cmd: python -c "import pathlib, uuid; pathlib.Path('first.txt').write_text(uuid.uuid4().hex)"
    deps: [input.txt]
    outs: [first.txt]
  second:
    cmd: python -c "import pathlib; pathlib.Path('second.txt').write_text('second')"
    deps: [input.txt]
    outs: [second.txt]
"""
NODE_A, NODE_B = "a" * 56, "b" * 56

pytestmark = pytest.mark.slow  # four clones, each running DVC twice: 15 s


@pytest.fixture
def origin(tmp_path: Path, monkeypatch) -> tuple[Path, str]:
    monkeypatch.setenv(SCRATCH_ENV, str(tmp_path / "scratch"))
    repo = tmp_path / "origin"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "test")
    git(repo, "config", "user.email", "test@localhost")
    subprocess.run(["dvc", "init", "-q"], cwd=repo, check=True)
    remote = ["dvc", "remote", "add", "-d", "store", str(tmp_path / "remote")]
    subprocess.run(remote, cwd=repo, check=True)
    (repo / "dvc.yaml").write_text(PIPELINE)
    (repo / "input.txt").write_text("input")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "two stages")
    return repo, git(repo, "rev-parse", "HEAD").strip()


def job(origin: tuple[Path, str], stage: str) -> StageJob:
    repo, commit = origin
    return StageJob(str(repo), commit, (), stage, stage, "s", ("s-1",), "", "")


def entries(remote: Path) -> list[str]:
    """The command of each run-cache entry in the remote."""
    runs = remote / "runs"
    found = runs.rglob("*") if runs.exists() else []
    return sorted(yaml.safe_load(p.read_text())["cmd"] for p in found if p.is_file())


def test_a_task_stopped_before_its_outputs_reach_the_remote_leaves_no_entry_there(origin, tmp_path):
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "files").write_text("")  # where the outputs go: their push fails
    with pytest.raises(StageFailed):
        run_on_node(job(origin, "first"), NODE_A)
    assert entries(remote) == []

    # the node's next task pushes its own entry, not the one left on the node
    (remote / "files").unlink()
    assert run_on_node(job(origin, "second"), NODE_A).ran
    assert entries(remote) == [yaml.safe_load(PIPELINE)["stages"]["second"]["cmd"]]

    # run again, `first` comes with its outputs: another node restores it, runs nothing
    assert run_on_node(job(origin, "first"), NODE_A).ran
    assert not run_on_node(job(origin, "first"), NODE_B).ran
