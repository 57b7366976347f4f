"""The baseline: the six exercises as the course's notebooks run them.

One Python process, each exercise in turn, written straight from EXERCISES.md with plain
Keras: no DVC, no MLflow, no caching. MobileNetV2 sees every image in every epoch, and the
whole training set is resized to 224x224 up front, as the notebooks do. It reads the same
params.yaml values and the same mirror files as the pipeline, so both do the same work:
the same training, the per-exercise figure EXERCISES.md asks for (confusion matrix beside
the loss curves, drawn by the pipeline's own plotting code), the MC Dropout histograms,
and for exercises 5 and 6 a pass over the test set after every epoch (the notebooks passed
it as validation data; the pipeline records the same curve).

    python -m benchmarks.baseline PARAMS_YAML MIRROR_DIR OUT_DIR
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import yaml

from keras_exercises.data.datasets import prepare
from keras_exercises.data.mirror import read_mirror
from keras_exercises.mc_dropout import mc_probabilities, summarize
from keras_exercises.plotting import evaluation_figure, save_figure, variance_histogram


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(mirror: Path, dataset: str, n_train: int, n_test: int):
    """The first samples as float32 in [0, 1], read and checked as the pipeline does."""
    data = prepare(read_mirror(mirror, dataset), n_train, n_test, dataset)
    return data["x_train"], data["y_train"], data["x_test"], data["y_test"]


def mc_dropout(model, x, y, passes: int, figure_path: Path):
    """Q3.2 / Q6.2-6.3: all test images in one call per pass, as the notebooks do."""
    summary = summarize(mc_probabilities(model, x, passes, batch_size=len(x)), y)
    variance = summary["per_sample_variance"]
    save_figure(variance_histogram(variance, "MC Dropout predictive variance"), figure_path)
    return summary["mc_accuracy"], summary["mean_predictive_variance"]


def evaluate(model, fit, xt, yt, figure_path: Path) -> float:
    """Test accuracy, and the exercise's figure: confusion matrix beside the loss curves."""
    from sklearn.metrics import confusion_matrix

    # one pass over the test set, as the pipeline makes (notebooks often make two:
    # evaluate for the accuracy, predict for the matrix)
    predicted = model.predict(xt, verbose=0).argmax(axis=1)
    accuracy = float((predicted == yt).mean())
    history = fit.history
    figure = evaluation_figure(
        confusion_matrix(yt, predicted, labels=range(10)), history, len(history["loss"]), ""
    )
    save_figure(figure, figure_path)
    return accuracy


