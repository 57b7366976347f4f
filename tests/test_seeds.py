"""Seeds on demand, end to end on the tiny pipeline: each seed its own stages and MLflow
runs, answers as means with intervals, `compare` and `dvc exp show` on a real DVC
experiment."""

import json
import re
import shlex
import subprocess

import mlflow
import pytest

from keras_exercises.questions import QUESTIONS
from tests.conftest import ROOT, dvc

pytestmark = pytest.mark.slow

TRAINED = {"train@ex1", "train@ex2", "train@ex3", "train@ex5", "train@ex6", "train_head@ex4"}


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def compare_json(project, *revisions: str) -> list[dict]:
    done = subprocess.run(
        ["keras-exercises", "compare", *revisions, "--json"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_each_added_seed_trains_only_its_own_stages_and_answers_become_means(finished):
    one_seed = json.loads((finished / "reports/answers.json").read_text())
    ran = stages_run(dvc(finished, "exp", "run", "-n", "two", "-S", "seeds=[42,43]"))
    assert set(ran) == {f"{s}-43" for s in TRAINED} | {"validate", "mc_evaluate@43", "report"}

    intervals = json.loads((finished / "reports/intervals.json").read_text())
    answers = json.loads((finished / "reports/answers.json").read_text())
    assert sorted(intervals) == sorted(answers) == sorted(q.id for q in QUESTIONS)
    for question in ("Q1.1", "Q6.2"):
        entry = intervals[question]
        assert set(entry) == {"low", "high", "sd", "seeds"}
        assert entry["seeds"]["42"] == one_seed[question]  # seed 42 is exactly as before
        assert answers[question] == pytest.approx(sum(entry["seeds"].values()) / 2, abs=1e-4)
        assert entry["low"] <= answers[question] <= entry["high"]
    markdown = (finished / "reports/answers.md").read_text()
    assert "## Across seeds" in markdown and "mean over 2 training seeds (42, 43)" in markdown
    metrics = json.loads(dvc(finished, "metrics", "show", "--json"))
    shown = next(iter(metrics.values()))["data"]
    assert "reports/intervals.json" in shown and "outputs/ex3/seed43/mc_metrics.json" in shown

    client = mlflow.MlflowClient(f"sqlite:///{finished / 'mlruns/mlflow.db'}")
    experiment = client.get_experiment_by_name("keras-exercises")
    runs = client.search_runs([experiment.experiment_id], "tags.dvc_experiment = 'two'")
    assert sorted(r.info.run_name for r in runs) == [f"ex{i} seed 43 (two)" for i in range(1, 7)]
    assert {r.data.tags["seed"] for r in runs} == {"43"}
    for run in runs:
        if run.info.run_name.split()[0] in ("ex3", "ex6"):
            assert {"mc_ece", "mc_nll", "mc_brier", "ece"} <= set(run.data.metrics)
            artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"reliability.png", "mc_variance.png"} <= artifacts

    # the committed single-seed results against the experiment: seed 42, image by image,
    # is the same in both (adding a seed changed nothing of the others)
    rows = compare_json(finished, "HEAD", "two")
    assert {(r["question"], r["seed"]) for r in rows} == {(q.id, 42) for q in QUESTIONS}
    for row in rows:
        assert row["difference"] == pytest.approx(0, abs=1e-9), row
        assert row["p_value"] == 1.0 and row["verdict"] == "within noise"

    # the committed single-seed results against the experiment: only seed 42 is paired
    done = subprocess.run(
        ["keras-exercises", "compare", "HEAD", "two"], cwd=finished, capture_output=True, text=True
    )
    assert "seed by seed (1 seed: 42)" in done.stdout
    assert "Not compared: seed 43 only in two." in done.stdout
    assert "Against the last commit" in markdown and "within noise" in markdown

    # the docs' one command: each experiment's answers and the params it changed, 160 wide
    documented = (ROOT / "docs" / "experiments.md").read_text()
    (command,) = {line for line in documented.splitlines() if line.startswith("dvc exp show --")}
    table = dvc(finished, *shlex.split(command)[1:], env={"COLUMNS": "160"})
    header = next(line for line in table.splitlines() if "Experiment" in line)
    assert re.findall(r"Q\d\.\d", header) == [q.id for q in QUESTIONS]  # every answer, first
    assert "seeds" in header and "Created" not in header and "outputs/" not in header
    assert "[two]" in table
    assert max(len(line) for line in table.splitlines()) <= 160
