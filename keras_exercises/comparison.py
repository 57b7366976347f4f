"""Two revisions' answers side by side, each difference put to a paired test on the same
test images: McNemar's exact test for accuracies, a paired bootstrap for the mean
predictive variance (Q6.3).

A revision is a git commit, branch or tag, or a DVC experiment name, read through DVC's
file system without checking anything out; None is the workspace.
"""

from __future__ import annotations

import csv
import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from keras_exercises.params import Statistics
from keras_exercises.questions import BY_ID, QUESTIONS, Question
from keras_exercises.runtime.errors import PipelineError
from keras_exercises.runtime.paths import exercise_output, prepared_data
from keras_exercises.significance import mcnemar_exact, paired_bootstrap

WORKSPACE = "workspace"


class Revision:
    """Files of one revision of the project: committed, an experiment's, or the workspace."""

    def __init__(self, rev: str | None, repo: str | Path = ".", opened=None):
        """`opened`: a DVC Repo already at the revision, read as it is."""
        self.rev = rev
        self.label = rev or WORKSPACE
        self._fs = None
        self._read: dict[str, str | None] = {}  # each file is read once
        self._yaml: dict[str, dict] = {}
        if opened is None and rev is None:
            return  # the workspace: plain files
        from dvc.api import DVCFileSystem
        from dvc.exceptions import DvcException

        if opened is not None:
            self._fs = DVCFileSystem(repo=opened)
        else:
            try:
                self._fs = DVCFileSystem(str(repo), rev=rev)
                self._fs.repo  # noqa: B018 (opens the revision: an unknown one fails here)
            except DvcException as exc:
                raise PipelineError(
                    f"cannot read revision {rev!r} ({exc}). Give a git commit, branch or tag, "
                    "or a DVC experiment name (`dvc exp list --all-commits` lists them)."
                ) from None

    def read(self, path: Path | str) -> str | None:
        """The file's text, or None where this revision has no such file."""
        path = Path(path).as_posix()
        if path not in self._read:
            self._read[path] = self._read_uncached(path)
        return self._read[path]

    def _parsed(self, path: str) -> dict:
        """A YAML file's content, parsed once (dvc.lock is asked once per exercise) and by
        libyaml where PyYAML has it: a pipeline's dvc.lock took its pure-Python parser 0.1
        s here, libyaml 0.01 s. Read-only for callers."""
        if path not in self._yaml:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            self._yaml[path] = yaml.load(self.read(path) or "{}", Loader=loader) or {}
        return self._yaml[path]

    def _read_uncached(self, path: str) -> str | None:
        if self._fs is None:
            file = Path(path)
            return file.read_text() if file.is_file() else None
        try:
            return self._fs.read_text(path)
        except (FileNotFoundError, IsADirectoryError):
            return None

    def seeds(self) -> list[int]:
        params = self._parsed("params.yaml")
        return list(params.get("seeds") or [])

    def test_images(self, exercise: str) -> str | None:
        """The DVC hash of the exercise's prepared data, as dvc.lock records it."""
        lock = self._parsed("dvc.lock")
        stage = (lock.get("stages") or {}).get(f"prepare@{exercise}") or {}
        for out in stage.get("outs") or []:
            if out.get("path") == prepared_data(exercise).as_posix():
                return out.get("md5")
        return None

    def per_sample(self, question: Question, seed: int) -> np.ndarray | None:
        """Per test image, what it contributes to the answer (see questions.Kind)."""
        text = self.read(exercise_output(question.exercise, seed, question.samples))
        return None if text is None else question.kind.per_image(text)

    def labels(self, question: Question, seed: int) -> list[str] | None:
        text = self.read(exercise_output(question.exercise, seed, question.samples))
        return None if text is None else [r["actual"] for r in csv.DictReader(io.StringIO(text))]


