"""The answers to Q1.1-Q6.3 as values read from the outputs: each question's mean over the
seeds, its interval over the test images, every seed's own; MC Dropout's calibration; the
conditions that differ from the exercise text. How they are shown is report_pages.py's."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from keras_exercises.params import EXERCISES, MC_EXERCISES, Params, Statistics, flatten
from keras_exercises.questions import QUESTIONS, Question
from keras_exercises.runtime.atomic import read_json
from keras_exercises.runtime.errors import PipelineError
from keras_exercises.runtime.paths import exercise_output
from keras_exercises.significance import bootstrap_mean_interval, wilson_interval
from keras_exercises.tracking.links import page_of


@dataclass(frozen=True)
class Answer:
    """One question's answer: every seed's value, their mean, and intervals over the test
    images (of the mean, and of each seed's value, for its MLflow run)."""

    question: Question
    mean: float
    low: float
    high: float
    seeds: dict[int, float]
    seed_intervals: dict[int, tuple[float, float]]
    sd: float | None  # with one seed, none
    runs: dict[int, dict]  # per seed, its run.json and "page", its address in the MLflow UI

    @property
    def value(self) -> float:
        """The answer as answers.json gives it."""
        return round(self.mean, self.question.kind.answer_digits)


def build_answers(params: Params) -> list[Answer]:
    """Per question: every seed's value, their mean (the answer), sd, and the interval of
    the mean over the test images (Wilson for accuracies, a seeded bootstrap for Q6.3)."""
    return [_answer(q, params) for q in QUESTIONS]


def _answer(q: Question, params: Params) -> Answer:
    stats = params.statistics
    per_seed = {
        seed: read_json(exercise_output(q.exercise, seed, q.source))[q.key] for seed in params.seeds
    }
    mean = statistics.fmean(per_seed.values())
    if q.kind.is_accuracy:
        n = getattr(params.exercises, q.exercise).n_test
        low, high = wilson_interval(mean, n, stats.confidence_level)
        seed_intervals = {
            seed: wilson_interval(value, n, stats.confidence_level)
            for seed, value in per_seed.items()
        }
    else:
        per_image = {
            seed: q.kind.per_image(_read_text(exercise_output(q.exercise, seed, q.samples)))
            for seed in params.seeds
        }
        # each image's value averaged over the seeds, then resampled by image
        low, high = _bootstrap(np.mean(list(per_image.values()), axis=0), stats)
        seed_intervals = {seed: _bootstrap(values, stats) for seed, values in per_image.items()}
    digits = q.kind.interval_digits
    return Answer(
        question=q,
        mean=mean,
        low=round(low, digits),
        high=round(high, digits),
        seeds=per_seed,
        seed_intervals={
            seed: (round(lo, digits), round(hi, digits))
            for seed, (lo, hi) in seed_intervals.items()
        },
        sd=statistics.stdev(per_seed.values()) if len(per_seed) > 1 else None,
        runs={seed: _run(q.exercise, seed, params.mlflow_ui) for seed in params.seeds},
    )


def _bootstrap(values: np.ndarray, stats: Statistics) -> tuple[float, float]:
    return bootstrap_mean_interval(
        values, stats.confidence_level, stats.bootstrap_resamples, stats.bootstrap_seed
    )


def _run(exercise: str, seed: int, mlflow_ui: str) -> dict:
    run = read_json(exercise_output(exercise, seed, "run.json"))
    return {**run, "page": page_of(run, mlflow_ui)}


def _read_text(path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise PipelineError(f"{path} is missing: run `dvc repro` to make it.") from None


def answers_json(answers: list[Answer]) -> dict[str, float]:
    return {a.question.id: a.value for a in answers}


def intervals_json(answers: list[Answer]) -> dict[str, dict]:
    """Question id to its interval; with several seeds also the sd and every seed's value."""
    intervals = {}
    for a in answers:
        digits = a.question.kind.interval_digits
        entry: dict = {"low": a.low, "high": a.high}
        if a.sd is not None:
            entry["sd"] = round(a.sd, digits + 1)
            entry["seeds"] = {str(seed): round(value, digits) for seed, value in a.seeds.items()}
        intervals[a.question.id] = entry
    return intervals


CALIBRATION_METRICS = (("nll", "NLL"), ("brier", "Brier"), ("ece", "ECE"))


@dataclass(frozen=True)
class Calibration:
    """An MC exercise's NLL, Brier and ECE (means over the seeds) of the dropout-off
    prediction (`nll`, ...) and of the MC average (`mc_nll`, ...), and the verdict."""

    metrics: dict[str, float]
    verdict: str


def calibration_summary(params: Params) -> dict[str, Calibration]:
    summary = {}
    for name in MC_EXERCISES:
        per_seed = [read_json(exercise_output(name, s, "mc_metrics.json")) for s in params.seeds]
        means = {
            key: statistics.fmean(m[key] for m in per_seed)
            for base, _ in CALIBRATION_METRICS
            for key in (base, f"mc_{base}")
        }
        summary[name] = Calibration(means, _verdict(means))
    return summary


def _verdict(means: dict[str, float]) -> str:
    better = [label for key, label in CALIBRATION_METRICS if means[f"mc_{key}"] < means[key]]
    worse = [label for key, label in CALIBRATION_METRICS if means[f"mc_{key}"] > means[key]]
    if not better and not worse:
        return "MC Dropout left NLL, Brier and ECE unchanged"
    if not worse:
        return f"MC Dropout improved calibration: {_words(better)} lower"
    if not better:
        return f"MC Dropout made calibration worse: {_words(worse)} higher"
    return f"mixed: MC Dropout lowered {', '.join(better)} and raised {', '.join(worse)}"


def _words(items: list[str]) -> str:
    return ", ".join(items[:-1]) + f" and {items[-1]}" if len(items) > 1 else "".join(items)


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
        for key, want in params.reference.get(name, {}).items():
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


def describe_sources(sources: dict[str, dict]) -> str:
    return "; ".join(
        f"{name} from {info['source']} ({info['train_samples']} train, "
        f"{info['test_samples']} test{', synthetic' if info['synthetic'] else ''})"
        for name, info in sources.items()
    )
