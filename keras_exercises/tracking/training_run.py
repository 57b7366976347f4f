"""What one training run is called and logs: params, curves, test metrics, the figure and
the model, registered as a new version; and what MC Dropout adds to it later."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from keras_exercises.tracking.dataset_inputs import log_datasets
from keras_exercises.tracking.orphans import PROCESS_TAG, SWEEP_TASK_TAG, this_process

REGISTERED_MODEL = "keras-exercises-{exercise}"


def run_name(exercise: str, seed: int) -> str:
    """`ex1 seed 42`, plus the DVC experiment it belongs to: `ex1 seed 42 (lr-0.01)`."""
    experiment = os.environ.get("DVC_EXP_NAME")
    return f"{exercise} seed {seed}" + (f" ({experiment})" if experiment else "")


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def run_tags(seed: int) -> dict[str, str]:
    """The tags MLflow doesn't set itself (it sets the git commit, source and user)."""
    from keras_exercises.runtime.device import training_device

    tags = {
        "dvc_stage": os.environ.get("DVC_STAGE", "run by hand"),
        "seed": str(seed),
        "device": training_device(),
        PROCESS_TAG: this_process(),
    }
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    return tags | sweep_tags()


# set by `keras-exercises sweep` for the stages its Ray tasks run (sweep/node_task.py)
_SWEEP_TAGS = {
    "KERAS_EXERCISES_SWEEP": "sweep",
    "KERAS_EXERCISES_SWEEP_POINTS": "sweep_points",
    "KERAS_EXERCISES_SWEEP_TASK": SWEEP_TASK_TAG,
    "KERAS_EXERCISES_RAY_NODE": "ray_node",
    "KERAS_EXERCISES_SWEEP_PARENT_RUN": "mlflow.parentRunId",  # nests it under the sweep's
}


def sweep_tags() -> dict[str, str]:
    return {tag: os.environ[name] for name, tag in _SWEEP_TAGS.items() if os.environ.get(name)}


def run_description(exercise: str, dataset: str, n_train: int, n_test: int, seed: int) -> str:
    return (
        f"Exercise {exercise} ({dataset}, {n_train} training and {n_test} test "
        f"images), seed {seed}. The report stage adds the answers this run gives."
    )


def log_training(
    params,
    exercise: str,
    seed: int,
    data_file: Path,
    result,
    metrics: dict,
    figure_png: bytes,
    example,
    saved_model: Path,
) -> str:
    """Log params, datasets, per-epoch curves, test metrics, the figure and the model (the
    file `saved_model`, which the stage saved from `result.model`) to the active run, and
    register the model as a new version with its tags; return that version."""
    import keras
    import mlflow
    import tensorflow as tf
    from mlflow.entities import Metric

    from keras_exercises.params import flatten

    ex = getattr(params.exercises, exercise)
    client, run_id = mlflow.MlflowClient(), mlflow.active_run().info.run_id
    logged = {"seed": seed, "data.mirror": params.data.mirror, **flatten(ex.model_dump())}
    mlflow.log_params(logged)
    digest = log_datasets(ex, exercise, data_file)
    now = int(time.time() * 1000)
    curves = [
        Metric(key, value, now, epoch)
        for key, values in result.history.items()
        for epoch, value in enumerate(values, start=1)
    ]
    tested = [Metric(key, float(value), now, 0) for key, value in metrics.items()]
    # one batch; the client splits it into MLflow's per-request limits itself
    client.log_batch(run_id, metrics=curves + tested)
    log_png(client, run_id, "evaluation.png", figure_png)
    # the example is the first test images, whose probabilities are already at hand
    signature = mlflow.models.infer_signature(example, result.test_probabilities[: len(example)])
    model_name = REGISTERED_MODEL.format(exercise=exercise)
    with requirements_trusted(), saved_once(result.model, saved_model):
        info = mlflow.keras.log_model(
            result.model,
            name="model",
            signature=signature,
            # listing them skips MLflow's slow requirement inference (a subprocess per model)
            pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"],
        )
    version_tags = {
        "seed": seed,
        "dataset": ex.dataset,
        "n_train": ex.n_train,
        "n_test": ex.n_test,
        "data_digest": digest,
        "epochs": ex.training.epochs,
        "optimizer": ex.optimizer.name,
        "learning_rate": ex.optimizer.learning_rate,
        "test_accuracy": f"{metrics['test_accuracy']:.4f}",
        "run_name": run_name(exercise, seed),
        "git_commit": git_commit() or "unknown",
    }
    # registered with its tags in one call, rather than a request per tag afterwards
    registered = mlflow.register_model(
        info.model_uri, model_name, tags={key: str(value) for key, value in version_tags.items()}
    )
    return str(registered.version)


@contextmanager
def requirements_trusted() -> Iterator[None]:
    """Within it, MLflow logs a model without checking its requirements against the running
    environment. The check lists every installed distribution (0.6-0.9 s a model here), and
    cannot find a mismatch: the requirements are this environment's own versions of
    TensorFlow, Keras and MLflow."""
    from unittest import mock

    from mlflow.utils import environment

    # patch.object fails loudly if MLflow renames the check, rather than paying for it again
    with mock.patch.object(environment, "warn_dependency_requirement_mismatches", _no_check):
        yield


def _no_check(requirements: list[str]) -> None:
    return None


@contextmanager
def saved_once(model, saved: Path) -> Iterator[None]:
    """Within it, MLflow's Keras flavour copies `saved` (the stage's own model.keras) where it
    would save the model a second time: the same bytes in MLflow as in DVC, and one save less
    (1.1 s for MobileNetV2 here)."""
    from unittest import mock

    def copy(path: str, **options) -> None:
        shutil.copyfile(saved, path)

    with mock.patch.object(model, "save", copy):
        yield


def log_png(client, run_id: str, artifact: str, data: bytes) -> None:
    """A rendered figure as the run's artifact `artifact`: the stage's output, byte for
    byte, instead of a second rendering by MLflow's log_figure."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / artifact
        path.write_bytes(data)
        client.log_artifact(run_id, str(path))


def log_mc_evaluation(run_id: str, metrics: dict, figures: dict[str, bytes]) -> None:
    """Add the MC Dropout results to the exercise's training run. Through the client, not
    by reopening the run: that would mark it RUNNING until this process ends."""
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
    for artifact, png in figures.items():
        log_png(client, run_id, artifact, png)
