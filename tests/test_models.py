"""Each builder gives the architecture its exercise specifies, from the real params."""

import keras
import pytest

from keras_exercises.models import build_model, build_optimizer
from keras_exercises.params import Params
from tests.conftest import shrink


@pytest.fixture(scope="module")
def params(real_params) -> Params:
    return Params.model_validate(real_params)


def layer_summary(model):
    return [(type(layer).__name__, getattr(layer, "units", None)) for layer in model.layers]


def dense_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def test_ex1_dense_elu_he_normal_has_59210_parameters(params):
    model = build_model(params.exercises.ex1.model, (28, 28, 1))
    assert model.count_params() == 59_210
    assert layer_summary(model) == [
        ("InputLayer", None),
        ("Flatten", None),
        ("Dense", 64),
        ("Dense", 64),
        ("Dense", 64),
        ("Dense", 10),
    ]
    *hidden, output = dense_layers(model)
    for layer in hidden:
        assert layer.activation.__name__ == "elu"
        assert type(layer.kernel_initializer).__name__ == "HeNormal"
    assert output.activation.__name__ == "softmax"


def test_ex2_four_dense_256_on_flattened_cifar(params):
    model = build_model(params.exercises.ex2.model, (32, 32, 3))
    assert [layer.units for layer in dense_layers(model)] == [256, 256, 256, 256, 10]
    assert model.layers[1].output.shape == (None, 3072)


def test_ex3_selu_lecun_each_followed_by_alpha_dropout(params):
    model = build_model(params.exercises.ex3.model, (28, 28, 1))
    kinds = [type(layer).__name__ for layer in model.layers[2:]]
    assert kinds == ["Dense", "AlphaDropout"] * 3 + ["Dense"]
    for layer in model.layers:
        if isinstance(layer, keras.layers.AlphaDropout):
            assert layer.rate == pytest.approx(0.1)
    for layer in dense_layers(model)[:-1]:
        assert layer.activation.__name__ == "selu"
        assert type(layer.kernel_initializer).__name__ == "LecunNormal"


def test_ex4_frozen_mobilenet_v2_with_trainable_head(params, real_params):
    spec = Params.model_validate(shrink(real_params, None)).exercises.ex4.model  # weights: null
    model = build_model(spec, (32, 32, 3))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "InputLayer",
        "Resizing",
        "Functional",
        "GlobalAveragePooling2D",
        "Dense",
        "Dropout",
        "Dense",
    ]
    base = model.layers[2]
    assert base.name.startswith("mobilenetv2") and not base.trainable
    assert all(not layer.trainable for layer in base.layers)
    head = 1280 * 128 + 128 + 128 * 10 + 10
    assert sum(w.numpy().size for w in model.trainable_weights) == head
    assert model.layers[5].rate == pytest.approx(0.2)


def test_ex4_imagenet_scaling_is_one_param_away(real_params):
    tweaked = shrink(real_params, None)
    tweaked["exercises"]["ex4"]["model"]["pixel_scaling"] = "imagenet"
    spec = Params.model_validate(tweaked).exercises.ex4.model
    model = build_model(spec, (32, 32, 3))
    rescale = model.layers[2]
    assert isinstance(rescale, keras.layers.Rescaling)
    assert (rescale.scale, rescale.offset) == (2.0, -1.0)


def test_ex5_deeper_cnn(params):
    model = build_model(params.exercises.ex5.model, (32, 32, 3))
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == [
        "Conv2D",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dropout",
        "Dense",
    ]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 32, 64, 64]
    assert all(c.kernel_size == (3, 3) and c.padding == "valid" for c in convs)
    assert all(c.activation.__name__ == "relu" for c in convs)
    assert [d.units for d in dense_layers(model)] == [256, 10]
    assert model.layers[-2].rate == pytest.approx(0.3)


def test_ex6_cnn_with_dropout(params):
    model = build_model(params.exercises.ex6.model, (32, 32, 3))
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == [
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dropout",
        "Dense",
    ]
    assert [d.units for d in dense_layers(model)] == [128, 10]
    assert model.layers[-2].rate == pytest.approx(0.25)
    assert model.count_params() == 315_722


@pytest.mark.parametrize(
    ("exercise", "kind", "learning_rate", "momentum"),
    [("ex1", "Nadam", 0.001, None), ("ex4", "Adam", 0.001, None), ("ex6", "SGD", 0.01, 0.9)],
)
def test_optimizers(params, exercise, kind, learning_rate, momentum):
    optimizer = build_optimizer(getattr(params.exercises, exercise).optimizer)
    assert type(optimizer).__name__ == kind
    assert float(optimizer.learning_rate) == pytest.approx(learning_rate)
    if momentum is not None:
        assert optimizer.momentum == pytest.approx(momentum)
