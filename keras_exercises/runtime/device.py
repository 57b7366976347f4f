"""What TensorFlow trains on, for MLflow runs and timing records."""

from __future__ import annotations


def training_device() -> str:
    """The first GPU's name, or "CPU" when TensorFlow sees none (tensorflow-cpu, no CUDA
    driver, or CUDA_VISIBLE_DEVICES empty). TensorFlow places ops on GPU 0 by default."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    return f"GPU: {name}" + (f" (and {len(gpus) - 1} more)" if len(gpus) > 1 else "")
