import keras
import numpy as np
import pytest

from keras_exercises.mc_dropout import mc_probabilities, summarize
from keras_exercises.runtime.seeding import set_seed


def test_summary_math_on_known_numbers():
    # 2 passes, 2 samples, 2 classes
    probabilities = np.array(
        [
            [[0.9, 0.1], [0.2, 0.8]],
            [[0.7, 0.3], [0.6, 0.4]],
        ]
    )
    summary = summarize(probabilities, labels=np.array([0, 0]))
    # means: sample 0 -> (0.8, 0.2) -> class 0 right; sample 1 -> (0.4, 0.6) -> class 1 wrong
    assert summary["mc_accuracy"] == 0.5
    # variance across passes: sample 0 -> (0.01, 0.01); sample 1 -> (0.04, 0.04)
    np.testing.assert_allclose(summary["per_sample_variance"], [0.01, 0.04])
    assert summary["mean_predictive_variance"] == pytest.approx(0.025)
    np.testing.assert_array_equal(summary["mc_predictions"], [0, 1])


def test_identical_passes_have_zero_variance():
    probabilities = np.tile(np.array([[[0.3, 0.7]]]), (5, 4, 1))
    summary = summarize(probabilities, labels=np.ones(4, dtype=int))
    assert summary["mc_accuracy"] == 1.0
    assert summary["mean_predictive_variance"] == 0.0


def tiny_dropout_model():
    inputs = keras.Input((8,))
    x = keras.layers.Dense(16, activation="relu")(inputs)
    x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def test_passes_are_stochastic_batched_and_seeded():
    x = np.random.default_rng(0).normal(size=(10, 8)).astype("float32")
    set_seed(7)
    first = mc_probabilities(tiny_dropout_model(), x, passes=4, batch_size=3)
    set_seed(7)
    second = mc_probabilities(tiny_dropout_model(), x, passes=4, batch_size=3)
    assert first.shape == (4, 10, 3)
    np.testing.assert_allclose(first.sum(axis=2), 1.0, rtol=1e-5)
    assert first.var(axis=0).mean() > 0  # dropout was active
    np.testing.assert_array_equal(first, second)
