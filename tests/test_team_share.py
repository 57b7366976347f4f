"""`tools/team.sh share` stopped before the outputs reach the DVC remote leaves no run-cache
entry there: teammates' `dvc repro --pull` would find an entry whose outputs never arrived.
Real git and DVC on a two-stage project of plain commands, a local DVC remote."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import dvc
from tests.support.project_copy import git
from tests.support.run_cache import entries, refuse_outputs, two_stage_repo
from tests.support.services import team_script, team_script_fails

pytestmark = pytest.mark.slow  # DVC five times: 10 s


def test_a_share_that_cannot_push_the_outputs_pushes_no_run_cache_entry(tmp_path):
    repo, remote, bare = tmp_path / "repo", tmp_path / "remote", tmp_path / "origin.git"
    two_stage_repo(repo, remote)
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    git(repo, "remote", "add", "origin", str(bare))
    dvc(repo, "repro")  # a run-cache entry per stage (first, second, per_seed@1), here only
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "results")

    refuse_outputs(remote)
    assert "ERROR" in team_script_fails(repo, dict(os.environ), "share")
    assert entries(remote) == []

    (remote / "files").unlink()  # the storage back: `share` again sends them all
    team_script(repo, dict(os.environ), "share")
    assert len(entries(remote)) == 3
