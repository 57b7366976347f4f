"""The report's pages, reports/answers.md and reports/report.html, rendered from the Jinja2
templates in keras_exercises/templates/ (HTML autoescaped). This module only arranges the
values of answers.py and comparison.py into the rows and sentences the templates show."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

from keras_exercises.answers import (
    CALIBRATION_METRICS,
    Answer,
    Calibration,
    calibration_summary,
    describe_sources,
    deviations,
)
from keras_exercises.params import EXERCISES, MC_EXERCISES, Params, Statistics
from keras_exercises.questions import BY_ID, QUESTIONS, asked_of
from keras_exercises.runtime.paths import exercise_output
from keras_exercises.tracking.links import links_note

SEEDS_HEADER = ["Question", "Mean", "SD", "Min – max", "Per seed"]
CALIBRATION_HEADER = ["Exercise", "Prediction", "NLL", "Brier", "ECE"]
COMPARISON_HEADER = ["Question", "Seed", "Committed", "Now", "Difference", "p-value", "Verdict"]


@dataclass
class Report:
    """Everything the report shows, for its markdown and its HTML."""

    answers: list[Answer]
    flags: dict[str, list[str]]  # per exercise, its conditions other than the exercise text
    data_source: str
    calibration: dict[str, Calibration]
    statistics: Statistics
    seeds: list[int]
    links: str = ""  # where the run links lead
    comparison: list = field(default_factory=list)  # comparison.Comparison rows
    compared_with: str | None = None  # what the comparison is against, or why there is none

    seeds_header = SEEDS_HEADER
    calibration_header = CALIBRATION_HEADER
    comparison_header = COMPARISON_HEADER

    @property
    def confidence(self) -> str:
        return f"{self.statistics.confidence_level:.0%}"

    @property
    def method(self) -> str:
        seeds = len(self.seeds)
        return (
            f"Each answer is the mean over {seeds} training seed{'s' if seeds > 1 else ''} "
            f"({', '.join(map(str, self.seeds))}). Its {self.confidence} interval is over the "
            "test images: Wilson score for accuracies, a BCa bootstrap of "
            f"{self.statistics.bootstrap_resamples} resamples (seed "
            f"{self.statistics.bootstrap_seed}) for {_not_accuracies()}."
        )

    @staticmethod
    def interval(answer: Answer) -> str:
        kind = answer.question.kind
        return f"{kind.bound(answer.low)} – {kind.bound(answer.high)}"

    @property
    def seeds_cells(self) -> list[list[str]]:
        cells = []
        for a in self.answers:
            kind, values = a.question.kind, a.seeds
            cells.append(
                [
                    a.question.id,
                    kind.precise(a.mean),
                    kind.spread(a.sd),
                    f"{kind.precise(min(values.values()))} – {kind.precise(max(values.values()))}",
                    ", ".join(f"{s}: {kind.precise(v)}" for s, v in values.items()),
                ]
            )
        return cells

    @property
    def calibration_cells(self) -> list[list[str]]:
        return [
            [name, label] + [f"{entry.metrics[prefix + key]:.4f}" for key, _ in CALIBRATION_METRICS]
            for name, entry in self.calibration.items()
            for prefix, label in (("", "dropout off"), ("mc_", "MC Dropout average"))
        ]

    @property
    def comparison_cells(self) -> list[list[str]]:
        cells = []
        for c in self.comparison:
            kind = BY_ID[c.question].kind
            cells.append(
                [
                    c.question,
                    str(c.seed),
                    kind.compared(c.a),
                    kind.compared(c.b),
                    kind.difference(c.difference),
                    "-" if c.p_value is None else f"{c.p_value:.4f}",
                    c.verdict,
                ]
            )
        return cells

    @property
    def comparison_intro(self) -> str:
        if not self.comparison:
            return self.compared_with or "Nothing to compare with."
        return (
            f"Against {self.compared_with}, on the same test images, seed by seed: McNemar's "
            f"exact test for accuracies, a paired bootstrap for {_not_accuracies()}; a "
            "difference is beyond noise only where "
            f"p < {self.statistics.significance_level}. "
            "`keras-exercises compare` gives the same for any two revisions."
        )


def assemble(
    params: Params,
    answers: list[Answer],
    sources: dict[str, dict],
    comparison: list,
    compared_with: str | None,
) -> Report:
    """The report of these answers, with the conditions that differ from the exercise text,
    where the data came from (`sources`: each raw dataset's provenance), MC Dropout's
    calibration and where the run links lead."""
    first_run = next(iter(answers[0].runs.values()))
    return Report(
        answers=answers,
        flags=deviations(params, sources),
        data_source=describe_sources(sources),
        calibration=calibration_summary(params),
        statistics=params.statistics,
        seeds=params.seeds,
        comparison=list(comparison),
        compared_with=compared_with,
        links=links_note(first_run.get("tracking_uri") or "", params.mlflow_ui),
    )


def _not_accuracies() -> str:
    return ", ".join(q.id for q in QUESTIONS if not q.kind.is_accuracy)


def answers_markdown(report: Report) -> str:
    return _environment().get_template("answers.md.j2").render(report=report)


def report_html(report: Report, seeds_figure_path: Path) -> str:
    return (
        _environment()
        .get_template("report.html.j2")
        .render(report=report, figures=_figures(report, seeds_figure_path))
    )


@dataclass(frozen=True)
class Image:
    caption: str
    base64: str


def _image(path: Path, caption: str) -> Image:
    return Image(caption, base64.b64encode(Path(path).read_bytes()).decode())


def _figures(report: Report, seeds_figure_path: Path) -> dict:
    """The seeds' strip plot, then per exercise the first seed's figures."""
    seed = report.seeds[0]
    sections = []
    for name in EXERCISES:
        images = [
            _image(
                exercise_output(name, seed, "evaluation.png"),
                f"{name}, seed {seed}: confusion matrix on the test images and loss per epoch.",
            )
        ]
        if name in MC_EXERCISES:
            images += [
                _image(
                    exercise_output(name, seed, "mc_variance.png"),
                    f"{name}, seed {seed}: per test image, the variance of the MC Dropout passes.",
                ),
                _image(
                    exercise_output(name, seed, "reliability.png"),
                    f"{name}, seed {seed}: reliability diagram, dropout off and MC Dropout "
                    "average.",
                ),
            ]
        sections.append({"heading": f"{name} ({asked_of(name)}), seed {seed}", "images": images})
    seeds = _image(
        seeds_figure_path,
        f"Every seed's answer per question (dots) with the mean and its {report.confidence} "
        "interval (bar).",
    )
    return {"seeds": seeds, "exercises": sections}


def _environment():
    """Templates beside this module; autoescape for HTML only (markdown is not HTML)."""
    from jinja2 import Environment, PackageLoader, select_autoescape
    from markupsafe import Markup, escape

    def code(text: str) -> Markup:
        """Escaped text with its `backticked` parts as <code>."""
        return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))

    def spaceless(text: str) -> Markup:
        """Drop the template's indentation between tags (Django's {% spaceless %});
        escaped values hold no < or >, so no value's own spaces are touched."""
        return Markup(re.sub(r">\s+<", "><", str(text)).strip())

    environment = Environment(
        loader=PackageLoader("keras_exercises", "templates"),
        autoescape=select_autoescape(["html.j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(code=code, spaceless=spaceless)
    environment.globals.update(asked_of=asked_of)
    return environment
