"""What a sweep's task does on its node, on a two-stage project of plain commands with real
git and DVC: it pushes only what it made, outputs before its run-cache entry (so a task
stopped midway never leaves an entry without its outputs); it reads the remote's run-cache
for its own stage alone; and it refuses a node whose installed sweep code is not the
commit's."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from keras_exercises.comparison import Revision
from keras_exercises.runtime import warm_status
from keras_exercises.sweep.arrivals import Arrivals
from keras_exercises.sweep.clone import SCRATCH_ENV
from keras_exercises.sweep.grid import GridPoint
from keras_exercises.sweep.node_task import (
    PointJob,
    Source,
    StageFailed,
    StageJob,
    finish_on_node,
    run_on_node,
)
from tests.support.project_copy import git
from tests.support.run_cache import PIPELINE, entries, refuse_outputs, two_stage_repo

NODE_A, NODE_B = "a" * 56, "b" * 56

pytestmark = pytest.mark.slow  # clones running DVC: 15 s


@pytest.fixture
def warm_servers(monkeypatch) -> Iterator[Path]:
    """The tasks' warm interpreters in a folder of this test's (short enough for a socket's
    path), ended afterwards."""
    runtime = Path(tempfile.mkdtemp(prefix="warm-", dir="/tmp"))
    monkeypatch.setenv("TMPDIR", str(runtime))
    monkeypatch.setattr(tempfile, "tempdir", str(runtime))  # as this process finds it too
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    yield runtime
    for server in warm_status.running():
        os.kill(server.pid, signal.SIGKILL)
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def origin(tmp_path: Path, monkeypatch, warm_servers) -> tuple[Path, str]:
    monkeypatch.setenv(SCRATCH_ENV, str(tmp_path / "scratch"))
    repo = tmp_path / "origin"
    return repo, two_stage_repo(repo, tmp_path / "remote")


def job(origin: tuple[Path, str], stage: str, overrides: tuple[str, ...] = ()) -> StageJob:
    repo, commit = origin
    stages = (stage,)
    return StageJob(Source(str(repo), commit), overrides, stages, stages, "s", ("s-1",), "", "")


def test_a_task_pushes_its_outputs_before_its_entry_and_only_what_it_made(origin, tmp_path):
    remote = tmp_path / "remote"
    refuse_outputs(remote)
    with pytest.raises(StageFailed):
        run_on_node(job(origin, "first"), NODE_A)
    assert entries(remote) == []

    (remote / "files").unlink()
    (second,) = run_on_node(job(origin, "second"), NODE_A)
    assert second.ran and second.entry["cmd"] == yaml.safe_load(PIPELINE)["stages"]["second"]["cmd"]
    assert entries(remote) == [second.entry["cmd"]]

    # run again, `first` comes with its outputs: another node restores it from its entry
    # alone (the remote's other entries are not read), runs nothing and pushes nothing
    (first,) = run_on_node(job(origin, "first"), NODE_A)
    assert first.ran
    (entry,) = [p for p in (remote / "runs").rglob("*") if p.is_file() and "first" in p.read_text()]
    other = [p for p in (remote / "runs").rglob("*") if p.is_file() and p != entry]
    for path in other:
        path.write_text("not yaml: {")  # read, it would fail the task
    stamp = entry.stat().st_mtime_ns
    (restored,) = run_on_node(job(origin, "first"), NODE_B)
    assert not restored.ran and restored.entry == first.entry
    assert entry.stat().st_mtime_ns == stamp


def test_small_stages_run_in_one_task_and_a_failure_names_its_stage(origin, tmp_path):
    """A task of several stages runs them in order in one clone and gives each its outcome;
    when one fails, the task names it, and what the stages before it made is pushed."""
    repo, commit = origin
    both = StageJob(
        Source(str(repo), commit), (), ("k1", "k2"), ("first", "second"), "s", (), "", ""
    )
    first, second = run_on_node(both, NODE_A)
    assert (first.key, first.address, second.key, second.address) == ("k1", "first", "k2", "second")
    assert first.ran and second.ran and first.task == second.task == "k1"
    # in a warm interpreter that has DVC's imports; the stages DVC started were not in it
    assert [server.kind for server in warm_status.running()] == ["dvc"]
    assert second.entry["outs"][0]["md5"] == hashlib.md5(b"second").hexdigest()
    assert entries(tmp_path / "remote") == sorted([first.entry["cmd"], second.entry["cmd"]])

    broken = StageJob(
        Source(str(repo), commit), (), ("k3", "k4"), ("per_seed@1", "nope"), "s", (), "", ""
    )
    with pytest.raises(StageFailed) as failed:
        run_on_node(broken, NODE_A)
    assert failed.value.address == "nope"
    assert any("seed-1.txt" in command for command in entries(tmp_path / "remote"))


def test_a_node_whose_sweep_code_is_not_the_commits_is_refused(origin):
    repo, _ = origin
    changed = repo / "keras_exercises" / "sweep" / "clone.py"
    changed.write_text(changed.read_text() + "\n# a later version\n")
    git(repo, "commit", "-qam", "another version of the sweep")
    commit = git(repo, "rev-parse", "HEAD").strip()
    with pytest.raises(StageFailed) as refused:
        run_on_node(job((repo, commit), "first"), NODE_A)
    message = str(refused.value)
    assert "runs the sweep code installed at" in message
    assert f"differs from commit {commit[:7]}'s" in message


def test_a_point_comes_home_on_its_node_and_a_diverged_push_fails_it(origin, tmp_path, monkeypatch):
    """The point's experiment is made in a clone on the node from its stages' entries (no
    stage runs again), with a seed the commit's params lack, pushed to the origin and
    pulled from there with its outputs; a second experiment of that name diverges from the
    first, and git's refusal fails the point."""
    repo, commit = origin
    seeds = ("seeds=[1,2]",)
    names = ("first", "second", "per_seed@1", "per_seed@2")
    stages = tuple(
        done for stage in names for done in run_on_node(job(origin, stage, seeds), NODE_A)
    )
    home = PointJob(Source(str(repo), commit), GridPoint("s-1", seeds), "origin")
    finish_on_node(home, NODE_B, stages)
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/exps").split()
    assert [ref.rsplit("/", 1)[-1] for ref in refs] == ["s-1"]
    made = git(repo, "show", f"{refs[0]}:dvc.lock")
    for stage in stages:  # the entries the tasks made, not a run of their own
        assert stage.entry["outs"][0]["md5"] in made

    # the launching repository brings it in, its outputs with it, where DVC sees it; with
    # a point that never came home, in one fetch that fails, then each alone
    launcher = tmp_path / "launcher"
    git(tmp_path, "clone", "-q", str(repo), str(launcher))
    monkeypatch.chdir(launcher)
    both_queued = threading.Event()

    class LaunchRead(Revision):  # held until both points wait, so they are fetched together
        def read(self, path):
            both_queued.wait(timeout=60)
            return super().read(path)

    arrivals = Arrivals("origin", commit, None, LaunchRead("HEAD"))
    came, lost = GridPoint("s-1", seeds), GridPoint("s-9", seeds)
    arrivals.bring_in(came)
    arrivals.bring_in(lost)
    both_queued.set()
    assert (arrivals.result(came).status, arrivals.result(lost).status) == ("done", "failed")
    assert arrivals.result(lost).message.startswith("fetching experiments s-9 from origin")
    arrivals.close()
    assert [arrival.name for arrival in arrivals.arrivals] == ["s-1"]
    assert "s-1" in subprocess.run(["dvc", "exp", "list"], capture_output=True, text=True).stdout
    subprocess.run(["dvc", "exp", "apply", "s-1"], check=True, capture_output=True)
    assert (launcher / "seed-2.txt").read_text() == "2"  # checked out from the fetched cache
    status = subprocess.run(["dvc", "status"], capture_output=True, text=True, check=True)
    assert "Data and pipelines are up to date." in status.stdout  # the lock fits the point

    with pytest.raises(StageFailed) as refused:
        finish_on_node(home, NODE_B, stages)
    message = str(refused.value)
    assert "pushing experiment s-1 to origin failed:" in message and "[rejected]" in message
    assert "sweep again under another name (-n)" in message
