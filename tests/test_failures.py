"""Bad input stops a stage process with one clear paragraph, exit 2, and nothing written.

What `dvc repro` leaves in the workspace after each failure: test_workspace_after_failures.py.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keras_exercises.runtime.atomic import atomic_path, write_text
from keras_exercises.runtime.errors import PipelineError
from tests.conftest import ROOT, write_params


def run_stage(project: Path, *args: str) -> subprocess.CompletedProcess:
    """The stage in a process of its own: what these tests check is the stage's own first
    steps; handing it to a warm interpreter (tests/test_warm_start.py) would start one,
    importing TensorFlow, only to stop there."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=project,
        env={**os.environ, "KERAS_EXERCISES_WARM": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def files_under(project: Path) -> set[Path]:
    return {p.relative_to(project) for p in project.rglob("*") if ".git" not in p.parts}


@pytest.mark.parametrize(
    "stage",
    [
        ["stages.fetch", "mnist"],
        ["stages.prepare", "ex3"],
        ["stages.train", "ex3", "42"],
        ["stages.mc_evaluate", "42"],
        ["stages.report"],
    ],
)
def test_bad_param_stops_every_stage_before_it_touches_anything(project, small_params, stage):
    small_params["exercises"]["ex3"]["model"]["dropout"] = 1.5
    write_params(project, small_params)
    before = files_under(project)
    done = run_stage(project, *stage)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: invalid params.yaml: exercises.ex3.model.dropout: input should be less than 1, "
        "got 1.5"
    )
    assert files_under(project) == before  # no output, no mlruns/ store, no run


@pytest.mark.parametrize(
    ("stage", "usage"),
    [
        (
            ["stages.train", "ex7", "42"],
            "argument item: invalid choice: 'ex7' (choose from 'ex1', 'ex2', 'ex3', 'ex4', "
            "'ex5', 'ex6'); usage: python -m stages.train {ex1,ex2,ex3,ex4,ex5,ex6} SEED",
        ),
        (["stages.train", "ex1"], "the following arguments are required: SEED"),
        (
            ["stages.train", "ex1", "x"],
            "argument SEED: the seed must be a non-negative integer, got 'x'",
        ),
        (
            ["stages.mc_evaluate", "42", "ex1"],
            "invalid choice: 'ex1' (choose from ex3, ex6); "
            "usage: python -m stages.mc_evaluate SEED [{ex3,ex6} ...]",
        ),
        (["stages.report", "extra"], "unrecognized arguments: extra"),
    ],
)
def test_unknown_exercise_on_the_command_line(project, stage, usage):
    before = files_under(project)
    done = run_stage(project, *stage)
    assert done.returncode == 2
    assert usage in done.stderr
    assert files_under(project) == before


def test_missing_input_names_the_stage_that_makes_it(project):
    done = run_stage(project, "stages.train", "ex1", "42")
    assert done.returncode == 2
    assert "data/prepared/ex1.npz is missing: it is made by the prepare@ex1 stage" in done.stderr


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


def test_truncated_model_is_refused_with_a_fix(tmp_path):
    from keras_exercises.models import load_model

    broken = tmp_path / "model.keras"
    broken.write_bytes(b"PK\x03\x04 not a whole model")
    with pytest.raises(PipelineError, match="is not a loadable Keras model.*dvc repro"):
        load_model(broken)


def test_every_mlflow_ui_command_in_the_docs_binds_to_loopback():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    lines = [line for page in pages for line in page.read_text().splitlines()]
    commands = [line for line in lines if line.startswith("mlflow ui")]
    assert len(commands) >= 2 and all("--host 127.0.0.1" in line for line in commands)


def test_the_restore_hint_says_where_the_previous_results_are(tmp_path, monkeypatch):
    from keras_exercises.runtime.errors import restore_hint

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert restore_hint() == ""  # run by hand: DVC deleted nothing
    monkeypatch.setenv("DVC_STAGE", "train@ex1-42")
    assert restore_hint() == " (It had no earlier results to restore.)"
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  train@ex1-42:\n    cmd: x\n")
    assert "`dvc checkout --force train@ex1-42`" in restore_hint()
    monkeypatch.setenv("DVC_STAGE", "validate")
    assert restore_hint() == " No stage ran and every output is as it was."
    queued = tmp_path / ".dvc" / "tmp" / "exps" / "tmp1234"
    queued.mkdir(parents=True)
    monkeypatch.chdir(queued)
    assert "temporary copy: your workspace is as it was" in restore_hint()


def test_an_unexpected_exception_prints_its_traceback_and_exits_1(project):
    script = project / "failing_stage.py"
    script.write_text(
        "from keras_exercises.runtime.errors import run_stage\n\n"
        "def main(argv):\n    raise KeyError('surprise')\n\nrun_stage(main)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "KeyError: 'surprise'" in done.stderr
    assert done.stderr.strip().endswith("a bug, please report it.")
