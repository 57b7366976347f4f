"""The answers to Q1.1-Q6.3: which metric answers each question, its mean over the seeds and
its interval over the test images, the conditions that differ from the exercise text, MC
Dropout's calibration, and all of it as markdown and as an HTML page of figures."""

from __future__ import annotations

import base64
import csv
import html
import io
import re
import statistics
from dataclasses import dataclass, field

import numpy as np

from keras_exercises import tracking
from keras_exercises.params import EXERCISES, MC_EXERCISES, Params, flatten
from keras_exercises.runtime.atomic import read_json
from keras_exercises.runtime.errors import PipelineError
from keras_exercises.runtime.paths import exercise_output
from keras_exercises.significance import bootstrap_mean_interval, wilson_interval


@dataclass(frozen=True)
class Question:
    id: str
    exercise: str
    source: str  # metrics file in outputs/<exercise>/seed<seed>/
    key: str
    phrase: str  # what the number answers, as the exercise asks it

    @property
    def samples(self) -> str:
        """The per-test-image file behind the answer, for intervals and paired tests."""
        return "mc_predictions.csv" if self.source == "mc_metrics.json" else "predictions.csv"

    @property
    def per_sample(self) -> str:
        """What each test image contributes: right or wrong, or a predictive variance."""
        return "variance" if self.key == "mean_predictive_variance" else "correct"


QUESTIONS = (
    Question(
        "Q1.1", "ex1", "metrics.json", "test_accuracy", "Test accuracy, dense ELU net on MNIST"
    ),
    Question(
        "Q2.1", "ex2", "metrics.json", "test_accuracy", "Test accuracy, dense ELU net on CIFAR-10"
    ),
    Question(
        "Q3.1",
        "ex3",
        "metrics.json",
        "test_accuracy",
        "Test accuracy, SELU + Alpha Dropout net (dropout off)",
    ),
    Question(
        "Q3.2",
        "ex3",
        "mc_metrics.json",
        "mc_accuracy",
        "MC Dropout accuracy of the same net, no retraining",
    ),
    Question(
        "Q4.1",
        "ex4",
        "metrics.json",
        "test_accuracy",
        "Test accuracy, frozen MobileNetV2 + new head on CIFAR-10",
    ),
    Question("Q5.1", "ex5", "metrics.json", "test_accuracy", "Test accuracy, deeper CNN on SVHN"),
    Question(
        "Q6.1",
        "ex6",
        "metrics.json",
        "test_accuracy",
        "Test accuracy, SGD CNN on SVHN (dropout off)",
    ),
    Question("Q6.2", "ex6", "mc_metrics.json", "mc_accuracy", "MC Dropout accuracy of the SGD CNN"),
    Question(
        "Q6.3",
        "ex6",
        "mc_metrics.json",
        "mean_predictive_variance",
        "Epistemic uncertainty: variance across MC passes, mean over classes and test samples",
    ),
)


def answer_value(question: Question, value: float) -> float:
    # accuracies are exact fractions of the test slice; Q6.3 is asked to three decimals
    return round(value, 3) if question.id == "Q6.3" else round(value, 4)


def phrase_answer(question: Question, value: float) -> str:
    return f"{value:.3f}" if question.id == "Q6.3" else f"{value:.2%}"


def deviations(params: Params, sources: dict[str, dict]) -> dict[str, list[str]]:
    """Per exercise, each condition that differs from the exercise text's, in words."""
    found: dict[str, list[str]] = {}
    for name in EXERCISES:
        ex = getattr(params.exercises, name)
        actual = flatten(ex.model_dump())
        notes = []
        if sources[ex.dataset]["synthetic"]:
            notes.append(
                f"{ex.dataset} is a {sources[ex.dataset]['description']}: the answer checks "
                "the mechanics only and says nothing about the real dataset"
            )
        expected = params.reference.get(name, {})
        for key, want in expected.items():
            if actual[key] == want:
                continue
            if key == "model.weights":
                notes.append(
                    f"MobileNetV2 base with weights: {actual[key] or 'null'} instead of "
                    "ImageNet's: the answer shows the mechanics, not what transfer learning "
                    "achieves"
                )
            else:
                notes.append(f"{key} = {actual[key]} (the exercise asks {want})")
        if notes:
            found[name] = notes
    return found