@dataclass
class Comparison:
    question: str
    seed: int
    a: float | None
    b: float | None
    difference: float | None
    p_value: float | None
    test: str
    verdict: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def compare(a: Revision, b: Revision, statistics: Statistics) -> list[Comparison]:
    """Per question and per seed both revisions ran, both answers and a paired test."""
    seeds = [s for s in a.seeds() if s in b.seeds()]
    rows = []
    for question in QUESTIONS:
        for seed in seeds:
            rows.append(_compare_one(question, seed, a, b, statistics))
    return rows


def _compare_one(
    question: Question, seed: int, a: Revision, b: Revision, statistics: Statistics
) -> Comparison:
    test = question.kind.paired_test
    values_a, values_b = a.per_sample(question, seed), b.per_sample(question, seed)
    if values_a is None or values_b is None:
        missing = a.label if values_a is None else b.label
        return Comparison(
            question.id, seed, None, None, None, None, test, f"no answer in {missing}"
        )
    mean_a, mean_b = float(values_a.mean()), float(values_b.mean())
    images_a, images_b = a.test_images(question.exercise), b.test_images(question.exercise)
    same_images = (images_a == images_b or None in (images_a, images_b)) and a.labels(
        question, seed
    ) == b.labels(question, seed)
    if not same_images:
        return Comparison(
            question.id,
            seed,
            mean_a,
            mean_b,
            mean_b - mean_a,
            None,
            test,
            "different test images: no paired test",
        )
    if question.kind.is_accuracy:
        p_value = mcnemar_exact(values_a, values_b)
    else:
        p_value = paired_bootstrap(
            values_a, values_b, statistics.bootstrap_resamples, statistics.bootstrap_seed
        )
    verdict = "beyond noise" if p_value < statistics.significance_level else "within noise"
    return Comparison(question.id, seed, mean_a, mean_b, mean_b - mean_a, p_value, test, verdict)


def unpaired_seeds(a: Revision, b: Revision) -> str:
    """Which seeds only one of the revisions ran, in words ("" when they ran the same)."""
    only = [
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} only in {rev.label}"
        for rev, other in ((a, b), (b, a))
        if (seeds := [s for s in rev.seeds() if s not in other.seeds()])
    ]
    return "; ".join(only)


def comparison_table(
    rows: list[Comparison], a: str, b: str, significance: float, note: str = ""
) -> str:
    """The rows as a plain-text table, with a first line saying what was compared."""
    seeds = sorted({r.seed for r in rows})
    head = (
        f"{a} (a) against {b} (b), on the same test images, seed by seed "
        f"({len(seeds)} seed{'s' if len(seeds) != 1 else ''}: {', '.join(map(str, seeds))}). "
        f"'beyond noise' where p < {significance}." + (f" Not compared: {note}." if note else "")
    )
    if not rows:
        return head + "\nNo seed was run in both: nothing to compare."
    lines = [
        f"{'question':8} {'seed':>5} {'a':>9} {'b':>9} {'b - a':>10} {'p-value':>8}  test / verdict"
    ]
    for r in rows:
        p = "-" if r.p_value is None else f"{r.p_value:.4f}"
        kind = BY_ID[r.question].kind
        lines.append(
            f"{r.question:8} {r.seed:>5} {kind.compared(r.a):>9} {kind.compared(r.b):>9} "
            f"{kind.difference(r.difference):>10} {p:>8}  {r.test}: {r.verdict}"
        )
    return head + "\n" + "\n".join(lines)


def last_commit_comparison(statistics: Statistics) -> tuple[list[Comparison], str]:
    """The workspace against HEAD, for the report; no rows, and why, when HEAD has no
    answers of its own (a first run, a repository without commits)."""
    from dvc.exceptions import DvcException

    try:
        head = Revision("HEAD")
        commit = _short_commit()
    except (PipelineError, DvcException, subprocess.CalledProcessError) as exc:
        return [], f"No committed answers to compare with ({exc})."
    rows = compare(head, Revision(None), statistics)
    if not rows or all(r.a is None for r in rows):
        return [], f"The last commit ({commit}) has no answers to compare with."
    note = unpaired_seeds(head, Revision(None))
    return rows, f"the last commit ({commit})" + (f" (not compared: {note})" if note else "")


def _short_commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
