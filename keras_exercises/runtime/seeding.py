"""The one place randomness and TensorFlow's runtime (threads, graph rewrites) are pinned."""

from __future__ import annotations


def set_seed(seed: int, threads: int | None = None, rewrite_graphs: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow, make TensorFlow's kernels deterministic and, unless
    `threads` is None (TensorFlow's default: one per core), give them that many threads.

    Called once per process, before any layer is built: Keras derives every layer's
    initializer and dropout seeds from this global seed in construction order. The thread
    count is pinned too because it changes how a kernel splits its sums, and so a
    convolutional network's weights in their last digits. `rewrite_graphs=False`: on a CPU,
    TensorFlow runs each graph as traced, without Grappler's rewrites.
    """
    import keras
    import tensorflow as tf

    if threads is not None:  # before TensorFlow's first op, which fixes them
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    if not rewrite_graphs and not tf.config.list_physical_devices("GPU"):
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
