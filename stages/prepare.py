"""Stage prepare@<exercise>: the exercise's slices, scaled to [0, 1] float32."""

from __future__ import annotations

from keras_exercises.data.datasets import load_arrays, prepare, save_arrays
from keras_exercises.params import EXERCISES, load_params
from keras_exercises.runtime.errors import run_stage
from keras_exercises.runtime.paths import prepared_data, raw_data
from keras_exercises.runtime.stage_args import stage_args


def main(argv: list[str]) -> None:
    name = stage_args(argv, "prepare", item=EXERCISES).item
    ex = getattr(load_params().exercises, name)
    raw = load_arrays(raw_data(ex.dataset), f"fetch@{ex.dataset}")
    save_arrays(prepared_data(name), prepare(raw, ex.n_train, ex.n_test, ex.dataset))


if __name__ == "__main__":
    run_stage(main)
