"""Calibration metrics against hand-computed cases."""

import numpy as np
import pytest

from keras_exercises.calibration import (
    calibration_metrics,
    expected_calibration_error,
    reliability_bins,
)


def one_hot_mix(labels, confidence):
    """Probability `confidence` on the given class, the rest spread over the other nine."""
    probabilities = np.full((len(labels), 10), (1 - confidence) / 9)
    probabilities[np.arange(len(labels)), labels] = confidence
    return probabilities


def test_a_certain_and_right_model_scores_zero_everywhere():
    labels = np.arange(10)
    metrics = calibration_metrics(np.eye(10)[labels], labels, bins=15)
    assert metrics["nll"] == pytest.approx(0, abs=1e-12)
    assert metrics["brier"] == pytest.approx(0)
    assert metrics["ece"] == pytest.approx(0)


def test_hand_computed_nll_brier_and_ece():
    # 4 samples predicted with probability 0.8 on class 0; 3 of them are class 0
    labels = np.array([0, 0, 0, 1])
    probabilities = one_hot_mix(np.zeros(4, int), 0.8)
    rest = 0.2 / 9
    metrics = calibration_metrics(probabilities, labels, bins=15)
    # NLL: three times -log 0.8, once -log(0.2/9)
    assert metrics["nll"] == pytest.approx((3 * -np.log(0.8) - np.log(rest)) / 4)
    # Brier (summed over classes): right ones (0.2^2 + 9 rest^2); the wrong one
    # 0.8^2 + (1 - rest)^2 + 8 rest^2
    right = 0.2**2 + 9 * rest**2
    wrong = 0.8**2 + (1 - rest) ** 2 + 8 * rest**2
    assert metrics["brier"] == pytest.approx((3 * right + wrong) / 4)
    # ECE: one bin at confidence 0.8 with accuracy 0.75
    assert metrics["ece"] == pytest.approx(0.05)


def test_ece_weighs_bins_by_their_size():
    # bin near 0.95: 2 samples, both right (gap 0.05); bin near 0.55: 2 samples, 1 right (0.05)
    # bin near 0.35: 4 samples, none right (gap 0.35)
    labels = np.array([0, 0, 0, 1, 2, 2, 2, 2])
    probabilities = np.vstack(
        [one_hot_mix([0, 0], 0.95), one_hot_mix([0, 0], 0.55), one_hot_mix([0, 0, 0, 0], 0.35)]
    )
    bins = reliability_bins(probabilities, labels, bins=15)
    assert [b["count"] for b in bins] == [4, 2, 2]
    assert [b["accuracy"] for b in bins] == [0.0, 0.5, 1.0]
    assert [b["confidence"] for b in bins] == pytest.approx([0.35, 0.55, 0.95])
    assert expected_calibration_error(bins) == pytest.approx((4 * 0.35 + 2 * 0.05 + 2 * 0.05) / 8)


def test_over_confidence_raises_ece_and_nll():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1000)
    right = rng.random(1000) < 0.7
    predicted = np.where(right, labels, (labels + 1) % 10)
    honest = calibration_metrics(one_hot_mix(predicted, 0.7), labels, bins=15)
    sure = calibration_metrics(one_hot_mix(predicted, 0.99), labels, bins=15)
    assert honest["ece"] < 0.05 < sure["ece"]
    assert honest["nll"] < sure["nll"]
    assert honest["brier"] < sure["brier"]
