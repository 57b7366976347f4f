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
    answers: dict[str, float] = field(default_factory=dict)
    # question -> (answer less the launching commit's, beyond noise in any seed's test)
    differences: dict[str, tuple[float | None, bool]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            **self.point.as_dict(),
            "status": self.status,
            "message": self.message,
            "answers": self.answers,
            "differences": {
                q: {"difference": d, "beyond_noise": beyond}
                for q, (d, beyond) in self.differences.items()
            },
        }


def compare_with_launch(result: PointResult, statistics) -> None:
    """The point's answers, and per question its difference from the launching commit's
    answer with whether a paired test calls any seed's difference beyond noise."""
    import json

    from keras_exercises.comparison import Revision, compare

    experiment = Revision(result.point.name)
    answers = experiment.read("reports/answers.json")
    result.answers = json.loads(answers) if answers else {}
    try:
        rows = compare(Revision("HEAD"), experiment, statistics)
    except PipelineError:
        return  # the launching commit has no results to compare with
    for question in result.answers:
        mine = [row for row in rows if row.question == question and row.difference is not None]
        if mine:
            difference = sum(row.difference for row in mine) / len(mine)
            beyond = any(row.verdict == "beyond noise" for row in mine)
            result.differences[question] = (difference, beyond)


def results_table(results: list[PointResult]) -> str:
    """Each grid point's overrides and answers, each followed by its difference from the
    launching commit in brackets, `*` where it is beyond noise."""
    questions = sorted({q for r in results for q in r.answers})
    lines = [f"{'experiment':16} {'status':7} " + " ".join(f"{q:>18}" for q in questions)]
    for result in results:
        cells = []
        for question in questions:
            answer = result.answers.get(question)
            difference, beyond = result.differences.get(question, (None, False))
            text = "-" if answer is None else f"{answer:.4g}"
            if difference is not None:
                text += f" ({difference:+.3f}{'*' if beyond else ''})"
            cells.append(f"{text:>18}")
        lines.append(f"{result.point.name:16} {result.status:7} " + " ".join(cells))
        lines.append(f"{'':16} {' '.join(result.point.overrides) or '(the current params)'}")
        if result.message:
            lines.extend(f"{'':16} {line}" for line in result.message.splitlines())
    lines.append(
        "(b - a): the difference from the launching commit, the mean over seeds; "
        "* beyond noise in a paired test (`keras-exercises compare HEAD <experiment>`)"
    )
    return "\n".join(lines)


def pull_experiments(git_remote: str, names: list[str]) -> None:
    """Every experiment the nodes pushed, with its outputs, in one `dvc exp pull`."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "dvc", "exp", "pull", git_remote, *names]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        printed = (done.stdout + done.stderr).strip()
        raise PipelineError(f"`dvc exp pull {git_remote} {' '.join(names)}` failed: {printed}")
