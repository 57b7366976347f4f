"""Monte Carlo Dropout: keep dropout on at inference and look at the spread of predictions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from keras_exercises.runtime.errors import deferred_signals, stop_requested
from keras_exercises.runtime.progress import progress

if TYPE_CHECKING:
    import keras


def mc_probabilities(model: keras.Model, x: np.ndarray, passes: int, batch_size: int) -> np.ndarray:
    """Softmax outputs of `passes` stochastic forward passes, shape (passes, samples, classes).

    training=True switches dropout on; the models here have no BatchNormalization outside
    the frozen MobileNetV2 base, which its builder pins to inference mode.
    """
    runs = []
    with (
        deferred_signals(),
        progress(f"MC Dropout: {passes} passes over {len(x)} images", passes * len(x)) as advance,
    ):
        for _ in range(passes):
            if stop_requested():
                break
            batches = []
            for i in range(0, len(x), batch_size):
                batches.append(np.asarray(model(x[i : i + batch_size], training=True)))
                advance(len(batches[-1]))
            runs.append(np.concatenate(batches))
    return np.stack(runs)


def summarize(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray | float]:
    """MC accuracy and predictive variance from (passes, samples, classes) probabilities.

    Per-sample variance is the variance across passes, averaged over the classes; its mean
    over the samples is the epistemic uncertainty of Q6.3.
    """
    mean = probabilities.mean(axis=0)
    per_sample_variance = probabilities.var(axis=0).mean(axis=1)
    return {
        "mc_accuracy": float((mean.argmax(axis=1) == labels).mean()),
        "mean_predictive_variance": float(per_sample_variance.mean()),
        "per_sample_variance": per_sample_variance,
        "mc_predictions": mean.argmax(axis=1),
    }
