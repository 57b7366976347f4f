"""Exercise 1's training on a larger MNIST slice: seconds per epoch and peak memory.

    python -m benchmarks.scale PARAMS_YAML MIRROR_DIR N_TRAIN EPOCHS

One process per size, so the peak memory is that size's. Trains with the pipeline's own
code (keras_exercises.training) and exercise 1's params, without early stopping so every size runs
all EPOCHS; the first epoch also builds TensorFlow's graphs, so the figure is the median
of the others. Prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import yaml

from keras_exercises.data.datasets import prepare
from keras_exercises.data.mirror import read_mirror
from keras_exercises.params import Params


def main() -> None:
    params_path, mirror = Path(sys.argv[1]), Path(sys.argv[2])
    n_train, epochs = int(sys.argv[3]), int(sys.argv[4])
    raw = yaml.safe_load(params_path.read_text())
    ex1 = raw["exercises"]["ex1"]
    ex1["n_train"] = n_train
    ex1["training"].update(epochs=epochs, early_stopping=None)
    params = Params.model_validate(raw)
    ex = params.exercises.ex1

    from benchmarks.epoch_timer import EpochTimer
    from keras_exercises.runtime.seeding import set_seed
    from keras_exercises.training import train_exercise

    data = prepare(read_mirror(mirror, ex.dataset), n_train, ex.n_test, ex.dataset)
    set_seed(params.seeds[0], params.threads)
    timer = EpochTimer()
    train_exercise(ex, data, extra_callbacks=(timer,))
    after_first = sorted(timer.seconds[1:])
    print(
        json.dumps(
            {
                "n_train": n_train,
                "epochs": epochs,
                "s_per_epoch": after_first[len(after_first) // 2],
                "first_epoch_s": timer.seconds[0],
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
