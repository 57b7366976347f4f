"""The answers to Q1.1-Q6.3: which metric answers each question, the conditions that differ
from the exercise text, and the answers as a markdown table and an HTML page of figures."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass

from keras_exercises.params import EXERCISES, MC_EXERCISES, Params, flatten
from keras_exercises.runtime.errors import PipelineError
from keras_exercises.runtime.paths import exercise_output


@dataclass(frozen=True)
class Question:
    id: str
    exercise: str
    source: str  # metrics file in outputs/<exercise>/
    key: str
    phrase: str  # what the number answers, as the exercise asks it


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


def read_json(path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path} is missing: run `dvc repro` to make it.") from None
    except json.JSONDecodeError as exc:
        raise PipelineError(
            f"{path} is corrupt ({exc}); run `dvc repro --force` on its stage."
        ) from None


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


def build_answers(params: Params) -> tuple[dict[str, float], list[dict]]:
    answers, rows = {}, []
    runs = {name: read_json(exercise_output(name, "run.json")) for name in EXERCISES}
    for q in QUESTIONS:
        value = answer_value(q, read_json(exercise_output(q.exercise, q.source))[q.key])
        answers[q.id] = value
        rows.append({"question": q, "value": value, "run": runs[q.exercise]})
    return answers, rows


def describe_sources(sources: dict[str, dict]) -> str:
    return "; ".join(
        f"{name} from {info['source']} ({info['train_samples']} train, "
        f"{info['test_samples']} test{', synthetic' if info['synthetic'] else ''})"
        for name, info in sources.items()
    )


def run_page(run: dict) -> str | None:
    """The MLflow UI's page of a run logged to a tracking server; None for the local store,
    which has no address until someone starts `mlflow ui` on it."""
    uri = run.get("tracking_uri") or ""
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{run['experiment_id']}/runs/{run['run_id']}"


def answers_markdown(rows: list[dict], flags: dict[str, list[str]], data_source: str) -> str:
    lines = [
        "# Answers",
        "",
        f"Data: {data_source}. Every answer links to its MLflow run (`mlflow ui`, see README).",
        "",
        "| Question | Answer | Exercise | MLflow run |",
        "|---|---|---|---|",
    ]
    for row in rows:
        q = row["question"]
        flag = " ⚠" if q.exercise in flags else ""
        lines.append(
            f"| {q.id} | {q.phrase}: **{phrase_answer(q, row['value'])}**{flag} "
            f"| {q.exercise} | {_markdown_run(row['run'])} |"
        )
    lines += ["", "## Conditions other than the exercise text", ""]
    if not flags:
        lines.append("None: every answer was computed as the exercises specify.")
    for name, notes in flags.items():
        asked = ", ".join(q.id for q in QUESTIONS if q.exercise == name)
        lines += [f"- **{name}** ({asked}): " + "; ".join(notes)]
    return "\n".join(lines) + "\n"


def _markdown_run(run: dict) -> str:
    page = run_page(run)
    return f"[`{run['run_id']}`]({page})" if page else f"`{run['run_id']}`"


def _html_run(run: dict) -> str:
    page = run_page(run)
    code = f"<code>{html.escape(run['run_id'])}</code>"
    return f'<a href="{html.escape(page)}">{code}</a>' if page else code


def _image(path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(str(path))}" src="data:image/png;base64,{encoded}">'


def report_html(rows: list[dict], flags: dict[str, list[str]], data_source: str) -> str:
    table = "".join(
        f"<tr><td>{r['question'].id}</td><td>{html.escape(r['question'].phrase)}</td>"
        f"<td><b>{phrase_answer(r['question'], r['value'])}</b>"
        f"{' &#9888;' if r['question'].exercise in flags else ''}</td>"
        f"<td>{r['question'].exercise}</td><td>{_html_run(r['run'])}</td></tr>"
        for r in rows
    )
    notes = (
        "".join(
            f"<li><b>{name}</b>: {html.escape('; '.join(items))}</li>"
            for name, items in flags.items()
        )
        or "<li>None: every answer was computed as the exercises specify.</li>"
    )
    figures = ""
    for name in EXERCISES:
        figures += f"<h3>{name}</h3>" + _image(exercise_output(name, "evaluation.png"))
        if name in MC_EXERCISES:
            figures += _image(exercise_output(name, "mc_variance.png"))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Keras exercises: answers</title>"
        "<style>body{font-family:sans-serif;max-width:1250px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
        "img{max-width:100%;display:block;margin:8px 0}</style></head><body>"
        f"<h1>Keras exercises: answers</h1><p>Data: {html.escape(data_source)}.</p>"
        "<table><tr><th>Question</th><th>What it measures</th><th>Answer</th><th>Exercise</th>"
        f"<th>MLflow run</th></tr>{table}</table>"
        f"<h2>Conditions other than the exercise text</h2><ul>{notes}</ul>"
        f"<h2>Figures</h2>{figures}</body></html>\n"
    )
