"""What `dvc repro` and `dvc exp run` leave in the workspace when something goes wrong.

DVC deletes a stage's outputs before it runs the stage, so a stage that stops cleanly is
not enough. Each test starts from a finished pipeline and checks every file under data/,
outputs/ and reports/ afterwards: a bad param changes none of them, and any other failure
leaves them byte-identical once the command its error names has run.
"""

from __future__ import annotations

import copy
import re
import shlex
import textwrap

import numpy as np
import pytest

from keras_exercises.data.mirror import synthetic_dataset
from keras_exercises.tracking.failures import WAIT_ENV
from tests.conftest import dvc, dvc_fails, run_queue, user_files, write_params
from tests.support.http_fixtures import FileServer
from tests.support.project_copy import git, set_params
from tests.support.services import free_port
from tests.test_config import BAD_VALUES, set_key

pytestmark = pytest.mark.slow

RESTORE = re.compile(r"`(dvc checkout [^`]+)`")


def assert_restored_by_the_named_command(project, output: str, before: dict) -> None:
    """The error names one command, and that command brings back every earlier output."""
    commands = RESTORE.findall(output)
    assert len(set(commands)) == 1, output
    assert user_files(project) != before  # DVC did delete something
    dvc(project, *shlex.split(commands[0])[1:])
    assert user_files(project) == before


# test_config checks every bad value in-process against load_params, which is all that
# validate runs; through `dvc repro` one of each kind: a typo'd key, a new top-level key,
# a value out of range, a wrong type, a cross-field rule, a reference to no key.
THROUGH_DVC = [
    bad
    for bad in BAD_VALUES
    if (bad[0], repr(bad[1]))
    in {
        ("exercises.ex1.model.dropuot", "0.1"),
        ("sed", "42"),
        ("exercises.ex3.model.dropout", "1.5"),
        ("exercises.ex1.training.batch_size", "'32'"),
        ("exercises.ex1.optimizer.momentum", "0.9"),
    }
    or bad[0].startswith("reference.")
]


@pytest.mark.parametrize(("key", "value", "message"), THROUGH_DVC, ids=[b[0] for b in THROUGH_DVC])
def test_a_bad_param_stops_dvc_repro_before_any_output_changes(
    finished, real_params, key, value, message
):
    before = user_files(finished)
    params = copy.deepcopy(real_params)  # the user's real params.yaml, with one mistake
    if key.startswith("reference."):
        params["reference"]["ex1"]["training.epoch"] = value
    else:
        set_key(params, key, value)
    write_params(finished, params)

    output = dvc_fails(finished, "repro")
    assert re.findall(r"Running stage '([^']+)'", output) == ["validate"]
    (error,) = [line for line in output.splitlines() if line.startswith("error: ")]
    assert error.startswith("error: invalid params.yaml: ") and message in error
    assert error.endswith("No stage ran and every output is as it was.")
    assert user_files(finished) == before


def test_a_bad_param_stops_dvc_exp_run_and_a_queued_experiment(finished):
    before = user_files(finished)
    output = dvc_fails(finished, "exp", "run", "-S", "exercises.ex1.training.epochs=-3")
    assert "exercises.ex1.training.epochs: input should be greater than 0, got -3" in output
    assert user_files(finished) == before

    git(finished, "checkout", "params.yaml")  # `exp run` left the bad value in place
    dvc(finished, "exp", "run", "--queue", "-S", "exercises.ex2.model.dropout=1.5")
    status = run_queue(finished)
    assert "Failed" in status, status
    (name,) = [line.split()[1] for line in status.splitlines() if "Failed" in line]
    logs = dvc(finished, "queue", "logs", name)
    assert "exercises.ex2.model.dropout: input should be less than 1, got 1.5" in logs
    assert "This experiment ran in a temporary copy: your workspace is as it was." in logs
    assert user_files(finished) == before


@pytest.mark.parametrize("stage", ["fetch@mnist", "prepare@ex3", "train@ex3-42", "report"])
def test_a_stage_run_alone_with_bad_params_names_how_to_restore_its_outputs(finished, stage):
    """`dvc repro --single-item` skips the params check: the stage's own check stops it,
    after DVC deleted its outputs, and its error says how to get them back."""
    before = user_files(finished)
    set_params(finished, {"exercises.ex3.model.dropout": 1.5})
    output = dvc_fails(finished, "repro", "--single-item", "--force", stage)
    assert "exercises.ex3.model.dropout: input should be less than 1, got 1.5" in output
    assert f"`dvc checkout --force {stage}`" in output
    assert_restored_by_the_named_command(finished, output, before)


