"""Fit a compiled model as an exercise's params say, and evaluate it on the test slice."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from keras_exercises.models import build_model, build_optimizer, split_at_embedding
from keras_exercises.params import Exercise
from keras_exercises.runtime.errors import deferred_signals, stop_requested

# Batches per call into TensorFlow. The math and the batch order are unchanged (the
# same losses, bit for bit); what goes is Python's per-batch overhead, about a second per
# run of these small models. Callbacks still see every epoch; StopOnSignal waits at most
# this many batches.
STEPS_PER_EXECUTION = 32


@dataclass
class TrainResult:
    model: keras.Model
    history: dict[str, list[float]]  # per epoch: loss, accuracy, val_* or test curve
    best_epoch: int  # 1-based epoch whose weights the model holds
    test_loss: float
    test_accuracy: float
    test_probabilities: np.ndarray


def train_exercise(
    ex: Exercise,
    data: dict[str, np.ndarray],
    embeddings: dict[str, np.ndarray] | None = None,
    extra_callbacks: tuple[keras.callbacks.Callback, ...] = (),
    head_seed: int | None = None,
) -> TrainResult:
    """Build, fit and evaluate; the caller has seeded the process.

    With `embeddings` (the frozen base's output for x_train and x_test) only the head runs
    during training; its layers are the model's own, so the model returned is complete and
    equal, up to floating-point noise, to one trained end to end on the images.
    """
    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    model = build_model(
        ex.model, x_train.shape[1:], augment=ex.training.augment, head_seed=head_seed
    )
    trained = model
    if embeddings is not None:
        _, trained = split_at_embedding(model)
        x_train, x_test = embeddings["train"], embeddings["test"]
    trained.compile(
        optimizer=build_optimizer(ex.optimizer),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    training = ex.training
    callbacks: list[keras.callbacks.Callback] = []
    stopper = None
    if training.early_stopping:
        stopper = keras.callbacks.EarlyStopping(
            monitor=training.early_stopping.monitor,
            patience=training.early_stopping.patience,
            restore_best_weights=training.early_stopping.restore_best_weights,
        )
        callbacks.append(stopper)
    # Without validation data, Keras's validation pass records the test loss per epoch for
    # the curves. Only recorded: early stopping needs real validation data (params check),
    # so no stopping or choice of weights is made on the test set.
    test_curve = not (training.validation_split > 0 or training.validate_on_test)
    callbacks += [StopOnSignal(), *extra_callbacks]
    # Signals wait for a batch boundary; after a stop the block's end exits the process.
    with deferred_signals():
        fit = trained.fit(
            x_train,
            y_train,
            epochs=training.epochs,
            batch_size=training.batch_size,
            validation_split=training.validation_split,
            validation_data=((x_test, y_test) if training.validate_on_test or test_curve else None),
            callbacks=callbacks,
            verbose=2,
        )
        if not stop_requested():
            probabilities = trained.predict(x_test, batch_size=256, verbose=0)
    history = {
        (k.replace("val_", "epoch_test_") if test_curve else k): [float(v) for v in values]
        for k, values in fit.history.items()
    }
    epochs_run = len(history["loss"])
    best_epoch = epochs_run
    if stopper is not None and stopper.restore_best_weights and stopper.best_weights is not None:
        best_epoch = stopper.best_epoch + 1
    # Both from the predictions (one pass over the test set, not two): the accuracy is an
    # exact fraction, the loss is Keras's own loss function over all test samples at once.
    test_accuracy = float((probabilities.argmax(axis=1) == y_test).mean())
    test_loss = np.mean(keras.losses.sparse_categorical_crossentropy(y_test, probabilities))
    return TrainResult(model, history, best_epoch, float(test_loss), test_accuracy, probabilities)


class StopOnSignal(keras.callbacks.Callback):
    """End training once SIGINT or SIGTERM has arrived, at the end of the current call into
    TensorFlow (at most STEPS_PER_EXECUTION batches)."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if stop_requested():
            self.model.stop_training = True
