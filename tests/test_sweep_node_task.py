"""What a sweep's task leaves in the DVC remote when it stops midway: never a run-cache
entry without its outputs, which would make DVC run the stage again when its grid point
comes home. Real git and DVC, on a two-stage project of plain commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from keras_exercises.sweep.node_task import SCRATCH_ENV, StageFailed, StageJob, run_on_node
from tests.support.run_cache import PIPELINE, entries, refuse_outputs, two_stage_repo

NODE_A, NODE_B = "a" * 56, "b" * 56

pytestmark = pytest.mark.slow  # four clones, each running DVC twice: 15 s


@pytest.fixture
def origin(tmp_path: Path, monkeypatch) -> tuple[Path, str]:
    monkeypatch.setenv(SCRATCH_ENV, str(tmp_path / "scratch"))
    repo = tmp_path / "origin"
    return repo, two_stage_repo(repo, tmp_path / "remote")


def job(origin: tuple[Path, str], stage: str) -> StageJob:
    repo, commit = origin
    return StageJob(str(repo), commit, (), stage, stage, "s", ("s-1",), "", "")


def test_a_task_stopped_before_its_outputs_reach_the_remote_leaves_no_entry_there(origin, tmp_path):
    remote = tmp_path / "remote"
    refuse_outputs(remote)
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
