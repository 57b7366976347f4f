"""The one place randomness is pinned."""

from __future__ import annotations


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's kernels deterministic.

    Called once per process, before any layer is built: Keras derives every layer's
    initializer and dropout seeds from this global seed in construction order.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
