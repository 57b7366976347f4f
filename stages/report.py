"""Stage report: answers to Q1.1-Q6.3 as JSON, a markdown table and an HTML page of figures."""

from __future__ import annotations

from keras_exercises.answers import (
    answers_markdown,
    build_answers,
    describe_sources,
    deviations,
    read_json,
    report_html,
)
from keras_exercises.data.datasets import IMAGE_SHAPES
from keras_exercises.params import load_params
from keras_exercises.runtime.atomic import write_json, write_text
from keras_exercises.runtime.errors import run_stage
from keras_exercises.runtime.paths import REPORTS, raw_provenance


def main(argv: list[str]) -> None:
    params = load_params()
    answers, rows = build_answers(params)
    sources = {name: read_json(raw_provenance(name)) for name in IMAGE_SHAPES}
    flags = deviations(params, sources)
    data_source = describe_sources(sources)
    markdown = answers_markdown(rows, flags, data_source)
    write_text(REPORTS / "report.html", report_html(rows, flags, data_source))
    write_text(REPORTS / "answers.md", markdown)
    write_json(REPORTS / "answers.json", answers)
    print(markdown)


if __name__ == "__main__":
    run_stage(main)
