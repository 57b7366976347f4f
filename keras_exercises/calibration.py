"""How well predicted probabilities match how often the predictions are right: negative
log-likelihood, Brier score, expected calibration error and the reliability diagram's bins."""

from __future__ import annotations

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss

from keras_exercises.data.datasets import NUM_CLASSES


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int) -> list[dict]:
    """Per non-empty equal-width bin of top-1 confidence: the mean confidence, the accuracy
    and the number of test samples in it."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(float)
    accuracy, mean_confidence = calibration_curve(
        correct, confidence, n_bins=bins, strategy="uniform"
    )
    # calibration_curve gives no counts; these are its bins, by its own rule
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=bins)
    return [
        {"confidence": float(c), "accuracy": float(a), "count": int(n)}
        for c, a, n in zip(mean_confidence, accuracy, counts[counts > 0], strict=True)
    ]


def expected_calibration_error(bins: list[dict]) -> float:
    """The gap between accuracy and confidence, averaged over bins weighted by their size."""
    total = sum(b["count"] for b in bins)
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins))


def calibration_metrics(probabilities: np.ndarray, labels: np.ndarray, bins: int) -> dict:
    """NLL, Brier score (Brier's original multiclass form: squared error summed over the ten
    classes, 0 to 2) and ECE of (samples, classes) probabilities."""
    classes = list(range(NUM_CLASSES))
    return {
        "nll": float(log_loss(labels, probabilities, labels=classes)),
        "brier": float(
            brier_score_loss(labels, probabilities, labels=classes, scale_by_half=False)
        ),
        "ece": expected_calibration_error(reliability_bins(probabilities, labels, bins)),
    }
