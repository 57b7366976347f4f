"""One set of builders for the six exercises, driven entirely by params."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from keras_exercises.data.datasets import NUM_CLASSES
from keras_exercises.params import CnnModel, DenseModel, MobileNetV2Model, Optimizer
from keras_exercises.runtime.errors import PipelineError
from keras_exercises.runtime.paths import from_project
from keras_exercises.runtime.progress import progress

if TYPE_CHECKING:
    import keras
    import numpy as np

ModelSpec = DenseModel | CnnModel | MobileNetV2Model


EMBEDDING = "embedding"  # the layer whose output a frozen base's head is trained on


def build_model(
    spec: ModelSpec,
    input_shape: tuple[int, ...],
    augment: bool = False,
    head_seed: int | None = None,
) -> keras.Model:
    """The exercise's network for inputs of `input_shape` (one image, channels last).

    With `head_seed`, the layers after a MobileNetV2 base draw their weights from that seed
    instead of continuing the process's sequence: every training seed then shares the base
    whose embeddings were computed once, and still gets a head of its own.
    """
    import keras

    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.RandomFlip("horizontal")(inputs) if augment else inputs
    if spec.kind == "dense":
        x = keras.layers.Flatten()(x)
        x = _hidden_dense(x, spec, spec.hidden_units)
    elif spec.kind == "cnn":
        for filters_of_block in spec.conv_blocks:
            for filters in filters_of_block:
                x = keras.layers.Conv2D(
                    filters,
                    spec.kernel_size,
                    padding=spec.padding,
                    activation=spec.activation,
                    kernel_initializer=spec.initializer,
                )(x)
            x = keras.layers.MaxPooling2D(spec.pool_size)(x)
        x = keras.layers.Flatten()(x)
        x = _hidden_dense(x, spec, spec.dense_units)
    else:
        x = _mobilenet_v2_embedding(x, spec)
        if head_seed is not None:
            keras.utils.set_random_seed(head_seed)
        x = _hidden_dense(x, spec, spec.dense_units)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=spec.kind)


def _hidden_dense(x, spec: ModelSpec, units: list[int]):
    import keras

    dropout_layer = (
        keras.layers.AlphaDropout if spec.dropout_kind == "alpha" else keras.layers.Dropout
    )
    for n in units:
        x = keras.layers.Dense(n, activation=spec.activation, kernel_initializer=spec.initializer)(
            x
        )
        if spec.dropout > 0:
            x = dropout_layer(spec.dropout)(x)
    return x


def _mobilenet_v2_embedding(x, spec: MobileNetV2Model):
    import keras

    size = spec.input_size
    x = keras.layers.Resizing(size, size, interpolation="bilinear")(x)
    if spec.pixel_scaling == "imagenet":
        # what mobilenet_v2.preprocess_input does to [0, 255] pixels, applied to [0, 1] ones
        x = keras.layers.Rescaling(2.0, offset=-1.0)(x)
    weights = spec.weights
    if weights not in (None, "imagenet"):
        weights = str(from_project(weights))
    base = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), include_top=False, weights=weights, alpha=spec.alpha
    )
    base.trainable = spec.fine_tune_base
    # training=False keeps BatchNormalization in inference mode even while the head trains
    # (and while a fine-tuned base trains, as Keras's transfer-learning guide advises)
    x = base(x, training=False)
    return keras.layers.GlobalAveragePooling2D(name=EMBEDDING)(x)


def split_at_embedding(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(image -> embedding, embedding -> probabilities) sharing `model`'s layers and weights,
    so training the head on cached embeddings trains `model` itself."""
    import keras

    embedding = model.get_layer(EMBEDDING)
    to_embedding = keras.Model(model.inputs, embedding.output, name="to_embedding")
    inputs = keras.Input(shape=embedding.output.shape[1:], name=EMBEDDING)
    x = inputs
    for layer in model.layers[model.layers.index(embedding) + 1 :]:
        x = layer(x)
    return to_embedding, keras.Model(inputs, x, name="head")


def embed(to_embedding: keras.Model, images, batch_size: int = 16) -> np.ndarray:
    """Embeddings of `images`, a batch at a time: the 224x224 copies exist one batch at a
    time, never for the whole set. Measured here: 117 images/s at batch 16, 32 or 64, but
    peak memory 1.0, 1.3 and 1.8 GB, so the smallest."""
    import numpy as np
    import tensorflow as tf

    forward = tf.function(lambda batch: to_embedding(batch, training=False))
    batches = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    embedded = []
    with progress(f"embed {len(images)} images", len(images)) as advance:
        for batch in batches:
            embedded.append(forward(batch).numpy())
            advance(len(embedded[-1]))
    return np.concatenate(embedded)


def build_optimizer(spec: Optimizer) -> keras.optimizers.Optimizer:
    import keras

    if spec.name == "sgd":
        return keras.optimizers.SGD(spec.learning_rate, momentum=spec.momentum)
    if spec.name == "rmsprop":
        return keras.optimizers.RMSprop(spec.learning_rate, momentum=spec.momentum)
    optimizer = {"adam": keras.optimizers.Adam, "nadam": keras.optimizers.Nadam}[spec.name]
    return optimizer(spec.learning_rate)


def load_model(path: Path) -> keras.Model:
    """A trained model from its .keras file, or a PipelineError saying how to remake it."""
    import keras

    if not path.is_file():
        raise PipelineError(f"{path} is missing: it is made by the train stage; run `dvc repro`.")
    try:
        # safe_mode refuses models that would run arbitrary code (lambda layers) on load
        return keras.models.load_model(path, safe_mode=True)
    except Exception as exc:
        raise PipelineError(
            f"{path} is not a loadable Keras model ({type(exc).__name__}: {exc}). "
            "Run `dvc repro` to retrain it."
        ) from None
