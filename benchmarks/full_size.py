"""What each exercise would cost on its full dataset, extrapolated from throughput measured
on this machine with the pipeline's own code.

    python -m benchmarks.full_size [--n-embed 1024]

For each exercise: the time of an epoch on 2,000 and on 16,000 synthetic images of the
dataset's real shape (the median of epochs 2-5; the first also builds TensorFlow's graphs),
which gives a fixed cost per epoch and a cost per image; for exercise 4 also the frozen
MobileNetV2's embedding rate at its input size. Then, for the full datasets, the time per
epoch and for the exercise's epochs. Writes benchmarks/results/full_size.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import psutil
import yaml

from benchmarks.pages import render
from benchmarks.run import RESULTS
from keras_exercises.data.datasets import prepare
from keras_exercises.data.mirror import synthetic_dataset
from keras_exercises.params import EXERCISES, Params
from tests.support.project_copy import ROOT

FULL_TRAIN = {"mnist": 60_000, "cifar10": 50_000, "svhn_cropped": 73_257}
FULL_TEST = {"mnist": 10_000, "cifar10": 10_000, "svhn_cropped": 26_032}
MEASURED_EPOCHS = 5
SIZES = (2000, 16000)  # training images per measured run


def seconds_per_epoch(
    ex, n_train: int, n_test: int, embeddings: dict | None, threads: int
) -> float:
    """The median epoch time after the first on `n_train` synthetic images (the first also
    builds TensorFlow's graphs), with the exercise's own batch size and validation split.
    Exercises 5 and 6 also pass over the `n_test` test images each epoch (the recorded
    test curve)."""
    import numpy as np

    from benchmarks.epoch_timer import EpochTimer
    from keras_exercises.runtime.seeding import set_seed
    from keras_exercises.training import train_exercise

    training = ex.training.model_copy(update={"epochs": MEASURED_EPOCHS, "early_stopping": None})
    spec = ex.model_copy(update={"n_train": n_train, "training": training})
    data = prepare(synthetic_dataset(ex.dataset, n_train, n_test), n_train, n_test, ex.dataset)
    if embeddings is not None:  # the head's inputs: the measured embeddings, repeated
        embeddings = {
            split: np.resize(embeddings[split], (n, embeddings[split].shape[1]))
            for split, n in (("train", n_train), ("test", n_test))
        }
    set_seed(42, threads)
    timer = EpochTimer()
    train_exercise(spec, data, embeddings, extra_callbacks=(timer,))
    return statistics.median(timer.seconds[1:])


def embedding_rate(ex, n_images: int, threads: int) -> tuple[float, dict]:
    """Images per second through the frozen base, and the embeddings of `n_images` images.

    Each call of `embed` builds its TensorFlow graph anew (seconds for MobileNetV2), so the
    rate comes from the difference between a call on a quarter of the images and one on all.
    """
    from keras_exercises.models import build_model, embed, split_at_embedding
    from keras_exercises.runtime.seeding import set_seed

    data = prepare(synthetic_dataset(ex.dataset, n_images, 200), n_images, 200, ex.dataset)
    set_seed(42, threads)
    to_embedding, _ = split_at_embedding(build_model(ex.model, data["x_train"].shape[1:]))
    seconds = []
    for n in (n_images // 4, n_images):
        start = time.perf_counter()
        train = embed(to_embedding, data["x_train"][:n])
        seconds.append(time.perf_counter() - start)
    rate = (n_images - n_images // 4) / (seconds[1] - seconds[0])
    return rate, {"train": train, "test": embed(to_embedding, data["x_test"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-embed", type=int, default=1024)
    args = parser.parse_args()
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["exercises"]["ex4"]["model"]["weights"] = None  # same cost, no download
    params = Params.model_validate(raw)

    rows = []
    for name in EXERCISES:
        ex = getattr(params.exercises, name)
        full_train, full_test = FULL_TRAIN[ex.dataset], FULL_TEST[ex.dataset]
        rate, embeddings = None, None
        if ex.trains_on_embeddings:
            rate, embeddings = embedding_rate(ex, args.n_embed, params.threads)
        # an epoch costs a fixed part (graph calls, the validation pass's set-up) and a part
        # per image: two sizes give both, and the full size follows
        # test images in the full data's proportion, for the exercises that pass over them
        small, large = (
            seconds_per_epoch(ex, n, round(n * full_test / full_train), embeddings, params.threads)
            for n in SIZES
        )
        kept = 1 - ex.training.validation_split  # the share of each slice that trains
        per_image = (large - small) / ((SIZES[1] - SIZES[0]) * kept)
        epoch_s = small + per_image * (full_train - SIZES[0]) * kept
        embed_s = (full_train + full_test) / rate if rate else 0.0
        epochs = ex.training.epochs
        rows.append(
            {
                "exercise": name,
                "dataset": ex.dataset,
                "full_train": full_train,
                "full_test": full_test,
                "measured_epoch_s": {str(SIZES[0]): small, str(SIZES[1]): large},
                "ms_per_image_epoch": per_image * 1000,
                "embed_images_per_s": rate,
                "embed_s": embed_s,
                "epoch_s": epoch_s,
                "epochs": epochs,
                "early_stopping": ex.training.early_stopping is not None,
                "total_s": embed_s + epoch_s * epochs,
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    machine = {
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "platform": f"{platform.system()} {platform.machine()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "full_size.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n"
    )
    (RESULTS / "full_size.md").write_text(full_size_table(machine, rows))
    print(full_size_table(machine, rows))


def full_size_table(machine: dict, rows: list[dict]) -> str:
    return render("full_size.md.j2", machine=machine, rows=rows)


if __name__ == "__main__":
    main()
