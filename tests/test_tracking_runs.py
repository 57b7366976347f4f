"""What the tracking modules write on runs, against a real local MLflow store in a
temporary project: names and tags, UI addresses, runs of dead processes ended, dataset
inputs, what the report writes. (Training runs through DVC: test_pipeline.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from types import SimpleNamespace

from keras_exercises.questions import BY_ID
from keras_exercises.tracking import dataset_inputs, links, orphans, report_runs
from keras_exercises.tracking.training_run import (
    REGISTERED_MODEL,
    requirements_trusted,
    run_name,
    run_tags,
)


def test_addresses_open_the_model_training_view():
    page = links.run_page("http://127.0.0.1:5000/", "1", "abc")
    assert page == "http://127.0.0.1:5000/#/experiments/1/runs/abc?workflowType=machine_learning"
    assert links.ui_address("sqlite:///x/mlflow.db", "http://127.0.0.1:5000") == (
        "http://127.0.0.1:5000"
    )
    assert links.ui_address("https://mlflow.example", "http://127.0.0.1:5000") == (
        "https://mlflow.example"
    )
    assert links.links_note("https://mlflow.example", "http://127.0.0.1:5000") == (
        "Run links open the tracking server https://mlflow.example."
    )
    assert "--port 5001`." in links.links_note("sqlite:///m.db", "http://127.0.0.1:5001")
    older = {"tracking_uri": "https://alice:s3cret@mlflow.example", "experiment_id": "1"}
    assert links.page_of({**older, "run_id": "r"}, "") == (
        "https://mlflow.example/#/experiments/1/runs/r?workflowType=machine_learning"
    )
    assert "s3cret" not in links.links_note(older["tracking_uri"], "")


def test_a_run_whose_process_is_gone_is_ended_as_killed(local_store):
    experiment_id, client = local_store
    dead = subprocess.Popen([sys.executable, "-c", "import os; print(os.getpid())"])
    dead.wait()
    import psutil

    alive = orphans.this_process()
    machine, pid, _ = alive.rsplit(":", 2)
    hostname = machine.split("/")[0]

    def run_of(process: str):
        return client.create_run(experiment_id, tags={orphans.PROCESS_TAG: process})

    orphan = run_of(f"{machine}:{dead.pid}:1")
    mine = run_of(alive)
    elsewhere = run_of(f"other-host/0123456789abcdef:{dead.pid}:1")
    # another container, or this machine before a reboot: same hostname, other pid space
    same_hostname = run_of(f"{hostname}/0123456789abcdef:{dead.pid}:1")
    by_hostname_alone = run_of(f"{hostname}:{dead.pid}:1")  # tagged before machine ids
    assert psutil.pid_exists(int(pid))

    assert orphans.end_orphaned_runs(experiment_id) == [orphan.info.run_id]
    ended = client.get_run(orphan.info.run_id)
    assert ended.info.status == "KILLED" and "was gone" in ended.data.tags["killed_because"]
    for run in (mine, elsewhere, same_hostname, by_hostname_alone):  # alive, or can't tell
        assert client.get_run(run.info.run_id).info.status == "RUNNING"


def test_a_sweep_tasks_earlier_attempt_is_ended_by_its_next(local_store, monkeypatch):
    """On another machine a pid tells nothing: that Ray runs the task again does."""
    experiment_id, client = local_store
    elsewhere = "other-host/0123456789abcdef:4242:1"

    def run_of(task: str):
        tags = {orphans.PROCESS_TAG: elsewhere, orphans.SWEEP_TASK_TAG: task}
        return client.create_run(experiment_id, tags=tags)

    lost, other_task = run_of("grid/0011"), run_of("grid/0022")
    monkeypatch.setenv("KERAS_EXERCISES_SWEEP_TASK", "grid/0011")
    assert orphans.end_orphaned_runs(experiment_id) == [lost.info.run_id]
    ended = client.get_run(lost.info.run_id)
    assert ended.info.status == "KILLED"
    assert "sweep task (grid/0011) ran again" in ended.data.tags["killed_because"]
    assert client.get_run(other_task.info.run_id).info.status == "RUNNING"


def test_the_machine_is_told_by_its_pid_space_not_its_hostname(monkeypatch):
    machine = orphans.this_machine()
    assert machine.startswith(f"{socket.gethostname()}/") and len(machine.split("/")[1]) == 16
    # a container beside this one: the same hostname and kernel, its own pid namespace
    real_readlink = os.readlink
    monkeypatch.setattr(
        orphans.os, "readlink", lambda path: "pid:[1]" if "ns/pid" in path else real_readlink(path)
    )
    orphans.this_machine.cache_clear()
    try:
        assert orphans.this_machine() != machine
        assert orphans.this_machine().split("/")[0] == machine.split("/")[0]
    finally:
        orphans.this_machine.cache_clear()


def test_run_names_and_tags_say_stage_seed_and_experiment(monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "lr-0.01")
    monkeypatch.setenv("DVC_STAGE", "train@ex1-42")
    assert run_name("ex1", 42) == "ex1 seed 42 (lr-0.01)"
    tags = run_tags(42)
    assert tags["dvc_stage"] == "train@ex1-42" and tags["dvc_experiment"] == "lr-0.01"
    assert tags["seed"] == "42" and tags["device"] == "CPU"
    assert "git_commit" not in tags  # MLflow sets mlflow.source.git.commit itself
    assert not any(tag.startswith(("sweep", "ray_")) for tag in tags)
    # a sweep's task: its name, grid points, task and node, nested under its parent run
    for name, value in {
        "KERAS_EXERCISES_SWEEP": "grid",
        "KERAS_EXERCISES_SWEEP_POINTS": "grid-1, grid-2",
        "KERAS_EXERCISES_SWEEP_TASK": "grid/0011",
        "KERAS_EXERCISES_RAY_NODE": "ab12",
        "KERAS_EXERCISES_SWEEP_PARENT_RUN": "parent-id",
    }.items():
        monkeypatch.setenv(name, value)
    tags = run_tags(42)
    assert (tags["sweep"], tags["sweep_points"], tags["sweep_task"]) == (
        "grid",
        "grid-1, grid-2",
        "grid/0011",
    )
    assert (tags["ray_node"], tags["mlflow.parentRunId"]) == ("ab12", "parent-id")


def test_datasets_carry_the_dvc_hash_and_path(local_store, tmp_path):
    import mlflow

    experiment_id, client = local_store
    data = tmp_path / "ex1.npz"
    data.write_bytes(b"prepared images")
    ex = SimpleNamespace(dataset="mnist", n_train=40, n_test=20)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        digest = dataset_inputs.log_datasets(ex, "ex1", data)
    assert digest == dataset_inputs.file_digest(data)
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    names = sorted(i.dataset.name for i in inputs)
    assert names == ["mnist test, 20 images (ex1)", "mnist train, 40 images (ex1)"]
    assert {i.dataset.digest for i in inputs} == {digest}
    assert {i.dataset.source_type for i in inputs} == {"dvc"}


def test_data_another_run_logs_at_the_same_moment_is_linked_not_lost(local_store, tmp_path):
    """Two queued experiments or a sweep's stages log the same dataset at once: MLflow's
    store finds it missing in both, and the second insert breaks the unique key. The race
    made certain: just before this run's insert, another connection inserts the dataset."""
    import sqlite3

    import mlflow
    import sqlalchemy

    experiment_id, client = local_store
    data = tmp_path / "ex5.npz"
    data.write_bytes(b"images another run logs too")
    ex = SimpleNamespace(dataset="svhn", n_train=40, n_test=20)
    raced = []

    def other_run_inserts_first(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO datasets") and not raced:
            row = parameters[0] if executemany else parameters  # the first dataset's
            other = sqlite3.connect(conn.engine.url.database)
            with other:  # committed, as by another process; a record id of its own
                other.execute(statement, ("another run's", *row[1:]))
            other.close()
            raced.append(row)

    sqlalchemy.event.listen(
        sqlalchemy.engine.Engine, "before_cursor_execute", other_run_inserts_first
    )
    try:
        with mlflow.start_run(experiment_id=experiment_id) as run:
            dataset_inputs.log_datasets(ex, "ex5", data)
    finally:
        sqlalchemy.event.remove(
            sqlalchemy.engine.Engine, "before_cursor_execute", other_run_inserts_first
        )
    assert raced, "the store never inserted a dataset"
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    names = sorted(i.dataset.name for i in inputs)
    assert names == ["svhn test, 20 images (ex5)", "svhn train, 40 images (ex5)"]


def test_the_report_writes_answers_descriptions_and_the_answer_alias(local_store):
    experiment_id, client = local_store
    run = client.create_run(experiment_id)
    model = REGISTERED_MODEL.format(exercise="ex6")
    client.create_registered_model(model)
    version = client.create_model_version(model, "file:///nowhere", run.info.run_id).version
    runs = {42: {"run_id": run.info.run_id, "model_version": version}}
    answers = [
        SimpleNamespace(
            question=BY_ID[qid], seeds={42: value}, seed_intervals={42: bounds}, runs=runs
        )
        for qid, value, bounds in (
            ("Q6.1", 0.6, (0.55, 0.65)),
            ("Q6.3", 0.0123456, (0.011, 0.013)),
        )
    ]
    descriptions = report_runs.run_descriptions(answers, 0.95)
    assert report_runs.log_answers(answers, descriptions, move_alias=True) == []

    logged = client.get_run(run.info.run_id).data
    assert (logged.metrics["Q6.1"], logged.metrics["Q6.1_low"]) == (0.6, 0.55)
    assert logged.metrics["Q6.3_high"] == 0.013
    note = logged.tags["mlflow.note.content"]
    assert note.startswith("Exercise ex6, seed 42. Answers Q6.1 (")
    assert "0.01235, 95% interval 0.01100 – 0.01300." in note
    assert client.get_model_version_by_alias(model, report_runs.ANSWER_ALIAS).version == version


def test_the_alias_moves_only_outside_experiments_and_only_to_the_linked_runs_version(
    local_store,
):
    experiment_id, client = local_store
    model = REGISTERED_MODEL.format(exercise="ex1")
    client.create_registered_model(model)
    run, other = client.create_run(experiment_id), client.create_run(experiment_id)
    current = client.create_model_version(model, "file:///a", run.info.run_id).version
    client.set_registered_model_alias(model, report_runs.ANSWER_ALIAS, current)
    newer = client.create_model_version(model, "file:///b", run.info.run_id).version
    others = client.create_model_version(model, "file:///c", other.info.run_id).version

    def report(version: str, move_alias: bool) -> list[str]:
        runs = {42: {"run_id": run.info.run_id, "model_version": version}}
        answers = [
            SimpleNamespace(
                question=BY_ID["Q1.1"], seeds={42: 0.9}, seed_intervals={42: (0.8, 1)}, runs=runs
            )
        ]
        return report_runs.log_answers(answers, {}, move_alias=move_alias)

    def answer() -> str:
        return client.get_model_version_by_alias(model, report_runs.ANSWER_ALIAS).version

    assert report(newer, move_alias=False) == [] and answer() == current  # an experiment
    (line,) = report(others, move_alias=True)  # a version another run logged
    assert answer() == current
    assert line.startswith(f"the alias `answer` of {model} stays where it is: version {others}")
    assert report(newer, move_alias=True) == [] and answer() == newer


def test_a_logged_models_requirements_are_checked_by_mlflow_except_where_they_are_ours(
    caplog,
):
    """MLflow checks a model's requirements against the running environment at the call
    requirements_trusted() switches off; ours are this environment's own versions."""
    import logging

    from mlflow.utils.environment import _process_pip_requirements

    stale = ["keras==0.0.1"]
    logging.getLogger("mlflow").addHandler(caplog.handler)
    try:
        _process_pip_requirements([], pip_requirements=stale)
        assert "keras==0.0.1" in caplog.text  # the mismatch MLflow finds where it checks
        caplog.clear()
        with requirements_trusted():
            _, requirements, _ = _process_pip_requirements([], pip_requirements=stale)
    finally:
        logging.getLogger("mlflow").removeHandler(caplog.handler)
    assert caplog.text == ""
    assert "keras==0.0.1" in requirements
