"""Get the three datasets as uint8 arrays, and cut and scale the slices an exercise uses."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from stages.atomic import atomic_path
from stages.errors import PipelineError

IMAGE_SHAPES = {"mnist": (28, 28), "cifar10": (32, 32, 3), "svhn_cropped": (32, 32, 3)}
KEYS = ("x_train", "y_train", "x_test", "y_test")
# optional string array in a mirror file saying what it is ("synthetic stand-in ...")
DESCRIPTION = "description"
NUM_CLASSES = 10
Arrays = dict[str, np.ndarray]


def download(dataset: str, base_url: str | None, timeout: float, attempts: int) -> Arrays:
    """The standard loaders' samples, in their order (what "first N" refers to)."""
    from stages import downloads

    x_train, y_train, x_test, y_test = downloads.download(dataset, base_url, timeout, attempts)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return check_arrays(arrays, dataset, f"the {dataset} download")


def read_mirror(mirror: str | Path, dataset: str) -> Arrays:
    path = Path(mirror) / f"{dataset}.npz"
    if not path.is_file():
        raise PipelineError(
            f"data.mirror is {str(mirror)!r} but {path} does not exist. Put {dataset}.npz "
            "there, or set data.mirror to null to download."
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in KEYS if k not in npz.files]
            if missing:
                raise PipelineError(
                    f"{path} lacks the arrays {missing}; it must hold uint8 arrays "
                    f"{', '.join(KEYS)}. Rebuild the file with those names."
                )
            arrays = {k: npz[k] for k in KEYS}
            if DESCRIPTION in npz.files:
                arrays[DESCRIPTION] = npz[DESCRIPTION]
    except PipelineError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        # ValueError also covers pickled object arrays, refused by allow_pickle=False
        raise PipelineError(
            f"{path} is not a readable .npz of plain arrays ({exc}). Replace it with a file "
            "written by numpy.savez holding uint8 x_train, y_train, x_test, y_test."
        ) from None
    return check_arrays(arrays, dataset, str(path))


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
