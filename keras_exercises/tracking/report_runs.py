"""What the report writes on the training runs: the answers each gave with their intervals,
a description that says so, and the alias `answer` on the versions behind the report."""

from __future__ import annotations

import time

from keras_exercises.tracking import run_stores
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


def log_answers(answers: list, descriptions: dict[str, str], move_alias: bool) -> list[str]:
    """On each run, in the store its run.json names, the answers it gave and their
    intervals over the test images (metrics `Q1.1`, `Q1.1_low`, `Q1.1_high`, ...) as the
    report gives them for its seed, and its description; with `move_alias`, the alias
    `answer` on each exercise's model version of the first seed, the one the report's
    figures show. Returns a line for each store it could not write to, and for each alias
    it left where it was because the version is not the linked run's."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    by_run: dict[str, list[Metric]] = {}
    stores: dict[str, list[str]] = {}  # tracking URI: its run ids
    behind: dict[str, dict] = {}  # registered model: the run.json of its first seed
    for answer in answers:
        qid = answer.question.id
        for seed, run in answer.runs.items():
            low, high = answer.seed_intervals[seed]
            if run["run_id"] not in by_run:
                stores.setdefault(run_stores.store_of(run), []).append(run["run_id"])
            by_run.setdefault(run["run_id"], []).extend(
                Metric(key, float(value), now, 0)
                for key, value in (
                    (qid, answer.seeds[seed]),
                    (f"{qid}_low", low),
                    (f"{qid}_high", high),
                )
            )
        first = next(iter(answer.runs.values()))
        if first.get("model_version"):
            behind[REGISTERED_MODEL.format(exercise=answer.question.exercise)] = first
    left = []
    for uri, run_ids in stores.items():
        aliased = {m: r for m, r in behind.items() if run_stores.store_of(r) == uri}
        left += _write_store(uri, run_ids, by_run, descriptions, aliased if move_alias else {})
    return left


def _write_store(
    uri: str,
    run_ids: list[str],
    metrics: dict[str, list],
    descriptions: dict[str, str],
    aliased: dict[str, dict],
) -> list[str]:
    """One store's part of log_answers; the lines for what it could not write."""
    try:
        client = run_stores.client_for(uri)
    except run_stores.StoreUnusable as exc:
        return [f"{_count(run_ids)} without the report's answers: {exc}"]
    left = []
    for at, run_id in enumerate(run_ids):
        try:
            client.log_batch(run_id, metrics=metrics[run_id])
            if run_id in descriptions:
                client.set_tag(run_id, "mlflow.note.content", descriptions[run_id])
        except Exception as exc:
            others_may_work, why = run_stores.failure(uri, exc)
            failed = [run_id] if others_may_work else run_ids[at:]
            left.append(f"{_count(failed)} ({', '.join(failed)}) without answers: {why}")
            if not others_may_work:
                return left
    try:
        left += _point_answer_alias(client, aliased)
    except Exception as exc:
        left.append(f"the alias `{ANSWER_ALIAS}` not moved: {run_stores.failure(uri, exc)[1]}")
    return left


def _count(run_ids: list[str]) -> str:
    return f"{len(run_ids)} run{'s' if len(run_ids) > 1 else ''}"


def _point_answer_alias(client, behind: dict[str, dict]) -> list[str]:
    """The alias `answer` of each model on the version its run.json names, if that run
    logged it; a line for each one left where it was."""
    left = []
    for model, run in behind.items():
        version = client.get_model_version(model, run["model_version"])
        if version.run_id != run["run_id"]:
            left.append(
                f"the alias `{ANSWER_ALIAS}` of {model} stays where it is: version "
                f"{version.version} was logged by run {version.run_id}, not by run "
                f"{run['run_id']} that the report links (a run.json from another store?)"
            )
            continue
        client.set_registered_model_alias(model, ANSWER_ALIAS, version.version)
    return left