def _pickled(path):
    arrays = synthetic_dataset("mnist", 4, 2)
    arrays["x_train"] = np.array([object()] * 4, dtype=object)
    np.savez(path, **arrays)


def _float_images(path):
    arrays = synthetic_dataset("mnist", 4, 2)
    np.savez(path, **{**arrays, "x_train": arrays["x_train"].astype(np.float32)})


BROKEN_MIRRORS = {
    "missing": (lambda path: None, "mnist.npz does not exist"),
    "corrupt": (
        lambda path: path.write_bytes(b"PK\x03\x04 not an archive"),
        "is not a readable .npz of plain arrays",
    ),
    "wrong keys": (
        lambda path: np.savez(path, images=np.zeros((2, 28, 28), np.uint8)),
        "lacks the arrays ['x_train', 'y_train'",
    ),
    "pickled objects": (_pickled, "is not a readable .npz of plain arrays"),
    "wrong dtype": (_float_images, "x_train must be uint8"),
}


@pytest.mark.parametrize("broken", BROKEN_MIRRORS)
def test_a_broken_mirror_file(finished, tmp_path, broken):
    write, message = BROKEN_MIRRORS[broken]
    before = user_files(finished)
    (tmp_path / "mirror").mkdir()
    write(tmp_path / "mirror" / "mnist.npz")
    set_params(finished, {"data.mirror": str(tmp_path / "mirror")})
    output = dvc_fails(finished, "repro")
    assert message in output
    assert_restored_by_the_named_command(finished, output, before)


def test_a_dead_download_server(finished, tmp_path):
    before = user_files(finished)
    set_params(
        finished,
        {
            "data.mirror": None,
            "data.download_url": f"http://127.0.0.1:{free_port()}",
            "data.attempts": 1,
            "data.timeout_seconds": 2,
        },
    )
    output = dvc_fails(finished, "repro", env={"KERAS_HOME": str(tmp_path / "keras")})
    assert "could not download" in output and "set data.mirror" in output
    assert_restored_by_the_named_command(finished, output, before)


def test_a_download_with_the_wrong_checksum(finished, tmp_path):
    before = user_files(finished)
    with FileServer({"mnist.npz": b"not the real mnist.npz"}) as server:
        set_params(finished, {"data.mirror": None, "data.download_url": server.url})
        output = dvc_fails(finished, "repro", env={"KERAS_HOME": str(tmp_path / "keras")})
    assert "whose SHA-256 is" in output and "it was discarded" in output
    assert_restored_by_the_named_command(finished, output, before)


def test_more_samples_than_the_data_holds(finished):
    before = user_files(finished)
    set_params(finished, {"exercises.ex1.n_train": 61})  # the tiny mirror holds 60
    output = dvc_fails(finished, "repro")
    assert "mnist holds 60 train samples but n_train asks for 61" in output
    assert_restored_by_the_named_command(finished, output, before)


def test_an_unreachable_tracking_server(finished):
    before = user_files(finished)
    set_params(finished, {"exercises.ex1.optimizer.learning_rate": 0.002})
    uri = f"http://127.0.0.1:{free_port()}"
    # waiting for it (two minutes unless told) is tested against the team's real server
    output = dvc_fails(finished, "repro", env={"MLFLOW_TRACKING_URI": uri, WAIT_ENV: "0"})
    assert f"the MLflow tracking server at {uri} did not answer while connecting" in output
    assert "Epoch 1/" not in output  # stopped before any training
    assert_restored_by_the_named_command(finished, output, before)


def test_a_bug_in_a_stage(finished, tmp_path):
    """An unexpected exception (injected here into train@ex1-42's figure) prints its traceback
    and the same way back."""
    injected = tmp_path / "inject"
    injected.mkdir()
    (injected / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import os, sys

            if os.environ.get("DVC_STAGE") == "train@ex1-42":
                sys.path.insert(0, os.getcwd())
                import keras_exercises.plotting

                def broken(*args, **kwargs):
                    raise RuntimeError("injected fault")

                keras_exercises.plotting.evaluation_figure = broken
            """
        )
    )
    before = user_files(finished)
    set_params(finished, {"exercises.ex1.optimizer.learning_rate": 0.002})
    output = dvc_fails(finished, "repro", env={"PYTHONPATH": str(injected)})
    assert "RuntimeError: injected fault" in output  # the traceback
    assert "error: the stage failed with an unexpected RuntimeError" in output
    assert_restored_by_the_named_command(finished, output, before)
