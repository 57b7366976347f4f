"""What a sweep ends with: each grid point's result, its answers compared with the
launching commit's, and the table of them all."""

from __future__ import annotations

from dataclasses import dataclass, field

from keras_exercises.runtime.errors import PipelineError
from keras_exercises.sweep.grid import GridPoint


@dataclass
class PointResult:
    point: GridPoint
    status: str  # "done" or "failed"
    message: str = ""
    note: str = ""  # which seeds only one of the point and the launching commit ran
    answers: dict[str, float] = field(default_factory=dict)
    # question -> (answer less the launching commit's, beyond noise in a shared seed's test)
    differences: dict[str, tuple[float | None, bool]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            **self.point.as_dict(),
            "status": self.status,
            "message": self.message,
            "note": self.note,
            "answers": self.answers,
            "differences": {
                q: {"difference": d, "beyond_noise": beyond}
                for q, (d, beyond) in self.differences.items()
            },
        }


def compare_with_launch(result: PointResult, statistics, launch, experiment=None) -> None:
    """The point's answers and, per question, its difference from the answer of `launch`
    (the launching commit's Revision, read once for all points), with whether a paired test
    calls any shared seed's difference beyond noise. `experiment`: the point's Revision,
    where it is open already."""
    import json

    from keras_exercises.comparison import Revision, compare, unpaired_seeds

    experiment = experiment or Revision(result.point.name)
    answers, launched = experiment.read("reports/answers.json"), launch.read("reports/answers.json")
    result.answers = json.loads(answers) if answers else {}
    if not launched:
        return  # the launching commit has no results to compare with
    try:
        rows = compare(launch, experiment, statistics)
    except PipelineError:
        rows = []
    result.differences = differences(result.answers, json.loads(launched), rows)
    result.note = unpaired_seeds(launch, experiment)


def differences(answers: dict, launched: dict, rows: list) -> dict:
    """What a reader of the table expects: the answer less the launching commit's answer
    (each the mean over its own seeds, as its report gives it), and whether the paired test
    found any seed both ran beyond noise."""
    return {
        question: (
            answer - launched[question],
            any(r.question == question and r.verdict == "beyond noise" for r in rows),
        )
        for question, answer in answers.items()
        if question in launched
    }


def results_table(results: list[PointResult]) -> str:
    """Each grid point's overrides and answers as the report prints them, each followed by
    its difference from the launching commit's in brackets, `*` where it is beyond noise."""
    from keras_exercises.questions import BY_ID

    questions = sorted({q for r in results for q in r.answers})
    width = 20
    lines = [f"{'experiment':16} {'status':7} " + " ".join(f"{q:>{width}}" for q in questions)]
    for result in results:
        cells = []
        for question in questions:
            kind = BY_ID[question].kind
            answer = result.answers.get(question)
            difference, beyond = result.differences.get(question, (None, False))
            text = "-" if answer is None else kind.answer(answer)
            if difference is not None:
                text += f" ({kind.difference(difference)}{'*' if beyond else ''})"
            cells.append(f"{text:>{width}}")
        lines.append(f"{result.point.name:16} {result.status:7} " + " ".join(cells))
        lines.append(f"{'':16} {' '.join(result.point.overrides) or '(the current params)'}")
        if result.note:
            lines.append(f"{'':16} {result.note}; the paired test (*) covers the seeds both ran")
        if result.message:
            lines.extend(f"{'':16} {line}" for line in result.message.splitlines())
    lines.append(
        "(+/-): the answer less the launching commit's, each the mean over its own seeds; "
        "* beyond noise in a paired test on a seed both ran "
        "(`keras-exercises compare HEAD <experiment>`)"
    )
    return "\n".join(lines)
