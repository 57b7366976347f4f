"""MLflow: where runs go, one run per exercise and seed, what each run logs (params, curves,
datasets, the registered model), and the addresses of their pages in the MLflow UI."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from keras_exercises.runtime.errors import PipelineError
from keras_exercises.runtime.paths import project_root

EXPERIMENT = "keras-exercises"
STORE_DIR = "mlruns"
# MLflow 3's UI opens an experiment on its GenAI pages unless told it holds model training
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
MODEL_TRAINING_VIEW = "workflowType=machine_learning"
REGISTERED_MODEL = "keras-exercises-{exercise}"
ANSWER_ALIAS = "answer"  # the model version behind the current report


def default_store() -> tuple[str, str]:
    """(tracking URI, artifact location) of the local store under mlruns/, absolute.

    timeout: parallel experiments (`dvc queue start --jobs 2`) write to one SQLite file;
    a writer waits up to a minute for the lock instead of failing with "database is locked".
    """
    store = project_root() / STORE_DIR
    store.mkdir(exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}?timeout=60", (store / "artifacts").as_uri()


def connect() -> str:
    """Point MLflow at the store and make sure it answers; return the experiment id.

    Runs before any training so an unreachable server costs seconds, not a training run.
    """
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    artifact_location = None
    if not uri:
        uri, artifact_location = default_store()
    if uri.startswith(("http://", "https://")):
        # MLflow's default is minutes of retries; a dead server should fail in seconds
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    mlflow.set_tracking_uri(uri)
    try:
        if artifact_location is None:
            return _get_or_create_experiment(None)
        # Creating the database and the experiment is not safe to race: parallel stages
        # take turns through a lock file beside the store.
        with FileLock(project_root() / STORE_DIR / ".lock", timeout=120):
            return _get_or_create_experiment(artifact_location)
    except Exception as exc:
        raise PipelineError(
            f"cannot use the MLflow tracking store at {uri} ({_summary(exc)}). Start the "
            "server it names, fix MLFLOW_TRACKING_URI, or unset it to use the local store "
            "under mlruns/."
        ) from None


def _summary(exc: Exception) -> str:
    """An exception's type and first line: MLflow's messages run to whole tracebacks."""
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


@contextmanager
def store_failures_reported() -> Iterator[None]:
    """Around a stage's MLflow work after connect(): the store failing midway (its server
    or database gone) ends the stage with one message instead of a traceback."""
    import mlflow
    import requests
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, requests.exceptions.RequestException) as exc:
        raise PipelineError(
            f"lost the MLflow tracking store at {mlflow.get_tracking_uri()} midway "
            f"({_summary(exc)}). "
            "Make sure its server and database are up, then rerun `dvc repro`; the run it "
            "leaves RUNNING is marked KILLED by the next training run."
        ) from None


def _get_or_create_experiment(artifact_location: str | None) -> str:
    import mlflow

    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return mlflow.create_experiment(
            EXPERIMENT, artifact_location=artifact_location, tags={KIND_TAG: KIND}
        )
    if experiment.tags.get(KIND_TAG) != KIND:  # an experiment made before the tag existed
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, KIND_TAG, KIND)
    return experiment.experiment_id


def ui_address(tracking_uri: str, mlflow_ui: str) -> str:
    """Where the MLflow UI shows runs of `tracking_uri`: the tracking server itself, or for
    the local store the `mlflow ui` that the README starts (`mlflow_ui` in params.yaml)."""
    return tracking_uri if tracking_uri.startswith(("http://", "https://")) else mlflow_ui


def experiment_page(base_url: str, experiment_id: str) -> str:
    """The address of the experiment's runs table (its model-training view) in the UI."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING_VIEW}"


def run_page(base_url: str, experiment_id: str, run_id: str) -> str:
    return (
        f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING_VIEW}"
    )


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


PROCESS_TAG = "process"  # host:pid:start time of the process that opened the run


def this_process() -> str:
    import psutil

    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{me.create_time():.2f}"


