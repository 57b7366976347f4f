"""The report's values and pages from a folder of synthetic outputs: no pipeline, no MLflow."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from keras_exercises.answers import (
    answers_json,
    build_answers,
    intervals_json,
)
from keras_exercises.comparison import Comparison
from keras_exercises.params import EXERCISES, MC_EXERCISES, Params
from keras_exercises.plot_data import mc_predictions_csv, predictions_csv
from keras_exercises.questions import BY_ID, QUESTIONS
from keras_exercises.report_pages import Report, answers_markdown, assemble, report_html
from keras_exercises.runtime.paths import exercise_output
from keras_exercises.tracking.report_runs import run_descriptions

# a 1x1 PNG: the pages embed figures as they are
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
SEEDS = [42, 43]
N_TEST = 20


def write_outputs(root, seeds: list[int], description: str = "synthetic stand-in") -> None:
    """What train, mc_evaluate and fetch leave for the report, with known answers: seed s
    gets the first 10 + (s - 42) of 20 test images right (ex6's MC variance 0.01 * s/42)."""
    rng = np.random.default_rng(0)
    for name in EXERCISES:
        for seed in seeds:
            right = 10 + seed - 42
            actual = rng.integers(0, 10, N_TEST)
            predicted = np.where(np.arange(N_TEST) < right, actual, (actual + 1) % 10)
            folder = root / exercise_output(name, seed, "")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "predictions.csv").write_text(predictions_csv(actual, predicted))
            metrics = {"test_accuracy": right / N_TEST, "test_loss": 1.0}
            (folder / "metrics.json").write_text(json.dumps(metrics))
            run = {
                "run_id": f"run-{name}-{seed}",
                "experiment_id": "1",
                "tracking_uri": f"sqlite:///{root}/mlruns/mlflow.db",
                "model_version": "1",
            }
            (folder / "run.json").write_text(json.dumps(run))
            (folder / "evaluation.png").write_bytes(PNG)
            if name in MC_EXERCISES:
                variance = np.full(N_TEST, 0.01 * seed / 42)
                (folder / "mc_predictions.csv").write_text(
                    mc_predictions_csv(actual, predicted, variance)
                )
                mc = {"mc_accuracy": right / N_TEST, "mean_predictive_variance": variance.mean()}
                mc |= {"nll": 1.0, "mc_nll": 0.9, "brier": 0.5, "mc_brier": 0.6}
                mc |= {"ece": 0.2, "mc_ece": 0.2}
                (folder / "mc_metrics.json").write_text(json.dumps(mc))
                (folder / "mc_variance.png").write_bytes(PNG)
                (folder / "reliability.png").write_bytes(PNG)
    (root / "reports").mkdir(exist_ok=True)
    (root / "reports" / "seeds.png").write_bytes(PNG)
    raw = root / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for dataset, synthetic in (("mnist", False), ("cifar10", False), ("svhn_cropped", True)):
        info = {
            "source": "mirror /m",
            "train_samples": 60,
            "test_samples": 30,
            "synthetic": synthetic,
            "description": description if synthetic else None,
        }
        (raw / f"{dataset}.json").write_text(json.dumps(info))


@pytest.fixture
def outputs(tmp_path, monkeypatch, small_params):
    small_params["seeds"] = SEEDS
    for ex in small_params["exercises"].values():
        ex["n_test"] = N_TEST
    write_outputs(tmp_path, SEEDS)
    monkeypatch.chdir(tmp_path)
    return Params.model_validate(small_params)


def make_report(params: Params, comparison=()) -> Report:
    sources = {
        d: json.loads(Path(f"data/raw/{d}.json").read_text())
        for d in ("mnist", "cifar10", "svhn_cropped")
    }
    compared_with = "the last commit (abc1234)" if comparison else "No committed answers."
    return assemble(params, build_answers(params), sources, list(comparison), compared_with)


def test_answers_are_seed_means_with_intervals(outputs):
    answers = {a.question.id: a for a in build_answers(outputs)}
    q11 = answers["Q1.1"]
    assert q11.seeds == {42: 0.5, 43: 0.55} and q11.value == 0.525
    assert q11.low < 0.525 < q11.high and q11.sd == pytest.approx(0.0354, abs=1e-4)
    assert answers["Q6.3"].value == round((0.01 + 0.01 * 43 / 42) / 2, 3)
    assert set(answers_json(list(answers.values()))) == {q.id for q in QUESTIONS}
    intervals = intervals_json(list(answers.values()))
    assert intervals["Q1.1"]["seeds"] == {"42": 0.5, "43": 0.55}
    q63 = intervals["Q6.3"]
    assert q63["low"] <= round(answers["Q6.3"].mean, 6) <= q63["high"]


