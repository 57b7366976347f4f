"""How far an answer can be trusted: confidence intervals over the test images, and paired
tests of whether two answers on the same images differ by more than chance.
Resampling goes BATCH resamples at a time: at full size (26,032 SVHN test images) 10,000
resamples at once would take 2 GB.
"""

from __future__ import annotations

import numpy as np

BATCH = 500


def _stats():
    """scipy.stats, imported on first use: it took 0.7 CPU s at the start of every
    `keras-exercises` command (the CLI imports this module), most of which test nothing."""
    from scipy import stats

    return stats


def wilson_interval(accuracy: float, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of an accuracy measured on n test samples.

    scipy's binomtest gives the same for a whole number of correct answers; the mean
    accuracy over several seeds is not one, and its test-sample noise is still that of n
    images, as every seed is scored on the same ones.
    """
    z = _stats().norm.ppf(0.5 + confidence / 2)
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def bootstrap_mean_interval(
    values: np.ndarray, confidence: float, resamples: int, seed: int
) -> tuple[float, float]:
    """BCa bootstrap interval of the mean of per-sample values, resampling the samples."""
    result = _stats().bootstrap(
        (np.asarray(values, dtype=np.float64),),
        np.mean,
        n_resamples=resamples,
        confidence_level=confidence,
        batch=BATCH,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Two-sided p-value of McNemar's exact test: of the samples exactly one model gets
    right, is the split between the two more uneven than fair coin flips would make it?"""
    only_a = int(np.sum(correct_a & ~correct_b))
    only_b = int(np.sum(~correct_a & correct_b))
    if only_a + only_b == 0:
        return 1.0
    return float(_stats().binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_bootstrap(
    values_a: np.ndarray, values_b: np.ndarray, resamples: int, seed: int
) -> float:
    """Two-sided p-value that the means of paired per-sample values differ: resample the
    samples, and count how often the resampled difference strays from the observed one by
    as much as the observed one strays from zero."""
    differences = np.asarray(values_b, np.float64) - np.asarray(values_a, np.float64)
    observed = differences.mean()
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, resamples, BATCH):
        picks = rng.integers(
            0, len(differences), size=(min(BATCH, resamples - start), len(differences))
        )
        resampled = differences[picks].mean(axis=1)
        extreme += int(np.sum(np.abs(resampled - observed) >= abs(observed)))
    return float((1 + extreme) / (1 + resamples))
