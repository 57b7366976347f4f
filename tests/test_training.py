"""Training shortcuts taken for speed change no number."""

import keras
import numpy as np
import pytest

from keras_exercises import training
from keras_exercises.data.datasets import prepare
from keras_exercises.data.mirror import synthetic_dataset
from keras_exercises.params import Params
from keras_exercises.runtime.seeding import set_seed
from keras_exercises.training import train_exercise
from tests.conftest import shrink


def small_exercise(real_params, name: str, batch_size: int):
    small = shrink(real_params, None)
    small["exercises"][name]["training"]["batch_size"] = batch_size
    return getattr(Params.model_validate(small).exercises, name)


@pytest.mark.parametrize(
    ("name", "dataset"),
    [
        ("ex3", "mnist"),  # alpha dropout + early stopping
        # CNN + test curve; 12 s of graph building, in the full suite (the fast tier's 90 s)
        pytest.param("ex6", "svhn_cropped", marks=pytest.mark.slow),
    ],
)
def test_many_batches_per_call_give_the_same_training_bit_for_bit(
    real_params, monkeypatch, name, dataset
):
    ex = small_exercise(real_params, name, batch_size=4)
    data = prepare(synthetic_dataset(dataset, 200, 20), 200, 20, dataset)
    # 160 or 200 training samples at batch 4: 40 or 50 batches, so more than one call per epoch
    assert len(data["x_train"]) // 4 > training.STEPS_PER_EXECUTION > 1

    set_seed(42)
    batched = train_exercise(ex, data)
    monkeypatch.setattr(training, "STEPS_PER_EXECUTION", 1)
    set_seed(42)
    one_by_one = train_exercise(ex, data)

    assert batched.history == one_by_one.history
    np.testing.assert_array_equal(batched.test_probabilities, one_by_one.test_probabilities)
    for mine, theirs in zip(batched.model.weights, one_by_one.model.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_test_loss_from_the_predictions_is_what_keras_evaluate_reports(real_params):
    ex = small_exercise(real_params, "ex1", batch_size=8)
    data = prepare(synthetic_dataset("mnist", 60, 30), 60, 30, "mnist")
    set_seed(42)
    result = train_exercise(ex, data)

    loss, accuracy = result.model.evaluate(data["x_test"], data["y_test"], verbose=0)
    assert result.test_loss == pytest.approx(loss, rel=1e-5)
    assert result.test_accuracy == pytest.approx(accuracy, abs=1e-6)
    assert isinstance(result.model, keras.Model)
