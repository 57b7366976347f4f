"""Build a data mirror for offline runs: real files where you have them, synthetic elsewhere.

    python -m tools.make_mirror OUT_DIR [--real DIR] [--n-train N] [--n-test N]

Copies <dataset>.npz from --real when it is there and writes a synthetic stand-in of the
right shape otherwise (SVHN and ImageNet weights cannot be had on an offline machine).
Synthetic images are a per-class pattern plus noise: learnable, but they measure nothing.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from stages.datasets import DESCRIPTION, IMAGE_SHAPES, KEYS, NUM_CLASSES, save_arrays


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
    out.mkdir(parents=True, exist_ok=True)
    made = {}
    for dataset in IMAGE_SHAPES:
        source = real / f"{dataset}.npz" if real else None
        if source and source.is_file():
            shutil.copyfile(source, out / f"{dataset}.npz")
            made[dataset] = f"copied from {source}"
        else:
            save_arrays(out / f"{dataset}.npz", synthetic_dataset(dataset, n_train, n_test))
            made[dataset] = f"synthetic, {n_train} train / {n_test} test"
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--real", type=Path, help="directory holding real <dataset>.npz files")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=500)
    args = parser.parse_args()
    for dataset, how in build_mirror(args.out, args.real, args.n_train, args.n_test).items():
        print(f"{args.out / dataset}.npz: {how}")


if __name__ == "__main__":
    main()
