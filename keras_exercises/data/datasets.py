"""The three datasets as uint8 arrays: download them, check them, and cut and scale the
slices an exercise uses. Mirrors (offline copies) are in `mirror.py`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_exercises.runtime.atomic import atomic_path
from keras_exercises.runtime.errors import PipelineError

IMAGE_SHAPES = {"mnist": (28, 28), "cifar10": (32, 32, 3), "svhn_cropped": (32, 32, 3)}
KEYS = ("x_train", "y_train", "x_test", "y_test")
# optional string array in a mirror file saying what it is ("synthetic stand-in ...")
DESCRIPTION = "description"
NUM_CLASSES = 10
Arrays = dict[str, np.ndarray]


def check_arrays(arrays: Arrays, dataset: str, source: str) -> Arrays:
    """Refuse anything that is not uint8 images of the dataset's shape with labels 0-9."""
    shape = IMAGE_SHAPES[dataset]
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        problem = None
        if x.dtype != np.uint8 or y.dtype.kind not in "iu":
            problem = f"x_{split} must be uint8 and y_{split} integer, got {x.dtype} and {y.dtype}"
        elif x.shape[1:] != shape:
            problem = f"x_{split} must have shape (N, {', '.join(map(str, shape))}), got {x.shape}"
        elif y.shape != (len(x),):
            problem = f"y_{split} must have shape ({len(x)},) to match x_{split}, got {y.shape}"
        elif len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
            problem = f"y_{split} must hold class ids 0-9, got {y.min()}..{y.max()}"
        if problem:
            raise PipelineError(f"{source} is malformed for {dataset}: {problem}.")
    return {k: v.astype(np.uint8) if k in ("y_train", "y_test") else v for k, v in arrays.items()}


def provenance(arrays: Arrays, source: str) -> dict:
    """What a raw data file holds and where it came from, for the report."""
    description = str(arrays[DESCRIPTION]) if DESCRIPTION in arrays else None
    return {
        "source": source,
        "train_samples": len(arrays["x_train"]),
        "test_samples": len(arrays["x_test"]),
        "synthetic": bool(description and description.startswith("synthetic")),
        "description": description,
    }


def save_arrays(path: str | Path, arrays: Arrays) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def load_arrays(path: str | Path, what: str) -> Arrays:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path} is missing: it is made by the {what} stage; run `dvc repro`.")
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def prepare(raw: Arrays, n_train: int, n_test: int, dataset: str) -> Arrays:
    """First n_train / n_test samples, pixels as float32 in [0, 1], a channel axis always."""
    for split, n in (("train", n_train), ("test", n_test)):
        have = len(raw[f"x_{split}"])
        if have < n:
            raise PipelineError(
                f"{dataset} holds {have} {split} samples but n_{split} asks for {n}. Lower "
                f"n_{split} to at most {have}, or use a mirror that holds more."
            )
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = raw[f"x_{split}"][:n].astype(np.float32) / 255.0
        out[f"x_{split}"] = x[..., np.newaxis] if x.ndim == 3 else x
        out[f"y_{split}"] = raw[f"y_{split}"][:n].astype(np.int64)
    return out
