"""The questions Q1.1-Q6.3: which output answers each, and what kind of number it is.

A question's kind (an accuracy, or a mean predictive variance) decides everything that
differs between them: what each test image contributes, the interval, the paired test
and how the number is printed. Nothing else branches on a question's id.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Kind:
    """How a kind of answer is measured per test image, tested and printed."""

    name: str
    paired_test: str
    answer_digits: int  # answers.json: accuracies are exact fractions of the test slice
    interval_digits: int

    def per_image(self, predictions_csv: str) -> np.ndarray:
        """Per test image: right or wrong (accuracies), or its predictive variance."""
        rows = list(csv.DictReader(io.StringIO(predictions_csv)))
        if self.is_accuracy:
            return np.array([r["actual"] == r["predicted"] for r in rows])
        return np.array([float(r["variance"]) for r in rows])

    @property
    def is_accuracy(self) -> bool:
        return self.name == "accuracy"

    def answer(self, value: float) -> str:
        """As the report's answer column gives it."""
        return f"{value:.2%}" if self.is_accuracy else f"{value:.3f}"

    def precise(self, value: float) -> str:
        """With the digits that tell seeds apart."""
        return f"{value:.2%}" if self.is_accuracy else f"{value:.5f}"

    def bound(self, value: float) -> str:
        """One end of an interval."""
        return f"{value:.1%}" if self.is_accuracy else f"{value:.5f}"

    def spread(self, sd: float | None) -> str:
        if sd is None:
            return "-"
        return f"{sd * 100:.2f} pts" if self.is_accuracy else f"{sd:.5f}"

    def compared(self, value: float | None) -> str:
        """A value in a comparison of two revisions."""
        if value is None:
            return "-"
        return f"{value:.2%}" if self.is_accuracy else f"{value:.4f}"

    def difference(self, value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value * 100:+.1f} pts" if self.is_accuracy else f"{value:+.4f}"


ACCURACY = Kind("accuracy", "McNemar exact", answer_digits=4, interval_digits=4)
# Q6.3 is asked to three decimals
VARIANCE = Kind("variance", "paired bootstrap", answer_digits=3, interval_digits=6)


@dataclass(frozen=True)
class Question:
    id: str
    exercise: str
    source: str  # metrics file in outputs/<exercise>/seed<seed>/
    key: str
    phrase: str  # what the number answers, as the exercise asks it
    kind: Kind = ACCURACY

    @property
    def samples(self) -> str:
        """The per-test-image file behind the answer, for intervals and paired tests."""
        return "mc_predictions.csv" if self.source == "mc_metrics.json" else "predictions.csv"


def _accuracy(qid: str, exercise: str, phrase: str, mc: bool = False) -> Question:
    if mc:
        return Question(qid, exercise, "mc_metrics.json", "mc_accuracy", phrase)
    return Question(qid, exercise, "metrics.json", "test_accuracy", phrase)


QUESTIONS = (
    _accuracy("Q1.1", "ex1", "Test accuracy, dense ELU net on MNIST"),
    _accuracy("Q2.1", "ex2", "Test accuracy, dense ELU net on CIFAR-10"),
    _accuracy("Q3.1", "ex3", "Test accuracy, SELU + Alpha Dropout net (dropout off)"),
    _accuracy("Q3.2", "ex3", "MC Dropout accuracy of the same net, no retraining", mc=True),
    _accuracy("Q4.1", "ex4", "Test accuracy, frozen MobileNetV2 + new head on CIFAR-10"),
    _accuracy("Q5.1", "ex5", "Test accuracy, deeper CNN on SVHN"),
    _accuracy("Q6.1", "ex6", "Test accuracy, SGD CNN on SVHN (dropout off)"),
    _accuracy("Q6.2", "ex6", "MC Dropout accuracy of the SGD CNN", mc=True),
    Question(
        "Q6.3",
        "ex6",
        "mc_metrics.json",
        "mean_predictive_variance",
        "Epistemic uncertainty: variance across MC passes, mean over classes and test samples",
        VARIANCE,
    ),
)
BY_ID = {q.id: q for q in QUESTIONS}


def asked_of(exercise: str) -> str:
    """The ids of the questions an exercise answers: "Q3.1, Q3.2"."""
    return ", ".join(q.id for q in QUESTIONS if q.exercise == exercise)