def per_sample_values(text: str, question: Question) -> np.ndarray:
    """From a predictions file: per test image, right or wrong, or its predictive variance."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if question.per_sample == "variance":
        return np.array([float(r["variance"]) for r in rows])
    return np.array([r["actual"] == r["predicted"] for r in rows])


def _interval_digits(question: Question) -> int:
    return 6 if question.per_sample == "variance" else 4


def build_answers(params: Params) -> list[dict]:
    """Per question: every seed's value, their mean (the answer), sd, and the interval of
    the mean over the test images (Wilson for accuracies, a seeded bootstrap for Q6.3);
    each seed's own interval too, for its MLflow run."""
    stats = params.statistics
    rows = []
    for q in QUESTIONS:
        per_seed = {
            seed: read_json(exercise_output(q.exercise, seed, q.source))[q.key]
            for seed in params.seeds
        }
        mean = statistics.fmean(per_seed.values())
        digits = _interval_digits(q)
        if q.per_sample == "variance":
            per_image = {
                seed: per_sample_values(_read_text(exercise_output(q.exercise, seed, q.samples)), q)
                for seed in params.seeds
            }

            def interval(values: np.ndarray) -> tuple[float, float]:
                return bootstrap_mean_interval(
                    values, stats.confidence_level, stats.bootstrap_resamples, stats.bootstrap_seed
                )

            # each image's variance averaged over the seeds, then resampled by image
            low, high = interval(np.mean(list(per_image.values()), axis=0))
            seed_intervals = {seed: interval(values) for seed, values in per_image.items()}
        else:
            n = getattr(params.exercises, q.exercise).n_test
            low, high = wilson_interval(mean, n, stats.confidence_level)
            seed_intervals = {
                seed: wilson_interval(value, n, stats.confidence_level)
                for seed, value in per_seed.items()
            }
        rows.append(
            {
                "question": q,
                "value": answer_value(q, mean),
                "mean": mean,
                "low": round(low, digits),
                "high": round(high, digits),
                "seeds": per_seed,
                "seed_intervals": {
                    seed: (round(lo, digits), round(hi, digits))
                    for seed, (lo, hi) in seed_intervals.items()
                },
                "sd": statistics.stdev(per_seed.values()) if len(per_seed) > 1 else None,
                "runs": {seed: _run(q.exercise, seed, params.mlflow_ui) for seed in params.seeds},
            }
        )
    return rows


def _run(exercise: str, seed: int, mlflow_ui: str) -> dict:
    run = read_json(exercise_output(exercise, seed, "run.json"))
    return {**run, "page": run_page(run, mlflow_ui)}


