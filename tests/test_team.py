"""Working as a team, for real on 127.0.0.1: `mlflow server` on PostgreSQL with artifacts
proxied to S3 (moto's server), a DVC remote on the same endpoint, and two clones of one
bare git repository standing for two machines, each with its own DVC cache. Every command
a user types comes from tools/team.sh, the script docs/team.md shows."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from pathlib import Path

import mlflow
import psutil
import pytest
import requests
import yaml

from keras_exercises.tracking.failures import WAIT_ENV
from tests.conftest import (
    answers_and_metrics,
    at_epoch_3,
    dvc,
    dvc_fails,
    run_queue,
    shrink,
    user_files,
)
from tests.support.project_copy import copy_project
from tests.support.services import READER, free_port, team_script, team_script_fails, team_servers
from tests.support.team import (
    cached_files,
    env_of,
    experiment_answer,
    experiments_shown,
    files_written,
    login_in_uri,
    reader_get,
    refused,
    restore_named,
    set_rate,
    shared_by_two_machines,
    stage_fails,
    team_dvc,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    with team_servers(tmp_path_factory.mktemp("team")) as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def reading_as_the_reader(team):
    """The tests' own MLflow clients read the server as the team's reader."""
    reader = team.user_env(READER)
    names = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    with pytest.MonkeyPatch.context() as patch:
        for name in (*names, "MLFLOW_TRACKING_SERVER_CERT_PATH"):
            patch.setenv(name, reader[name])
        yield


@pytest.fixture(scope="module")
def machines(team, tmp_path_factory, real_params, tiny_mirror):
    """Machine A has run the pipeline and shared it; B is a fresh clone that synced."""
    params = yaml.safe_dump(shrink(real_params, str(tiny_mirror)), sort_keys=False)
    return shared_by_two_machines(team, tmp_path_factory.mktemp("machines"), params)


def test_a_teammate_gets_every_output_without_training(team, machines, tmp_path):
    a, b = machines
    assert user_files(b) == user_files(a)
    assert (b / "reports/answers.json").read_bytes() == (a / "reports/answers.json").read_bytes()
    assert "Data and pipelines are up to date." in team_dvc(team, b, "repro")

    # the runs are on the server, with their metrics and models, and the report's links
    # open them there
    client = mlflow.MlflowClient(team.url)
    experiment = client.get_experiment_by_name("keras-exercises")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"ex{i} seed 42" for i in range(1, 7)]
    assert all(r.info.status == "FINISHED" and r.data.tags["device"] for r in runs)
    models = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    assert {m.source_run_id for m in models} == {r.info.run_id for r in runs}
    # artifacts went through the server to S3, and come back the same way
    figure = client.download_artifacts(runs[0].info.run_id, "evaluation.png", str(tmp_path))
    assert Path(figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    links = re.findall(r"\]\((https://[^)]+)\)", (b / "reports/answers.md").read_text())
    assert len(links) == 9
    for link in links:
        run_id = link.split("/runs/")[1].removesuffix("?workflowType=machine_learning")
        assert link.startswith(f"{team.url}/#/experiments/{experiment.experiment_id}/runs/")
        assert link.endswith("?workflowType=machine_learning")  # the model-training view
        answer = reader_get(team, "/api/2.0/mlflow/runs/get", run_id=run_id)
        assert answer.json()["run"]["info"]["run_id"] == run_id


def test_the_server_starts_no_job_runner(team):
    """tools/team.sh turns MLflow's job runner off (docs/team.md): the server's processes
    are its workers alone."""
    server = psutil.Process(team.process.pid)
    commands = [" ".join(child.cmdline()) for child in server.children(recursive=True)]
    assert any("uvicorn" in c or "multiprocessing" in c for c in commands), commands
    assert not [c for c in commands if "huey" in c or "jobs._job_runner" in c], commands


def test_a_second_cold_run_repeats_every_answer_byte_for_byte(machines, finished_project):
    """Machine A ran the session's finished pipeline's params from scratch, in another
    directory and processes, into another store, and each stage in a process of its own
    where the finished pipeline's training ran warm (runtime/warm_start.py): seeded
    training repeats it exactly."""
    a, _ = machines
    assert answers_and_metrics(a) == answers_and_metrics(finished_project)


def test_experiments_travel_through_git_and_the_run_cache_spares_training(team, machines):
    a, b = machines
    change = "exercises.ex1.optimizer.learning_rate=0.002"
    team_dvc(team, a, "exp", "run", "-n", "lr-0.002", "-S", change)
    team_script(a, team.env, "share", "lr-0.002")

    team_script(b, env_of(team, b), "sync", "lr-0.002")
    experiments = experiments_shown(team, b)
    assert "lr-0.002" in experiments
    data = experiments["lr-0.002"]
    ex1_metrics = data["metrics"]["outputs/ex1/seed42/metrics.json"]["data"]
    assert 0 <= ex1_metrics["test_accuracy"] <= 1
    assert data["params"]["params.yaml"]["data"]["exercises"]["ex1"]["optimizer"] == {
        "name": "nadam",
        "learning_rate": 0.002,
    }
    client = mlflow.MlflowClient(team.url)
    experiment = client.get_experiment_by_name("keras-exercises")
    tagged = client.search_runs([experiment.experiment_id], "tags.dvc_experiment = 'lr-0.002'")
    assert [r.info.run_name for r in tagged] == ["ex1 seed 42 (lr-0.002)"]

    # B runs the same change: restored from A's run-cache, nothing trains
    output = team_dvc(team, b, "exp", "run", "--pull", "-S", change)
    assert "Stage 'train@ex1-42' is cached - skipping run" in output
    assert not re.search(r"Running stage '(train|embed|mc_evaluate)", output), output
    assert (b / "outputs/ex1/seed42/metrics.json").read_text() == json.dumps(
        ex1_metrics, indent=2, sort_keys=True
    ) + "\n"

    # B's experiment under the name A shared: `share` refuses with DVC's message, where
    # `dvc exp push` alone prints it and exits 0
    (ran,) = re.findall(r"Ran experiment\(s\): (\S+)", output)
    team_dvc(team, b, "exp", "remove", "lr-0.002")
    team_dvc(team, b, "exp", "rename", ran, "lr-0.002")
    refused = team_script_fails(b, env_of(team, b), "share", "lr-0.002")
    assert "has diverged from remote experiment" in refused
    assert "Nothing shared for 'lr-0.002': rename yours" in refused


def test_two_queued_experiments_log_to_the_server_at_once(team, machines):
    a, _ = machines
    rates = ("0.003", "0.004")
    for rate in rates:
        team_dvc(
            team, a, "exp", "run", "--queue", "-S", f"exercises.ex1.optimizer.learning_rate={rate}"
        )
    client = mlflow.MlflowClient(team.url)
    answered = client.get_model_version_by_alias("keras-exercises-ex1", "answer").version
    status = run_queue(a, "--jobs", "2", env=env_of(team, a))
    assert status.count("Success") == 2, status
    # experiments are trials: their reports leave the alias on the committed results' version
    assert client.get_model_version_by_alias("keras-exercises-ex1", "answer").version == answered
    experiment = client.get_experiment_by_name("keras-exercises")
    runs = [
        r
        for r in client.search_runs(
            [experiment.experiment_id], "attributes.run_name LIKE 'ex1 seed 42%'"
        )
        if r.data.params["optimizer.learning_rate"] in rates
    ]
    assert sorted(r.data.params["optimizer.learning_rate"] for r in runs) == sorted(rates)
    models = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    for run in runs:
        assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
        assert run.info.run_id in {m.source_run_id for m in models}


def test_a_clone_with_local_runs_reports_across_both_stores(team, finished):
    """Earlier runs in the local store, then MLFLOW_TRACKING_URI set to the team's server:
    ex1 trains on the server, and the report writes to each run in its own store."""
    ex2 = json.loads((finished / "outputs/ex2/seed42/run.json").read_text())
    local = mlflow.MlflowClient(f"sqlite:///{finished / 'mlruns' / 'mlflow.db'}")
    before = len(local.get_metric_history(ex2["run_id"], "Q2.1"))

    rate = "exercises.ex1.optimizer.learning_rate=0.0035"
    output = dvc(finished, "exp", "run", "-S", rate, env=team.env)
    assert "Running stage 'train@ex1-42'" in output and "Note:" not in output, output
    ex1 = json.loads((finished / "outputs/ex1/seed42/run.json").read_text())
    assert ex1["tracking_uri"] == team.url
    assert "Q1.1" in mlflow.MlflowClient(team.url).get_run(ex1["run_id"]).data.metrics
    assert len(local.get_metric_history(ex2["run_id"], "Q2.1")) == before + 1


def test_only_the_team_gets_in_a_reader_only_reads_and_no_secret_shows(team, machines, monkeypatch):
    a, b = machines
    reader = (READER, team.passwords[READER])
    assert experiment_answer(team, reader) == 200
    assert experiment_answer(team, None) == 401  # no credentials
    assert experiment_answer(team, ("alice", "not her password")) == 401
    assert experiment_answer(team, reader, {"Host": "evil.example"}) == 403
    with pytest.raises(requests.exceptions.ConnectionError):  # plain HTTP: no answer
        requests.get(f"http://127.0.0.1:{team.port}/health", timeout=10)

    # bob, on B, runs an experiment into the experiment alice's runs are in
    output = team_dvc(team, b, "exp", "run", "-S", "exercises.ex1.optimizer.learning_rate=0.009")
    assert "Running stage 'train@ex1-42'" in output
    client = mlflow.MlflowClient(team.url)  # the reader
    experiment = client.get_experiment_by_name("keras-exercises")
    runs = client.search_runs([experiment.experiment_id])
    (bobs,) = [r for r in runs if r.data.params.get("optimizer.learning_rate") == "0.009"]
    assert bobs.info.status == "FINISHED" and bobs.data.tags["dvc_experiment"]
    alices = json.loads((a / "outputs/ex1/seed42/run.json").read_text())
    assert alices["experiment_id"] == experiment.experiment_id

    refused(lambda: client.create_run(experiment.experiment_id))
    refused(lambda: client.set_registered_model_alias("keras-exercises-ex1", "answer", "1"))
    bob = team.user_env("bob")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bob")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", bob["MLFLOW_TRACKING_PASSWORD"])
    refused(lambda: client.delete_run(runs[0].info.run_id))  # only admins delete

    # -ww: whole command lines, however long (ps cuts them at 80 columns otherwise)
    ps = ["ps", "-eo", "args", "-ww"]
    shown = subprocess.run(ps, capture_output=True, text=True).stdout
    assert "--app-name team-auth" in shown
    written = files_written(a, b)
    logged = [v for run in runs for v in (*run.data.params.values(), *run.data.tags.values())]
    for secret in team.secrets():
        assert secret not in shown
        assert not [path for path in written if secret.encode() in path.read_bytes()]
        assert not [value for value in logged if secret in value]


def test_the_server_down_past_the_wait_fails_and_a_restart_mid_stage_is_waited_out(team, machines):
    _, b = machines
    before = user_files(b)
    server = psutil.Process(team.process.pid).children(recursive=True)
    (auth_file,) = {p.environ().get("MLFLOW_AUTH_CONFIG_PATH") for p in server} - {None}
    assert Path(auth_file).is_file()
    team.stop()
    assert not Path(auth_file).parent.exists()  # nothing of the server is left in /tmp
    try:
        set_rate(b, 0.005)
        output = dvc_fails(b, "repro", env={**env_of(team, b), WAIT_ENV: "3"})
        assert (
            f"the MLflow tracking server at {team.url} did not answer while connecting "
            "(connection refused), and was not back within 3 s" in output
        )
        assert "Epoch 1/" not in output
        restore_named(team, b, output)
        assert user_files(b) == before
    finally:
        team.start()

    # bob's login in the URI this time: MLflow prints its URI in every run's link
    env, user, password = login_in_uri(team, b)

    def restart(process) -> None:
        team.stop()
        time.sleep(5)  # away while the training ends and the stage starts to log it
        team.start()

    set_rate(b, 0.006, epochs=40)
    output = at_epoch_3(["dvc", "repro"], b, env, restart, succeeds=True)
    waited = f"The MLflow tracking server at {team.url} does not answer (no connection)"
    assert output.count(waited) == 1, output
    assert f"The MLflow tracking server at {team.url} answers again" in output
    assert password not in output and f"{user}:" not in output
    run = json.loads((b / "outputs/ex1/seed42/run.json").read_text())
    client = mlflow.MlflowClient(team.url)
    logged = client.get_run(run["run_id"])
    assert logged.info.status == "FINISHED"
    assert logged.data.metrics["epochs_run"] == 40 and "evaluation.png" in {
        a.path for a in client.list_artifacts(run["run_id"])
    }
    version = client.get_model_version("keras-exercises-ex1", run["model_version"])
    assert version.run_id == run["run_id"]
    assert '"epochs_run": 40' in (b / "outputs/ex1/seed42/metrics.json").read_text()


def test_add_user_again_completes_an_addition_and_resets_a_password(team, monkeypatch):
    from mlflow.server import get_app_client

    admin = team.user_env("admin")
    first, second = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    here = team.log.parent
    said = team_script(here, {**admin, "TEAM_USER_PASSWORD": first}, "add-user", "carol")
    granted = [f"EDIT on keras-exercises-ex{i}" for i in range(1, 7)]
    assert said.strip() == "carol on keras-exercises and its models: " + ", ".join(
        ["created", "EDIT on keras-exercises", *granted]
    )
    said = team_script(here, admin, "add-user", "carol")  # no password needed: she exists
    assert said.strip() == "carol on keras-exercises and its models: nothing was missing"

    # an addition that stopped midway: one grant missing
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, admin[name])
    get_app_client("basic-auth", tracking_uri=team.url).revoke_user_permission(
        "carol", "registered_model", "keras-exercises-ex3"
    )
    said = team_script(here, admin, "add-user", "carol")
    assert said.strip() == "carol on keras-exercises and its models: EDIT on keras-exercises-ex3"

    reset = {**admin, "TEAM_USER_PASSWORD": second}
    said = team_script(here, reset, "add-user", "--reset-password", "carol")
    assert said.strip() == "carol on keras-exercises and its models: password reset"
    assert experiment_answer(team, ("carol", second)) == 200
    assert first not in said and second not in said


def test_each_tracking_failure_names_its_cause_before_any_data_is_loaded(team, tmp_path):
    project = copy_project(tmp_path / "no-data")
    bob = team.user_env("bob")
    untrusted = {k: v for k, v in bob.items() if k != "MLFLOW_TRACKING_SERVER_CERT_PATH"}
    said = stage_fails(project, untrusted)
    assert f"cannot verify the TLS certificate of the MLflow tracking server at {team.url}" in said
    assert "(CERTIFICATE_VERIFY_FAILED)" in said
    assert "set MLFLOW_TRACKING_SERVER_CERT_PATH to that CA's certificate" in said

    said = stage_fails(project, {**bob, "MLFLOW_TRACKING_PASSWORD": "not bob's"})
    assert f"the MLflow tracking server at {team.url} did not accept the login 'bob'" in said
    assert "Set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in said

    said = stage_fails(project, team.user_env(READER))
    assert f"the login '{READER}' may not write to the MLflow tracking server" in said
    assert "a reader (READ) can only look" in said and "tools/team.sh add-user NAME" in said

    closed = {**bob, "MLFLOW_TRACKING_URI": f"https://127.0.0.1:{free_port()}", WAIT_ENV: "0"}
    assert "did not answer while connecting (connection refused)" in stage_fails(project, closed)
    for secret in team.secrets():
        assert secret not in said


def test_the_teams_experiment_and_models_stay_the_teams(team, tmp_path, monkeypatch):
    """A teammate's EDIT logs runs, and would rename the experiment too (MLflow's same
    "update"): the server's team-auth app refuses that to anyone but an admin."""
    for name, value in team.user_env("bob").items():
        monkeypatch.setenv(name, value)
    bob = mlflow.MlflowClient(team.url)
    experiment = bob.get_experiment_by_name("keras-exercises")
    # deleting takes MANAGE, which MLflow refuses a teammate itself; renaming is refused here
    for change, ours in (
        (lambda: bob.rename_experiment(experiment.experiment_id, "mine"), True),
        (lambda: bob.rename_registered_model("keras-exercises-ex1", "mine"), True),
        (lambda: bob.delete_experiment(experiment.experiment_id), False),
        (lambda: bob.delete_registered_model("keras-exercises-ex2"), False),
    ):
        said = refused(change)
        assert ("is the team's: only an admin renames or deletes it" in said) == ours, said
    # what is bob's own stays MLflow's to decide
    own = bob.create_experiment(f"bob's trials {time.time_ns()}")
    bob.rename_experiment(own, f"bob's renamed trials {time.time_ns()}")

    # renamed all the same (by an admin): a teammate's run makes no experiment of its own
    admin = team.user_env("admin")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin["MLFLOW_TRACKING_PASSWORD"])
    client = mlflow.MlflowClient(team.url)
    client.rename_experiment(experiment.experiment_id, "keras-exercises (old)")
    try:
        said = stage_fails(copy_project(tmp_path / "no-data"), team.user_env("bob"))
        assert (
            f"the experiment keras-exercises is missing on the MLflow tracking server at "
            f"{team.url} (renamed or deleted): an admin restores it" in said
        )
        assert client.get_experiment_by_name("keras-exercises") is None
    finally:
        client.rename_experiment(experiment.experiment_id, "keras-exercises")


def test_postgres_restarted_between_stages_then_storage_down_during_dvc_push(team, machines):
    """Last: moto keeps its buckets in memory, so they are gone once it stops."""
    a, _ = machines
    team.database.restart()
    set_rate(a, 0.007)
    output = team_dvc(team, a, "repro")
    assert "Running stage 'train@ex1-42'" in output
    run_id = json.loads((a / "outputs/ex1/seed42/run.json").read_text())["run_id"]
    assert mlflow.MlflowClient(team.url).get_run(run_id).info.status == "FINISHED"

    before = user_files(a)
    cache = cached_files(a)
    team.s3.stop()
    output = dvc_fails(a, "push", env={**team.env, "AWS_MAX_ATTEMPTS": "1"})
    assert "ERROR" in output
    assert user_files(a) == before
    assert cached_files(a) == cache
    assert "Data and pipelines are up to date." in team_dvc(team, a, "status")