def _process_gone(tag: str) -> bool:
    """Whether the process a run's tag names is gone; False when it can't be told (another
    machine, or a run without the tag). The start time tells a reused pid from the original."""
    import psutil

    host, pid, started = (tag.rsplit(":", 2) + ["", "", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        return abs(psutil.Process(int(pid)).create_time() - float(started)) > 1
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, ValueError):
        return False


def end_orphaned_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the runs still RUNNING whose process on this machine is gone.

    A stage killed outright (SIGKILL, out of memory, power loss) cannot end its run, which
    MLflow would then show as running forever. Returns the run ids it ended.
    """
    import mlflow

    client = mlflow.MlflowClient()
    ended = []
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'"):
        tag = run.data.tags.get(PROCESS_TAG, "")
        if _process_gone(tag):
            client.set_tag(
                run.info.run_id,
                "killed_because",
                f"its process ({tag}) was gone when the next training run started",
            )
            client.set_terminated(run.info.run_id, "KILLED")
            ended.append(run.info.run_id)
    return ended


def run_tags(seed: int) -> dict[str, str]:
    from keras_exercises.runtime.device import training_device

    tags = {
        "dvc_stage": os.environ.get("DVC_STAGE", "run by hand"),
        "seed": str(seed),
        "device": training_device(),
        "git_commit": git_commit() or "unknown",
        PROCESS_TAG: this_process(),
    }
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    return tags


def log_training(
    params, exercise: str, seed: int, data_file: Path, result, metrics: dict, figure, example
) -> str:
    """Log params, datasets, per-epoch curves, test metrics, the figure and the model to the
    active run, and register the model as a new version; return that version."""
    import keras
    import mlflow
    import tensorflow as tf
    from mlflow.entities import Metric

    from keras_exercises.params import flatten

    ex = getattr(params.exercises, exercise)
    logged = {"seed": seed, "data.mirror": params.data.mirror, **flatten(ex.model_dump())}
    mlflow.log_params(logged)
    digest = log_datasets(ex, exercise, data_file)
    client = mlflow.MlflowClient()
    run_id = mlflow.active_run().info.run_id
    now = int(time.time() * 1000)
    curves = [
        Metric(key, value, now, epoch)
        for key, values in result.history.items()
        for epoch, value in enumerate(values, start=1)
    ]
    # log_batch takes at most 1000 metrics per call
    for i in range(0, len(curves), 1000):
        client.log_batch(run_id, metrics=curves[i : i + 1000])
    mlflow.log_metrics(metrics)
    mlflow.log_figure(figure, "evaluation.png")
    # the example is the first test images, whose probabilities are already at hand
    signature = mlflow.models.infer_signature(example, result.test_probabilities[: len(example)])
    info = mlflow.keras.log_model(
        result.model,
        name="model",
        signature=signature,
        # listing them skips MLflow's slow requirement inference (a subprocess per model)
        pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"],
        registered_model_name=REGISTERED_MODEL.format(exercise=exercise),
    )
    version = str(info.registered_model_version)
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
    for key, value in version_tags.items():
        client.set_model_version_tag(
            REGISTERED_MODEL.format(exercise=exercise), version, key, str(value)
        )
    return version


def file_digest(path: Path) -> str:
    """The file's MD5, as DVC records it in dvc.lock."""
    import hashlib

    with open(path, "rb") as file:
        return hashlib.file_digest(file, "md5").hexdigest()


def dvc_source(path: str):
    """A dataset source of type "dvc": a path in this DVC project (`dvc get` fetches it)."""
    from mlflow.data.dataset_source import DatasetSource

    class DvcPath(DatasetSource):
        def __init__(self, path: str):
            self.path = path

        @staticmethod
        def _get_source_type() -> str:
            return "dvc"

        def load(self) -> str:
            return self.path

        @staticmethod
        def _can_resolve(raw_source) -> bool:
            return False  # only made here, never guessed from a string

        @classmethod
        def _resolve(cls, raw_source) -> DvcPath:
            return cls(str(raw_source))

        def to_dict(self) -> dict:
            return {"path": self.path}

        @classmethod
        def from_dict(cls, source_dict: dict) -> DvcPath:
            return cls(source_dict["path"])

    return DvcPath(path)


def log_datasets(ex, exercise: str, data_file: Path) -> str:
    """The training and test slices as the run's dataset inputs, named by dataset and split,
    with the DVC hash of the prepared file as digest and its DVC path as source; return
    the digest."""
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset

    digest = file_digest(data_file)
    source = dvc_source(Path(data_file).as_posix())
    for split, n, context in (("train", ex.n_train, "training"), ("test", ex.n_test, "testing")):
        # the exercise in the name too: MLflow keeps one record per name and digest, and
        # exercises 1 and 3 prepare byte-identical files under their own paths
        name = f"{ex.dataset} {split}, {n} images ({exercise})"
        dataset = MetaDataset(source, name=name, digest=digest)
        mlflow.log_input(dataset, context=context)
    return digest


def log_mc_evaluation(run_id: str, metrics: dict, figures: dict) -> None:
    """Add the MC Dropout results to the exercise's training run. Through the client, not
    by reopening the run: that would mark it RUNNING until this process ends."""
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
    for artifact, figure in figures.items():
        client.log_figure(run_id, figure, artifact)


def log_answers(rows: list[dict], descriptions: dict[str, str]) -> None:
    """On each run, the answers it gave and their intervals over the test images (metrics
    `Q1.1`, `Q1.1_low`, `Q1.1_high`, ...) as the report gives them for its seed, and its
    description; the alias `answer` on each exercise's model version of the first seed,
    the one the report's figures show."""
    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    by_run: dict[str, list[Metric]] = {}
    for row in rows:
        qid = row["question"].id
        for seed, run in row["runs"].items():
            low, high = row["seed_intervals"][seed]
            by_run.setdefault(run["run_id"], []).extend(
                Metric(key, float(value), now, 0)
                for key, value in (
                    (qid, row["seeds"][seed]),
                    (f"{qid}_low", low),
                    (f"{qid}_high", high),
                )
            )
    client = mlflow.MlflowClient()
    for run_id, metrics in by_run.items():
        client.log_batch(run_id, metrics=metrics)
    for run_id, text in descriptions.items():
        client.set_tag(run_id, "mlflow.note.content", text)
    for row in rows:
        exercise = row["question"].exercise
        first = next(iter(row["runs"].values()))
        if first.get("model_version"):
            client.set_registered_model_alias(
                REGISTERED_MODEL.format(exercise=exercise), ANSWER_ALIAS, first["model_version"]
            )
