"""The tracking modules against a real local MLflow store in a temporary project: the store
and its errors, UI addresses, runs of dead processes, dataset inputs, what the report
writes on runs. (Training runs through DVC: test_pipeline; servers: test_tracking_stores.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from keras_exercises.questions import BY_ID
from keras_exercises.runtime.errors import PipelineError
from keras_exercises.tracking import dataset_inputs, links, orphans, outages, report_runs, store
from keras_exercises.tracking.failures import WAIT_ENV
from keras_exercises.tracking.training_run import (
    REGISTERED_MODEL,
    requirements_trusted,
    run_name,
    run_tags,
)
from tests.support.services import free_port


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("project")


@pytest.fixture(scope="module")
def local_store(project_dir):
    """A project folder whose MLflow store is the local one, connected; one for the module,
    as making a store's schema takes seconds."""
    import mlflow

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project_dir)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("DVC_ROOT", raising=False)
        experiment_id = store.connect()
        yield experiment_id, mlflow.MlflowClient()
        mlflow.set_tracking_uri(None)


@pytest.fixture
def environment_restored():
    """connect() to a server sets MLflow's retry and login variables for the stage's whole
    process; a test's must not reach the tests after it."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_connect_makes_the_store_and_tags_the_experiment_once(local_store, project_dir):
    experiment_id, client = local_store
    assert (project_dir / "mlruns" / "mlflow.db").is_file()
    experiment = client.get_experiment(experiment_id)
    assert experiment.name == store.EXPERIMENT
    assert experiment.tags[store.KIND_TAG] == store.KIND
    assert experiment.artifact_location == (project_dir / "mlruns" / "artifacts").as_uri()
    assert store.connect() == experiment_id  # found, not made again


def test_an_unreachable_server_is_waited_for_then_one_message_with_the_fix(
    local_store, monkeypatch, capfd, environment_restored
):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv(WAIT_ENV, "1")
    with pytest.raises(PipelineError) as caught:
        store.connect()
    message = str(caught.value)
    assert message.startswith(
        f"the MLflow tracking server at {uri} did not answer while connecting (connection "
        "refused), and was not back within 1 s. Start it"
    )
    assert "unset it to use the local store under mlruns/" in message
    assert f"set {WAIT_ENV} (seconds)" in message
    said = capfd.readouterr().err
    assert said.count("does not answer") == 1, said  # once, however many tries
    assert f"waiting up to 1 s for it ({WAIT_ENV})" in said
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    store.connect()  # back to the module's store


@pytest.mark.parametrize("reads_fail", [False, True])
def test_a_server_that_answers_with_server_errors_is_waited_for_and_named(
    local_store, monkeypatch, capfd, environment_restored, reads_fail
):
    """As MLflow's server answers once its SQLite file is gone: reads work, and every write
    is a 503 ("attempt to write a readonly database" in its log); or as a proxy without its
    backend answers, reads too. The request is retried for the wait's limit, like every
    later request, and the waiting and the message say the server is up but failing, not
    that it does not answer."""
    import json

    writes = []

    class FailingWrites(BaseHTTPRequestHandler):
        def do_GET(self):  # experiments/get-by-name: the team's experiment, tagged
            if reads_fail:
                self.send_error(503)
                return
            tags = [{"key": store.KIND_TAG, "value": store.KIND}]
            found = {"experiment_id": "1", "name": store.EXPERIMENT, "tags": tags}
            body = json.dumps({"experiment": {**found, "lifecycle_stage": "active"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            writes.append(self.path)
            self.send_error(503)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), FailingWrites)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv(WAIT_ENV, "1")
    try:
        with pytest.raises(PipelineError) as caught:
            store.connect()
    finally:
        server.shutdown()
    assert len(writes) == 0 if reads_fail else len(writes) > 1, writes  # tried again
    assert str(caught.value).startswith(
        f"the MLflow tracking server at {uri} answered with server errors (HTTP 503) while "
        "connecting, and still did after 1 s: it is up, but failing. Its log says why"
    ), caught.value
    said = capfd.readouterr().err
    waiting = f"The MLflow tracking server at {uri} answers with server errors (HTTP 503): "
    assert said.count(waiting + f"waiting up to 1 s for it ({WAIT_ENV}).") == 1, said
    assert "does not answer" not in said, said
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    store.connect()  # back to the module's store


@pytest.mark.parametrize("limit", ["-1", "soon", "100000"])
def test_a_wait_limit_that_is_no_number_of_seconds_is_refused(monkeypatch, limit):
    monkeypatch.setenv(WAIT_ENV, limit)
    with pytest.raises(PipelineError, match=f"{WAIT_ENV} is '{limit}': give the seconds"):
        outages.wait_limit()


def test_the_wait_limit_becomes_enough_of_mlflows_retries():
    assert outages.retries_for(0) == 0
    assert outages.retries_for(120) == 7  # urllib3 sleeps 0, 2, 4, ..., 64 s: 126 s
    assert outages.retries_for(outages.MAX_WAIT) == 10  # MLflow's most


def test_credentials_in_a_tracking_uri_are_never_written_or_shown(
    local_store, monkeypatch, environment_restored
):
    import mlflow

    assert store.without_credentials("https://alice:s3cret@mlflow.example:5000/a?b=c") == (
        "https://mlflow.example:5000/a?b=c"
    )
    local = "sqlite:////home/a@b/mlruns/mlflow.db?timeout=60"  # an @ in a path is no user
    assert store.without_credentials(local) == local
    uri = f"http://alice:s3cret@127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv(WAIT_ENV, "0")
    try:
        with pytest.raises(PipelineError) as caught:
            store.connect()
        address = uri.replace("alice:s3cret@", "")
        assert f"at {address} did not answer" in str(caught.value)
        assert "s3cret" not in str(caught.value)
        # MLflow itself never sees them (it prints its URI in every run's link): the login
        # goes where MLflow reads logins from, for this process and its subprocesses
        assert mlflow.get_tracking_uri() == address == os.environ["MLFLOW_TRACKING_URI"]
        assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"
        assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cret"
        assert store.tracking_uri() == address  # what run.json records
        assert links.ui_address(store.tracking_uri(), "http://127.0.0.1:5000") == address
    finally:
        monkeypatch.delenv("MLFLOW_TRACKING_URI")
        store.connect()  # back to the module's store
    assert mlflow.get_tracking_uri().startswith("sqlite:")


def test_a_run_missing_from_the_store_is_named_with_the_fix(local_store):
    from keras_exercises.tracking.training_run import log_mc_evaluation

    doing = "logging the MC Dropout results of ex3, seed 42"
    with pytest.raises(PipelineError) as caught, store.failures_reported(doing):
        log_mc_evaluation("0" * 32, {"mc_accuracy": 0.5}, {})
    message = str(caught.value)
    assert message.startswith(f"the MLflow store at {store.tracking_uri()} has no such")
    assert f"has no such run or model while {doing}" in message and "0" * 32 in message
    assert "Retrain it with `dvc repro --force` on its train stage" in message


def test_a_bug_inside_is_not_taken_for_a_store_failure(local_store):
    with pytest.raises(ZeroDivisionError), store.failures_reported("logging"):
        print(1 / 0)


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


@pytest.fixture
def refusing_server():
    """An HTTP server on 127.0.0.1 that answers every request as MLflow's basic-auth app
    answers one without credentials: 401, in plain text."""

    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
            self.end_headers()
            self.wfile.write(b"You are not authenticated.")

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_each_run_is_annotated_in_its_own_store_and_each_failure_named(
    local_store, tmp_path, refusing_server, monkeypatch
):
    import mlflow

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    experiment_id, client = local_store
    here, mine = store.tracking_uri(), client.create_run(experiment_id).info.run_id
    elsewhere = f"sqlite:///{tmp_path / 'other.db'}"  # another clone's local store
    other_client = mlflow.MlflowClient(elsewhere)
    other_run = other_client.create_run(other_client.create_experiment("other")).info.run_id
    stores = {
        # this project's local store, named by a run.json written before the project moved
        1: (f"sqlite:///{tmp_path / 'old' / 'mlruns' / 'mlflow.db'}?timeout=60", mine),
        2: (elsewhere, other_run),
        3: (here, "0" * 32),  # deleted from the store
        4: (f"http://127.0.0.1:{free_port()}", "a" * 32),
        5: (refusing_server, "b" * 32),
        6: (f"sqlite:///{tmp_path / 'moved' / 'mlflow.db'}", "c" * 32),
        7: ("nosuchscheme://team", "d" * 32),
    }
    runs = {seed: {"run_id": run_id, "tracking_uri": uri} for seed, (uri, run_id) in stores.items()}
    answers = [
        SimpleNamespace(
            question=BY_ID["Q1.1"],
            seeds=dict.fromkeys(runs, 0.9),
            seed_intervals=dict.fromkeys(runs, (0.8, 1.0)),
            runs=runs,
        )
    ]
    left = report_runs.log_answers(answers, {}, move_alias=True)

    for annotated in (client.get_run(stores[1][1]), other_client.get_run(other_run)):
        assert annotated.data.metrics["Q1.1"] == 0.9
    assert not (tmp_path / "moved").exists()  # not made where the runs are not
    reasons = {
        "has no such run (deleted, or its run.json came from another store)",
        f"the store at {stores[4][0]} is unreachable",
        f"the store at {refusing_server} refused these credentials (UNAUTHENTICATED)",
        f"there is no MLflow store at {tmp_path / 'moved' / 'mlflow.db'} (moved or deleted?)",
        "nosuchscheme://team is not a tracking URI MLflow can open",
    }
    assert len(left) == len(reasons)
    for reason in reasons:
        (line,) = [line for line in left if reason in line]
        assert line.startswith("1 run")


def test_a_run_json_naming_a_local_store_means_the_local_store_in_use(local_store, monkeypatch):
    """This project's store, wherever run.json was written; but a sweep's tasks, in clones,
    log to the launching project's, which MLFLOW_TRACKING_URI names."""
    from keras_exercises.tracking.run_stores import store_of

    written = {"tracking_uri": "sqlite:////elsewhere/copy/mlruns/mlflow.db?timeout=60"}
    assert store_of(written) == store.default_store()[0]
    assert store_of({"tracking_uri": "https://mlflow.example"}) == "https://mlflow.example"
    launching = "sqlite:////home/me/project/mlruns/mlflow.db?timeout=60"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", launching)
    assert store_of(written) == launching


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