def run(params: dict, mirror: Path, figures: Path) -> dict:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(params["seeds"][0])
    tf.config.experimental.enable_op_determinism()
    ex = params["exercises"]
    early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    results = {}

    def timed(name, work):
        start = time.perf_counter()
        answer = work()
        results[name] = {
            "seconds": time.perf_counter() - start,
            "peak_rss_mb_so_far": peak_rss_mb(),
            "answer": answer,
        }

    def dense_exercise(name, dataset, units, activation, init, n_layers, batch, dropout=None):
        """Exercises 1-3: a flattened dense net, Nadam, early stopping on a 20% split."""
        p = ex[name]
        x, y, xt, yt = load(mirror, dataset, p["n_train"], p["n_test"])
        x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
        model = keras.Sequential([keras.layers.Input(x.shape[1:])])
        for _ in range(n_layers):
            model.add(keras.layers.Dense(units, activation=activation, kernel_initializer=init))
            if dropout:
                model.add(keras.layers.AlphaDropout(dropout))
        model.add(keras.layers.Dense(10, activation="softmax"))
        model.compile(
            optimizer=keras.optimizers.Nadam(0.001),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        fit = model.fit(
            x,
            y,
            epochs=p["training"]["epochs"],
            batch_size=batch,
            validation_split=0.2,
            callbacks=[early],
            verbose=0,
        )
        return model, fit, xt, yt

    def ex1():
        model, fit, xt, yt = dense_exercise("ex1", "mnist", 64, "elu", "he_normal", 3, 32)
        return evaluate(model, fit, xt, yt, figures / "ex1.png")

    def ex2():
        model, fit, xt, yt = dense_exercise("ex2", "cifar10", 256, "elu", "he_normal", 4, 128)
        return evaluate(model, fit, xt, yt, figures / "ex2.png")

    def ex3():
        model, fit, xt, yt = dense_exercise("ex3", "mnist", 64, "selu", "lecun_normal", 3, 32, 0.1)
        passes = ex["ex3"]["mc"]["passes"]
        return [
            evaluate(model, fit, xt, yt, figures / "ex3.png"),
            *mc_dropout(model, xt, yt, passes, figures / "ex3_mc.png"),
        ]

    def ex4():
        p = ex["ex4"]
        size = p["model"]["input_size"]
        x, y, xt, yt = load(mirror, "cifar10", p["n_train"], p["n_test"])
        x = tf.image.resize(x, (size, size)).numpy()  # the whole set at 224x224, as notebooks do
        xt = tf.image.resize(xt, (size, size)).numpy()
        base = keras.applications.MobileNetV2(
            input_shape=(size, size, 3), include_top=False, weights=p["model"]["weights"]
        )
        base.trainable = False
        inputs = keras.Input((size, size, 3))
        h = keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
        h = keras.layers.Dropout(0.2)(keras.layers.Dense(128, activation="relu")(h))
        model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
        model.compile(
            optimizer=keras.optimizers.Adam(0.001),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        fit = model.fit(
            x, y, epochs=p["training"]["epochs"], batch_size=32, validation_split=0.2, verbose=0
        )
        return evaluate(model, fit, xt, yt, figures / "ex4.png")

    def cnn(blocks, dense, dropout):
        model = keras.Sequential([keras.layers.Input((32, 32, 3))])
        for filters in blocks:
            for f in filters:
                model.add(keras.layers.Conv2D(f, 3, activation="relu"))
            model.add(keras.layers.MaxPooling2D(2))
        model.add(keras.layers.Flatten())
        model.add(keras.layers.Dense(dense, activation="relu"))
        model.add(keras.layers.Dropout(dropout))
        model.add(keras.layers.Dense(10, activation="softmax"))
        return model

    def ex5():
        p = ex["ex5"]
        x, y, xt, yt = load(mirror, "svhn_cropped", p["n_train"], p["n_test"])
        model = cnn([[32, 32], [64, 64]], 256, 0.3)
        model.compile(
            optimizer=keras.optimizers.Adam(0.001),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        fit = model.fit(
            x, y, epochs=p["training"]["epochs"], batch_size=32, validation_data=(xt, yt), verbose=0
        )
        return evaluate(model, fit, xt, yt, figures / "ex5.png")

    def ex6():
        p = ex["ex6"]
        x, y, xt, yt = load(mirror, "svhn_cropped", p["n_train"], p["n_test"])
        model = cnn([[32], [64]], 128, 0.25)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        fit = model.fit(
            x, y, epochs=p["training"]["epochs"], batch_size=32, validation_data=(xt, yt), verbose=0
        )
        return [
            evaluate(model, fit, xt, yt, figures / "ex6.png"),
            *mc_dropout(model, xt, yt, p["mc"]["passes"], figures / "ex6_mc.png"),
        ]

    for name, work in (
        ("ex1", ex1),
        ("ex2", ex2),
        ("ex3", ex3),
        ("ex4", ex4),
        ("ex5", ex5),
        ("ex6", ex6),
    ):
        timed(name, work)
    return results


def main() -> None:
    started = time.perf_counter()
    params_path, mirror, out = map(Path, sys.argv[1:4])
    (out / "figures").mkdir(parents=True, exist_ok=True)
    results = run(yaml.safe_load(params_path.read_text()), mirror, out / "figures")
    results["total"] = {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}
    (out / "baseline.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
