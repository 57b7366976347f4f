"""What the report writes on the training runs: the answers each gave with their intervals,
a description that says so, and the alias `answer` on the versions behind the report."""

from __future__ import annotations

import time

from keras_exercises.tracking.training_run import REGISTERED_MODEL

ANSWER_ALIAS = "answer"  # the model version behind the current report


def run_descriptions(answers: list, confidence: float) -> dict[str, str]:
    """Per MLflow run, its description: what it is and the answers it gives."""
    parts: dict[str, list[str]] = {}
    for answer in answers:
        q = answer.question
        for seed, run in answer.runs.items():
            low, high = answer.seed_intervals[seed]
            parts.setdefault(
                run["run_id"], [f"Exercise {q.exercise}, seed {seed}. Answers"]
            ).append(
                f"{q.id} ({q.phrase}): {q.kind.precise(answer.seeds[seed])}, "
                f"{confidence:.0%} interval {q.kind.bound(low)} – {q.kind.bound(high)}."
            )
    return {run_id: " ".join(lines) for run_id, lines in parts.items()}


def log_answers(answers: list, descriptions: dict[str, str]) -> None:
    """On each run, the answers it gave and their intervals over the test images (metrics
    `Q1.1`, `Q1.1_low`, `Q1.1_high`, ...) as the report gives them for its seed, and its
    description; the alias `answer` on each exercise's model version of the first seed,
    the one the report's figures show."""
    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    by_run: dict[str, list[Metric]] = {}
    for answer in answers:
        qid = answer.question.id
        for seed, run in answer.runs.items():
            low, high = answer.seed_intervals[seed]
            by_run.setdefault(run["run_id"], []).extend(
                Metric(key, float(value), now, 0)
                for key, value in (
                    (qid, answer.seeds[seed]),
                    (f"{qid}_low", low),
                    (f"{qid}_high", high),
                )
            )
    client = mlflow.MlflowClient()
    for run_id, metrics in by_run.items():
        client.log_batch(run_id, metrics=metrics)
    for run_id, text in descriptions.items():
        client.set_tag(run_id, "mlflow.note.content", text)
    for answer in answers:
        first = next(iter(answer.runs.values()))
        if first.get("model_version"):
            model = REGISTERED_MODEL.format(exercise=answer.question.exercise)
            client.set_registered_model_alias(model, ANSWER_ALIAS, first["model_version"])
