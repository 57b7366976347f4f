"""Stage fetch@<dataset>: data/raw/<dataset>.npz from the web or from data.mirror."""

from __future__ import annotations

from keras_exercises.data.datasets import IMAGE_SHAPES, provenance, save_arrays
from keras_exercises.data.downloads import download_arrays
from keras_exercises.data.mirror import read_mirror
from keras_exercises.params import load_params
from keras_exercises.runtime.atomic import write_json
from keras_exercises.runtime.errors import run_stage
from keras_exercises.runtime.paths import from_project, raw_data, raw_provenance
from keras_exercises.runtime.stage_args import stage_args


def main(argv: list[str]) -> None:
    dataset = stage_args(argv, "fetch", item=IMAGE_SHAPES).item
    data = load_params().data
    mirror = data.mirror
    if mirror:
        arrays = read_mirror(from_project(mirror), dataset)
        source = f"mirror {mirror}"
    else:
        arrays = download_arrays(dataset, data.download_url, data.timeout_seconds, data.attempts)
        source = f"download from {data.download_url or 'the official origins'}"
    save_arrays(raw_data(dataset), arrays)
    write_json(raw_provenance(dataset), provenance(arrays, source))
    print(f"{dataset}: {len(arrays['x_train'])} train, {len(arrays['x_test'])} test samples")


if __name__ == "__main__":
    run_stage(main)
