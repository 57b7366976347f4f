"""`tools/team.sh share` stopped before the outputs reach the DVC remote leaves no run-cache
entry there: teammates' `dvc repro --pull` would find an entry whose outputs never arrived.
Real git and DVC on the two-stage project of test_sweep_node_task, a local DVC remote."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import dvc
from tests.support.project_copy import git
from tests.support.services import team_script, team_script_fails
from tests.test_sweep_node_task import entries, origin  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow  # DVC five times: 10 s


def test_a_share_that_cannot_push_the_outputs_pushes_no_run_cache_entry(origin, tmp_path):  # noqa: F811
    repo, _ = origin
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    git(repo, "remote", "add", "origin", str(bare))
    dvc(repo, "repro")  # two run-cache entries, here only
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "results")

    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "files").write_text("")  # where the outputs go: their push fails
    assert "ERROR" in team_script_fails(repo, dict(os.environ), "share")
    assert entries(remote) == []

    (remote / "files").unlink()  # the storage back: `share` again sends both
    team_script(repo, dict(os.environ), "share")
    assert len(entries(remote)) == 2