def _read_text(path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise PipelineError(f"{path} is missing: run `dvc repro` to make it.") from None


def answers_json(rows: list[dict]) -> dict[str, float]:
    return {r["question"].id: r["value"] for r in rows}


def intervals_json(rows: list[dict]) -> dict[str, dict]:
    """Question id to its interval; with several seeds also the sd and every seed's value."""
    intervals = {}
    for r in rows:
        entry: dict = {"low": r["low"], "high": r["high"]}
        if r["sd"] is not None:
            entry["sd"] = round(r["sd"], _interval_digits(r["question"]) + 1)
            entry["seeds"] = {
                str(seed): round(value, _interval_digits(r["question"]))
                for seed, value in r["seeds"].items()
            }
        intervals[r["question"].id] = entry
    return intervals


CALIBRATION_METRICS = (("nll", "NLL"), ("brier", "Brier"), ("ece", "ECE"))


def calibration_summary(params: Params) -> dict[str, dict]:
    """Per MC exercise: NLL, Brier and ECE of both predictions (means over the seeds), and
    whether MC Dropout improved calibration."""
    summary = {}
    for name in MC_EXERCISES:
        per_seed = [read_json(exercise_output(name, s, "mc_metrics.json")) for s in params.seeds]
        means = {
            key: statistics.fmean(m[key] for m in per_seed)
            for base, _ in CALIBRATION_METRICS
            for key in (base, f"mc_{base}")
        }
        better = [label for key, label in CALIBRATION_METRICS if means[f"mc_{key}"] < means[key]]
        worse = [label for key, label in CALIBRATION_METRICS if means[f"mc_{key}"] > means[key]]
        if not better and not worse:
            verdict = "MC Dropout left NLL, Brier and ECE unchanged"
        elif not worse:
            verdict = f"MC Dropout improved calibration: {_words(better)} lower"
        elif not better:
            verdict = f"MC Dropout made calibration worse: {_words(worse)} higher"
        else:
            verdict = f"mixed: MC Dropout lowered {', '.join(better)} and raised {', '.join(worse)}"
        summary[name] = {"metrics": means, "verdict": verdict}
    return summary


def _words(items: list[str]) -> str:
    return ", ".join(items[:-1]) + f" and {items[-1]}" if len(items) > 1 else "".join(items)


def describe_sources(sources: dict[str, dict]) -> str:
    return "; ".join(
        f"{name} from {info['source']} ({info['train_samples']} train, "
        f"{info['test_samples']} test{', synthetic' if info['synthetic'] else ''})"
        for name, info in sources.items()
    )


def run_page(run: dict, mlflow_ui: str) -> str:
    """The MLflow UI's page of a run: on its tracking server, or for the local store where
    the README's `mlflow ui` command serves it (`mlflow_ui` in params.yaml)."""
    base = tracking.ui_address(run.get("tracking_uri") or "", mlflow_ui)
    return tracking.run_page(base, run["experiment_id"], run["run_id"])


LOCAL_UI_COMMAND = (
    "mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --host 127.0.0.1 --port {port}"
)


def links_note(rows: list[dict], mlflow_ui: str) -> str:
    """Where the run links lead, and for the local store how to start the UI they open."""
    uri = next(iter(rows[0]["runs"].values())).get("tracking_uri") or ""
    if tracking.ui_address(uri, mlflow_ui) == uri:  # a tracking server: its own UI
        return f"Run links open the tracking server {uri}."
    from urllib.parse import urlsplit

    port = urlsplit(mlflow_ui).port or 80
    return (
        f"Run links open the MLflow UI at {mlflow_ui}; start it from the project root with "
        f"`{LOCAL_UI_COMMAND.format(port=port)}`."
    )


def run_descriptions(rows: list[dict], confidence: float) -> dict[str, str]:
    """Per MLflow run, its description: what it is and the answers it gives."""
    parts: dict[str, list[str]] = {}
    for row in rows:
        q = row["question"]
        for seed, run in row["runs"].items():
            low, high = row["seed_intervals"][seed]
            shown = {"low": low, "high": high, "question": q}
            parts.setdefault(
                run["run_id"], [f"Exercise {q.exercise}, seed {seed}. Answers"]
            ).append(
                f"{q.id} ({q.phrase}): {_precise(q, row['seeds'][seed])}, "
                f"{confidence:.0%} interval {_interval(shown)}."
            )
    return {run_id: " ".join(lines) for run_id, lines in parts.items()}


@dataclass
class Report:
    """Everything the report shows, for its markdown and its HTML."""

    rows: list[dict]
    flags: dict[str, list[str]]
    data_source: str
    calibration: dict[str, dict]
    statistics: object  # params.statistics
    seeds: list[int]
    links: str = ""  # where the run links lead
    comparison: list = field(default_factory=list)  # comparison.Comparison rows
    compared_with: str | None = None  # what the comparison is against, or why there is none

    @property
    def confidence(self) -> str:
        return f"{self.statistics.confidence_level:.0%}"

    def method(self) -> str:
        seeds = len(self.seeds)
        return (
            f"Each answer is the mean over {seeds} training seed{'s' if seeds > 1 else ''} "
            f"({', '.join(map(str, self.seeds))}). Its {self.confidence} interval is over the "
            "test images: Wilson score for accuracies, a BCa bootstrap of "
            f"{self.statistics.bootstrap_resamples} resamples (seed "
            f"{self.statistics.bootstrap_seed}) for Q6.3."
        )


def _interval(row: dict) -> str:
    if row["question"].per_sample == "variance":
        return f"{row['low']:.5f} – {row['high']:.5f}"
    return f"{row['low']:.1%} – {row['high']:.1%}"


def answers_markdown(report: Report) -> str:
    lines = [
        "# Answers",
        "",
        f"Data: {report.data_source}.",
        "",
        f"Every answer links to its MLflow run. {report.links}",
        "",
        report.method(),
        "",
        f"| Question | Answer | {report.confidence} interval | Exercise | MLflow run |",
        "|---|---|---|---|---|",
    ]
    for row in report.rows:
        q = row["question"]
        flag = " ⚠" if q.exercise in report.flags else ""
        lines.append(
            f"| {q.id} | {q.phrase}: **{phrase_answer(q, row['value'])}**{flag} "
            f"| {_interval(row)} | {q.exercise} | {_markdown_runs(row['runs'])} |"
        )
    if len(report.seeds) > 1:
        lines += ["", "## Across seeds", ""]
        lines += _markdown_table(SEEDS_HEADER, _seeds_cells(report.rows))
    lines += ["", "## Calibration of MC Dropout", ""]
    lines += _markdown_table(CALIBRATION_HEADER, _calibration_cells(report.calibration))
    lines.append("")
    lines += [f"- **{name}**: {entry['verdict']}." for name, entry in report.calibration.items()]
    lines += ["", "## Against the last commit", "", _comparison_intro(report), ""]
    if report.comparison:
        lines += _markdown_table(COMPARISON_HEADER, _comparison_cells(report.comparison))
    lines += ["", "## Conditions other than the exercise text", ""]
    if not report.flags:
        lines.append("None: every answer was computed as the exercises specify.")
    for name, notes in report.flags.items():
        asked = ", ".join(q.id for q in QUESTIONS if q.exercise == name)
        lines += [f"- **{name}** ({asked}): " + "; ".join(notes)]
    return "\n".join(lines) + "\n"


def _precise(question: Question, value: float) -> str:
    """A value with the digits that tell seeds apart (Q6.3's answer has three decimals)."""
    return f"{value:.5f}" if question.per_sample == "variance" else f"{value:.2%}"


SEEDS_HEADER = ["Question", "Mean", "SD", "Min – max", "Per seed"]
CALIBRATION_HEADER = ["Exercise", "Prediction", "NLL", "Brier", "ECE"]
COMPARISON_HEADER = ["Question", "Seed", "Committed", "Now", "Difference", "p-value", "Verdict"]


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def _seeds_cells(rows: list[dict]) -> list[list[str]]:
    cells = []
    for row in rows:
        q, values = row["question"], row["seeds"]
        cells.append(
            [
                q.id,
                _precise(q, row["mean"]),
                _sd(q, row["sd"]),
                f"{_precise(q, min(values.values()))} – {_precise(q, max(values.values()))}",
                ", ".join(f"{s}: {_precise(q, v)}" for s, v in values.items()),
            ]
        )
    return cells


def _calibration_cells(calibration: dict[str, dict]) -> list[list[str]]:
    return [
        [name, label] + [f"{entry['metrics'][prefix + key]:.4f}" for key, _ in CALIBRATION_METRICS]
        for name, entry in calibration.items()
        for prefix, label in (("", "dropout off"), ("mc_", "MC Dropout average"))
    ]


def _sd(question: Question, sd: float | None) -> str:
    if sd is None:
        return "-"
    return f"{sd:.5f}" if question.per_sample == "variance" else f"{sd * 100:.2f} pts"


def _comparison_intro(report: Report) -> str:
    if not report.comparison:
        return report.compared_with or "Nothing to compare with."
    return (
        f"Against {report.compared_with}, on the same test images, seed by seed: McNemar's "
        "exact test for accuracies, a paired bootstrap for Q6.3; a difference is beyond "
        f"noise only where p < {report.statistics.significance_level}. "
        "`keras-exercises compare` gives the same for any two revisions."
    )


def format_value(question_id: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if question_id == "Q6.3" else f"{value:.2%}"


def format_difference(question_id: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if question_id == "Q6.3" else f"{value * 100:+.1f} pts"


def _comparison_cells(comparison: list) -> list[list[str]]:
    return [
        [
            c.question,
            str(c.seed),
            format_value(c.question, c.a),
            format_value(c.question, c.b),
            format_difference(c.question, c.difference),
            "-" if c.p_value is None else f"{c.p_value:.4f}",
            c.verdict,
        ]
        for c in comparison
    ]


def _markdown_runs(runs: dict[int, dict]) -> str:
    if len(runs) == 1:
        return _markdown_run(next(iter(runs.values())))
    return ", ".join(f"{seed}: {_markdown_run(run)}" for seed, run in runs.items())


def _markdown_run(run: dict) -> str:
    return f"[`{run['run_id']}`]({run['page']})"


def _html_runs(runs: dict[int, dict]) -> str:
    if len(runs) == 1:
        return _html_run(next(iter(runs.values())))
    return "<br>".join(f"{seed}: {_html_run(run)}" for seed, run in runs.items())


def _html_run(run: dict) -> str:
    return f'<a href="{html.escape(run["page"])}"><code>{html.escape(run["run_id"])}</code></a>'


def _figure(path, caption: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _code(text: str) -> str:
    """Escaped text with its `backticked` parts as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def report_html(report: Report, seeds_figure_path) -> str:
    esc = html.escape
    answers = _html_table(
        [
            "Question",
            "What it measures",
            "Answer",
            f"{report.confidence} interval",
            "Exercise",
            "MLflow run",
        ],
        [
            [
                r["question"].id,
                esc(r["question"].phrase),
                f"<b>{phrase_answer(r['question'], r['value'])}</b>"
                + (" &#9888;" if r["question"].exercise in report.flags else ""),
                esc(_interval(r)),
                r["question"].exercise,
                _html_runs(r["runs"]),
            ]
            for r in report.rows
        ],
    )
    seeds_section = ""
    if len(report.seeds) > 1:
        seeds_section = "<h2>Across seeds</h2>" + _html_table(
            SEEDS_HEADER, _seeds_cells(report.rows)
        )
    calibration = (
        _html_table(CALIBRATION_HEADER, _calibration_cells(report.calibration))
        + "<ul>"
        + "".join(
            f"<li><b>{name}</b>: {esc(entry['verdict'])}.</li>"
            for name, entry in report.calibration.items()
        )
        + "</ul>"
    )
    comparison = f"<p>{_code(_comparison_intro(report))}</p>"
    if report.comparison:
        comparison += _html_table(
            COMPARISON_HEADER,
            [[esc(c) for c in cells] for cells in _comparison_cells(report.comparison)],
        )
    notes = (
        "".join(
            f"<li><b>{name}</b>: {esc('; '.join(items))}</li>"
            for name, items in report.flags.items()
        )
        or "<li>None: every answer was computed as the exercises specify.</li>"
    )
    seed = report.seeds[0]
    figures = _figure(
        seeds_figure_path,
        f"Every seed's answer per question (dots) with the mean and its {report.confidence} "
        "interval (bar).",
    )
    for name in EXERCISES:
        asked = ", ".join(q.id for q in QUESTIONS if q.exercise == name)
        figures += f"<h3>{name} ({asked}), seed {seed}</h3>" + _figure(
            exercise_output(name, seed, "evaluation.png"),
            f"{name}, seed {seed}: confusion matrix on the test images and loss per epoch.",
        )
        if name in MC_EXERCISES:
            figures += _figure(
                exercise_output(name, seed, "mc_variance.png"),
                f"{name}, seed {seed}: per test image, the variance of the MC Dropout passes.",
            )
            figures += _figure(
                exercise_output(name, seed, "reliability.png"),
                f"{name}, seed {seed}: reliability diagram, dropout off and MC Dropout average.",
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>Keras exercises: answers</title>"
        "<style>body{font-family:sans-serif;max-width:1250px;margin:auto;padding:0 12px}"
        "table{border-collapse:collapse;display:block;overflow-x:auto}"
        "td,th{border:1px solid #ccc;padding:4px 8px}"
        "img{max-width:100%;height:auto;display:block;margin:8px 0}"
        "figcaption{color:#444;font-size:90%}</style></head><body>"
        f"<h1>Keras exercises: answers</h1><p>Data: {esc(report.data_source)}.</p>"
        f"<p>{esc(report.method())}</p><p>{_code(report.links)}</p>{answers}{seeds_section}"
        f"<h2>Calibration of MC Dropout</h2>{calibration}"
        f"<h2>Against the last commit</h2>{comparison}"
        f"<h2>Conditions other than the exercise text</h2><ul>{notes}</ul>"
        f"<h2>Figures</h2>{figures}</body></html>\n"
    )
