"""Data mirrors: a directory of <dataset>.npz files to read instead of downloading.

`read_mirror` is how fetch@<dataset> reads one; `build_mirror` makes one from real files
where you have them and synthetic stand-ins elsewhere (SVHN and ImageNet weights cannot be
had on an offline machine). Synthetic images are a per-class pattern plus noise:
learnable, but they measure nothing.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np

from keras_exercises.data.datasets import (
    DESCRIPTION,
    IMAGE_SHAPES,
    KEYS,
    NUM_CLASSES,
    Arrays,
    check_arrays,
    save_arrays,
)
from keras_exercises.runtime.atomic import atomic_path
from keras_exercises.runtime.errors import PipelineError


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


def synthetic_dataset(dataset: str, n_train: int, n_test: int, seed: int = 0) -> dict:
    """A faint per-class pattern under heavy noise, so the task is learnable but not trivial.

    The file says what it is (`description`), and the report flags answers made from it.
    """
    rng = np.random.default_rng(seed)
    shape = IMAGE_SHAPES[dataset]
    patterns = rng.uniform(-1, 1, size=(NUM_CLASSES, *shape))
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, NUM_CLASSES, size=n)
        noise = rng.normal(0, 80, size=(n, *shape))
        images = np.clip(128 + 25 * patterns[labels] + noise, 0, 255).astype(np.uint8)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels.astype(np.uint8)
    arrays = {k: arrays[k] for k in KEYS}
    arrays[DESCRIPTION] = np.array(f"synthetic stand-in for {dataset} made by tools.make_mirror")
    return arrays


def build_mirror(out: Path, real: Path | None, n_train: int, n_test: int) -> dict[str, str]:
    if real is not None:
        _check_real(real)
    out.mkdir(parents=True, exist_ok=True)
    made = {}
    for dataset in IMAGE_SHAPES:
        source = real / f"{dataset}.npz" if real else None
        if source and source.is_file():
            with atomic_path(out / f"{dataset}.npz") as copy:  # never half a copy
                shutil.copyfile(source, copy)
            made[dataset] = f"copied from {source}"
        else:
            save_arrays(out / f"{dataset}.npz", synthetic_dataset(dataset, n_train, n_test))
            made[dataset] = f"synthetic, {n_train} train / {n_test} test"
    return made


def _check_real(real: Path) -> None:
    """A folder of real files that is not there, or holds none of them, is a mistyped path:
    a mirror of synthetic data alone would train and answer without saying so."""
    files = ", ".join(f"{dataset}.npz" for dataset in IMAGE_SHAPES)
    if not real.is_dir():
        wrong = f"is not a directory ({real.resolve()} here): give the folder that holds {files}"
    elif not any((real / f"{dataset}.npz").is_file() for dataset in IMAGE_SHAPES):
        wrong = f"holds none of {files}: give the folder that holds them"
    else:
        return
    raise PipelineError(
        f"the folder of real data {real} {wrong} (../shared/data beside the project on the "
        "course machines), or leave --real out for synthetic data alone."
    )
