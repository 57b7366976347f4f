"""The tracking store against a real local MLflow store in a temporary project, and servers
on 127.0.0.1 that fail as real ones do: connecting, outages waited out and named, logins
kept out of sight, each failure named with its fix. (Runs: test_tracking_runs; real
servers: test_tracking_stores.)"""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from keras_exercises.questions import BY_ID
from keras_exercises.runtime.errors import PipelineError
from keras_exercises.tracking import links, outages, report_runs, store
from keras_exercises.tracking.failures import WAIT_ENV
from tests.support.services import free_port


def connecting_fails(monkeypatch, uri: str, wait: str) -> str:
    """What store.connect() to `uri` says when it fails, having waited up to `wait` s."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv(WAIT_ENV, wait)
    with pytest.raises(PipelineError) as caught:
        store.connect()
    return str(caught.value)


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
    message = connecting_fails(monkeypatch, uri, wait="1")
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
    try:
        message = connecting_fails(monkeypatch, uri, wait="1")
    finally:
        server.shutdown()
    assert len(writes) == 0 if reads_fail else len(writes) > 1, writes  # tried again
    assert message.startswith(
        f"the MLflow tracking server at {uri} answered with server errors (HTTP 503) while "
        "connecting, and still did after 1 s: it is up, but failing. Its log says why"
    ), message
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
    try:
        message = connecting_fails(monkeypatch, uri, wait="0")
        address = uri.replace("alice:s3cret@", "")
        assert f"at {address} did not answer" in message
        assert "s3cret" not in message
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