def test_kind_decides_format_and_test():
    q11, q63 = BY_ID["Q1.1"].kind, BY_ID["Q6.3"].kind
    assert (q11.answer(0.5), q63.answer(0.0123)) == ("50.00%", "0.012")
    assert (q11.difference(0.05), q63.difference(0.0123)) == ("+5.0 pts", "+0.0123")
    assert (q11.paired_test, q63.paired_test) == ("McNemar exact", "paired bootstrap")
    assert [q.id for q in QUESTIONS if not q.kind.is_accuracy] == ["Q6.3"]


def test_markdown_lists_every_answer_seed_calibration_and_flag(outputs):
    markdown = answers_markdown(make_report(outputs))
    for q in QUESTIONS:
        assert re.search(rf"^\| {re.escape(q.id)} \| .*\*\*", markdown, re.M), q.id
    # ⚠: the shrunk params train ex1 under other conditions than the exercise text's
    assert "| Q1.1 | Test accuracy, dense ELU net on MNIST: **52.50%** ⚠ | " in markdown
    assert "42: [`run-ex1-42`](http://127.0.0.1:5000/#/experiments/1/runs/run-ex1-42" in markdown
    assert "## Across seeds" in markdown and "| Q1.1 | 52.50% | 3.54 pts |" in markdown
    assert "| ex3 | MC Dropout average | 0.9000 | 0.6000 | 0.2000 |" in markdown
    assert "- **ex3**: mixed: MC Dropout lowered NLL and raised Brier." in markdown
    assert "- **ex5** (Q5.1): svhn_cropped is a synthetic stand-in" in markdown
    assert "No committed answers." in markdown and markdown.endswith(")\n")


def test_comparison_table_in_both_pages(outputs):
    rows = [
        Comparison("Q1.1", 42, 0.5, 0.55, 0.05, 0.5, "McNemar exact", "within noise"),
        Comparison("Q6.3", 42, 0.01, 0.02, 0.01, 0.001, "paired bootstrap", "beyond noise"),
    ]
    report = make_report(outputs, rows)
    markdown = answers_markdown(report)
    assert "| Q1.1 | 42 | 50.00% | 55.00% | +5.0 pts | 0.5000 | within noise |" in markdown
    assert "| Q6.3 | 42 | 0.0100 | 0.0200 | +0.0100 | 0.0010 | beyond noise |" in markdown
    assert "a paired bootstrap for Q6.3" in markdown
    page = report_html(report, "reports/seeds.png")
    assert "<td>+5.0 pts</td>" in page and "<code>keras-exercises compare</code>" in page


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.captions, self.links, self._in_caption = [], [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        self._in_caption = tag == "figcaption"
        if tag == "a":
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        self._in_caption = False

    def handle_data(self, data):
        if self._in_caption:
            self.captions.append(data)


def test_html_has_every_figure_captioned_and_every_run_linked(outputs):
    page = report_html(make_report(outputs), "reports/seeds.png")
    parsed = _Page()
    parsed.feed(page)
    # the seeds plot, an evaluation per exercise, variance and reliability per MC exercise
    assert len(parsed.images) == 1 + len(EXERCISES) + 2 * len(MC_EXERCISES)
    assert all(img["src"].startswith("data:image/png;base64,") for img in parsed.images)
    assert [img["alt"] for img in parsed.images] == parsed.captions
    assert len(parsed.links) == len(QUESTIONS) * len(SEEDS)
    assert page.startswith("<!doctype html><html><head>") and page.endswith("</html>\n")
    assert "\n" not in page.rstrip("\n")  # the template's own layout is not in the page


def test_html_escapes_what_the_outputs_say(tmp_path, monkeypatch, small_params):
    """A dataset description is text from a data file: it must not become markup."""
    small_params["seeds"] = [42]
    write_outputs(tmp_path, [42], description="synthetic <script>alert(1)</script> & co")
    monkeypatch.chdir(tmp_path)
    report = make_report(Params.model_validate(small_params))
    page = report_html(report, "reports/seeds.png")
    assert "<script>" not in page
    assert "synthetic &lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert "<script>" in answers_markdown(report)  # markdown is not HTML: left as written


def test_run_descriptions_give_each_run_its_answers(outputs):
    answers = build_answers(outputs)
    descriptions = run_descriptions(answers, 0.95)
    assert descriptions["run-ex3-43"].startswith("Exercise ex3, seed 43. Answers Q3.1 (")
    assert (
        "Q3.2 (MC Dropout accuracy of the same net, no retraining): 55.00%"
        in (descriptions["run-ex3-43"])
    )
    assert len(descriptions) == len(EXERCISES) * len(SEEDS)
