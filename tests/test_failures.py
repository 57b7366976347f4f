"""Bad input stops a stage with one clear paragraph, exit 2, and nothing written."""

import copy
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from keras_exercises.data.datasets import prepare, save_arrays
from keras_exercises.data.mirror import synthetic_dataset
from keras_exercises.runtime.atomic import atomic_path, write_text
from keras_exercises.runtime.errors import PipelineError
from keras_exercises.runtime.paths import prepared_data
from tests.conftest import ROOT, write_params
from tests.test_config import BAD_VALUES, set_key


def run_stage(project: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=project,
        env={**os.environ, **(env or {})},
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
        ["stages.train", "ex3"],
        ["stages.mc_evaluate"],
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
        "error: invalid params.yaml: exercises.ex3.model.dropout: must be in [0, 1), got 1.5"
    )
    assert files_under(project) == before  # no output, no mlruns/ store, no run


@pytest.mark.parametrize(("key", "value", "message"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_each_bad_value_exits_2_and_leaves_everything_untouched(
    project, real_params, key, value, message
):
    params = copy.deepcopy(real_params)
    if key.startswith("reference."):
        params["reference"]["ex1"]["training.epoch"] = value
    else:
        set_key(params, key, value)
    write_params(project, params)
    before = files_under(project)
    done = run_stage(project, "stages.train", "ex1")
    assert done.returncode == 2
    assert done.stderr.startswith("error: invalid params.yaml: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1  # one paragraph
    assert files_under(project) == before


def test_more_samples_than_the_data_holds_stops_prepare(project, small_params):
    assert run_stage(project, "stages.fetch", "mnist").returncode == 0
    small_params["exercises"]["ex1"]["n_train"] = 61  # the tiny mirror holds 60
    write_params(project, small_params)
    before = files_under(project)
    done = run_stage(project, "stages.prepare", "ex1")
    assert done.returncode == 2
    assert "mnist holds 60 train samples but n_train asks for 61" in done.stderr
    assert files_under(project) == before


@pytest.mark.parametrize(
    ("stage", "usage"),
    [
        (["stages.train", "ex7"], "usage: python -m stages.train {ex1,ex2,ex3,ex4,ex5,ex6}"),
        (["stages.mc_evaluate", "ex3", "ex1"], "usage: python -m stages.mc_evaluate [ex3 ex6]"),
    ],
)
def test_unknown_exercise_on_the_command_line(project, stage, usage):
    before = files_under(project)
    done = run_stage(project, *stage)
    assert done.returncode == 2
    assert usage in done.stderr
    assert files_under(project) == before


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_tracking_server_fails_before_training(project, small_params):
    ex = small_params["exercises"]["ex1"]
    data = prepare(synthetic_dataset("mnist", 60, 30), ex["n_train"], ex["n_test"], "mnist")
    save_arrays(project / prepared_data("ex1"), data)
    uri = f"http://127.0.0.1:{closed_port()}"
    done = run_stage(project, "stages.train", "ex1", env={"MLFLOW_TRACKING_URI": uri})
    assert done.returncode == 2
    assert f"cannot use the MLflow tracking store at {uri}" in done.stderr
    assert "unset it to use the local store under mlruns/" in done.stderr
    assert "Epoch" not in done.stdout  # stopped before any training
    assert not (project / "outputs").exists()


def test_missing_input_names_the_stage_that_makes_it(project):
    done = run_stage(project, "stages.train", "ex1")
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


def test_readme_mlflow_ui_command_binds_to_loopback():
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("mlflow ui")]
    assert commands and all("--host 127.0.0.1" in line for line in commands)
