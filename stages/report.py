"""Stage report: the answers to Q1.1-Q6.3 with their intervals, MC Dropout's calibration and
a paired comparison with the last commit, as JSON, markdown and an HTML page of figures;
each MLflow run gets the answers it gave, with their intervals."""

from __future__ import annotations

import os

from keras_exercises.runtime.errors import run_stage


def main(argv: list[str]) -> None:
    # imported here, not above: the process DVC starts hands the stage to a warm interpreter
    # before main() (run_stage), and would have imported them for nothing (2 s here)
    from keras_exercises.answers import answers_json, build_answers, intervals_json
    from keras_exercises.comparison import last_commit_comparison
    from keras_exercises.data.datasets import IMAGE_SHAPES
    from keras_exercises.params import load_params
    from keras_exercises.plotting import save_figure, seeds_figure
    from keras_exercises.report_pages import answers_markdown, assemble, report_html
    from keras_exercises.runtime.atomic import read_json, write_json, write_text
    from keras_exercises.runtime.paths import REPORTS, raw_provenance
    from keras_exercises.runtime.stage_args import stage_args
    from keras_exercises.tracking import report_runs

    stage_args(argv, "report")
    params = load_params()
    answers = build_answers(params)
    sources = {name: read_json(raw_provenance(name)) for name in IMAGE_SHAPES}
    comparison, compared_with = last_commit_comparison(params.statistics)
    report = assemble(params, answers, sources, comparison, compared_with)
    markdown = answers_markdown(report)
    descriptions = report_runs.run_descriptions(answers, params.statistics.confidence_level)
    # An experiment is a trial: the alias moves when its results are applied and committed
    experiment = os.environ.get("DVC_EXP_NAME")
    # each run in the store its run.json names; one that can't be written to is a note
    for line in report_runs.log_answers(answers, descriptions, move_alias=not experiment):
        print(f"Note: {line}.")
    if experiment:
        print(
            f"Inside DVC experiment {experiment}, the alias `{report_runs.ANSWER_ALIAS}` stays "
            f"where it is. To make this experiment's models the answer: `dvc exp apply "
            f"{experiment}`, commit, then `dvc repro --force --single-item report`."
        )
    save_figure(seeds_figure(answers, params.statistics.confidence_level), REPORTS / "seeds.png")
    write_text(REPORTS / "report.html", report_html(report, REPORTS / "seeds.png"))
    write_text(REPORTS / "answers.md", markdown)
    write_json(REPORTS / "intervals.json", intervals_json(answers))
    write_json(REPORTS / "answers.json", answers_json(answers))
    print(markdown)


if __name__ == "__main__":
    run_stage(main, warm="report")
