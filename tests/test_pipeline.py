"""The real pipeline, end to end: what one `dvc repro` in a fresh git repo on shrunk params
made (conftest's finished_project, run once a session and copied here), and what DVC does
with it after. That a second cold run repeats it byte for byte is test_team's check: its
first machine runs the same params from scratch."""

import json
import re
from pathlib import Path

import mlflow
import pytest
import yaml

from keras_exercises.questions import QUESTIONS
from tests.conftest import NATIVE_LOG_NOISE, dvc, write_params

pytestmark = pytest.mark.slow


def test_repro_answers_every_question_logs_six_runs_and_caches(
    finished, finished_project, small_params
):
    project = finished
    # every stage that asks for a warm interpreter got one (a preload that fails to import
    # or call would leave each to run cold, with this note)
    printed = (finished_project.parent / "repro.log").read_text()
    assert "no warm start" not in printed
    # a clean terminal: none of TensorFlow's known harmless E- and W-level lines
    assert not NATIVE_LOG_NOISE.findall(printed), printed
    answers = json.loads((project / "reports/answers.json").read_text())
    assert sorted(answers) == sorted(q.id for q in QUESTIONS)
    assert all(0.0 <= value <= 1.0 for value in answers.values())
    assert answers["Q6.3"] == round(answers["Q6.3"], 3)
    markdown = (project / "reports/answers.md").read_text()
    assert "weights: null instead of ImageNet's" in markdown
    assert "n_train = 40 (the exercise asks 5000)" in markdown
    assert "svhn_cropped is a synthetic stand-in for svhn_cropped" in markdown
    html = (project / "reports/report.html").read_text()
    # the seeds' strip plot, six evaluations, two MC histograms, two reliability diagrams
    assert html.count("data:image/png;base64,") == 11
    intervals = json.loads((project / "reports/intervals.json").read_text())
    ex6 = json.loads((project / "outputs/ex6/seed42/mc_metrics.json").read_text())
    unrounded = {**answers, "Q6.3": ex6["mean_predictive_variance"]}  # answered to 3 decimals
    for question, value in unrounded.items():
        assert set(intervals[question]) == {"low", "high"}  # one seed: no sd
        assert intervals[question]["low"] <= value <= intervals[question]["high"], question
    for ex in ("ex3", "ex6"):
        mc = json.loads((project / f"outputs/{ex}/seed42/mc_metrics.json").read_text())
        assert {"nll", "brier", "ece", "mc_nll", "mc_brier", "mc_ece"} <= set(mc)
        assert 0 <= mc["ece"] <= 1 and 0 <= mc["mc_brier"] <= 2
    assert "## Calibration of MC Dropout" in markdown
    assert "has no answers to compare with" in markdown  # HEAD is the bare copy
    plots = dvc(project, "plots", "show", "--json")
    for plot_id in ("reliability_ex3", "loss", "outputs/ex6/seed42/mc_predictions.csv"):
        assert f'"{plot_id}"' in plots

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlruns/mlflow.db'}")
    experiment = client.get_experiment_by_name("keras-exercises")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.run_name for run in runs) == [f"ex{i} seed 42" for i in range(1, 7)]
    for run in runs:
        name = run.info.run_name.split()[0]
        assert run.info.status == "FINISHED"
        stage = "train_head" if name == "ex4" else "train"
        assert run.data.tags["dvc_stage"] == f"{stage}@{name}-42"
        assert run.data.tags["seed"] == "42" and run.data.params["seed"] == "42"
        assert len(run.data.tags["mlflow.source.git.commit"]) == 40  # set by MLflow itself
        assert run.data.params["optimizer.learning_rate"] == str(
            small_params["exercises"][name]["optimizer"]["learning_rate"]
        )
        assert 0 <= run.data.metrics["test_accuracy"] <= 1
        # the report's answers and intervals, on the run that gave them
        for q in (q for q in QUESTIONS if q.exercise == name):
            logged = [run.data.metrics[f"{q.id}{end}"] for end in ("_low", "_high")]
            assert logged == [intervals[q.id]["low"], intervals[q.id]["high"]], q.id
            assert round(run.data.metrics[q.id], 4) == round(unrounded[q.id], 4)
        assert len(client.get_metric_history(run.info.run_id, "loss")) == 2
        run_file = json.loads((project / f"outputs/{name}/seed42/run.json").read_text())
        assert run_file["run_id"] == run.info.run_id
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "evaluation.png" in artifacts
        if name in ("ex3", "ex6"):
            assert {"mc_variance.png", "reliability.png"} <= artifacts
            assert "mean_predictive_variance" in run.data.metrics
    # MLflow's UI opens it on the training runs, each with its data and registered model
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    for run in runs:
        name = run.info.run_name.split()[0]
        (prepared,) = lock[f"prepare@{name}"]["outs"]
        inputs = {
            d.dataset.name: (d.dataset.digest, json.loads(d.dataset.source), d.tags[0].value)
            for d in run.inputs.dataset_inputs
        }
        dataset = small_params["exercises"][name]["dataset"]
        assert inputs == {
            f"{dataset} train, 40 images ({name})": (
                prepared["md5"],
                {"path": prepared["path"]},
                "training",
            ),
            f"{dataset} test, 20 images ({name})": (
                prepared["md5"],
                {"path": prepared["path"]},
                "testing",
            ),
        }
        assert run.data.tags["mlflow.note.content"].startswith(
            f"Exercise {name}, seed 42. Answers Q"
        )
        model = client.get_registered_model(f"keras-exercises-{name}")
        (version,) = client.search_model_versions(f"name = 'keras-exercises-{name}'")
        assert version.run_id == run.info.run_id and model.aliases == {"answer": version.version}
        assert version.tags["seed"] == "42" and version.tags["n_train"] == "40"
        assert version.tags["data_digest"] == prepared["md5"]
    links = re.findall(r'href="([^"]+)"', html)
    assert len(links) == 9 and all(
        link.startswith("http://127.0.0.1:5000/#/experiments/")
        and link.endswith("?workflowType=machine_learning")
        for link in links
    )
    models = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    assert sorted(m.source_run_id for m in models) == sorted(r.info.run_id for r in runs)
    assert {m.name for m in models} == {"model"}
    names = {run.info.run_id: run.info.run_name.split()[0] for run in runs}
    for model in models:
        logged = Path(model.artifact_location.removeprefix("file://"))
        mlmodel = yaml.safe_load((logged / "MLmodel").read_text())
        assert "keras" in mlmodel["flavors"]
        assert "inputs" in mlmodel["signature"] and "outputs" in mlmodel["signature"]
        # the model in MLflow is the stage's output, byte for byte (saved once)
        output = project / f"outputs/{names[model.source_run_id]}/seed42/model.keras"
        assert (logged / "data/model.keras").read_bytes() == output.read_bytes()

    assert "Data and pipelines are up to date." in dvc(project, "repro")

    # tampering: DVC notices a truncated model and an edited data file, and repro mends both
    model = project / "outputs/ex3/seed42/model.keras"
    model.write_bytes(model.read_bytes()[:1000])
    prepared = project / "data/prepared/ex1.npz"
    prepared.write_bytes(prepared.read_bytes() + b"edited")
    changed = set(json.loads(dvc(project, "status", "--json")))
    assert {"train@ex3-42", "prepare@ex1"} <= changed
    dvc(project, "repro")
    assert json.loads((project / "reports/answers.json").read_text()) == answers
    assert "Data and pipelines are up to date." in dvc(project, "repro")

    # a change under exercises.ex2 touches only exercise 2's training and the report, after
    # the params check, whose unchanged output reruns nothing by itself
    small_params["exercises"]["ex2"]["optimizer"]["learning_rate"] = 0.01
    write_params(project, small_params)
    changed = set(json.loads(dvc(project, "status", "--json")))
    assert changed == {"validate", "train@ex2-42", "report"}
    ran = re.findall(r"Running stage '([^']+)'", dvc(project, "repro"))
    assert ran == ["validate", "train@ex2-42", "report"]
