"""Exercise 4's head trained on cached embeddings equals training end to end."""

import numpy as np
import pytest

from keras_exercises.data.datasets import prepare
from keras_exercises.data.mirror import synthetic_dataset
from keras_exercises.models import build_model, embed, split_at_embedding
from keras_exercises.params import Params
from keras_exercises.runtime.seeding import set_seed
from keras_exercises.training import train_exercise
from tests.conftest import shrink


@pytest.fixture
def ex4(real_params):
    small = shrink(real_params, None)
    small["exercises"]["ex4"]["training"]["batch_size"] = 8
    small["exercises"]["ex4"]["model"]["alpha"] = 0.35  # the same network, a third as wide
    return Params.model_validate(small).exercises.ex4


@pytest.mark.slow  # trains MobileNetV2 end to end: half a minute of graph building
def test_head_on_cached_embeddings_matches_end_to_end(ex4):
    data = prepare(synthetic_dataset("cifar10", 30, 12), 30, 12, "cifar10")
    assert ex4.trains_on_embeddings

    set_seed(42)
    end_to_end = train_exercise(ex4, data)

    set_seed(42)  # as the embed stage does, in its own process
    to_embedding, _ = split_at_embedding(build_model(ex4.model, (32, 32, 3)))
    cached = {
        "train": embed(to_embedding, data["x_train"], batch_size=7),
        "test": embed(to_embedding, data["x_test"], batch_size=7),
    }
    assert cached["train"].shape == (30, 1280)
    set_seed(42)
    from_cache = train_exercise(ex4, data, cached)

    np.testing.assert_allclose(
        from_cache.test_probabilities, end_to_end.test_probabilities, rtol=1e-4, atol=1e-5
    )
    for key in ("loss", "val_loss", "accuracy"):
        np.testing.assert_allclose(from_cache.history[key], end_to_end.history[key], rtol=1e-4)
    for mine, theirs in zip(
        from_cache.model.trainable_weights, end_to_end.model.trainable_weights, strict=True
    ):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5)
    # the returned model is the whole network: it takes images
    whole = from_cache.model.predict(data["x_test"], verbose=0)
    np.testing.assert_allclose(whole, from_cache.test_probabilities, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("section", "key"), [("model", "fine_tune_base"), ("training", "augment")])
def test_params_that_change_embeddings_fall_back_to_end_to_end(real_params, section, key):
    small = shrink(real_params, None)
    small["exercises"]["ex4"][section][key] = True
    assert not Params.model_validate(small).exercises.ex4.trains_on_embeddings
