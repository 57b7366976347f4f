"""Stage embed@<exercise>: the frozen base's embedding of every image, computed once.

With the base frozen, in inference mode and fed unaugmented images, an image's embedding
is the same in every epoch, so the head can train on these instead of running MobileNetV2
over every image in every epoch. When params break that (a fine-tuned base, augmentation)
the file holds empty arrays and train@<exercise> trains end to end.

One embedding serves every seed: dvc.yaml passes the first of `seeds`, which draws a random
(weights: null) base; ImageNet or local weights don't depend on it. The file records that
seed, so each seed's training rebuilds the very base the embeddings came from.
"""

from __future__ import annotations

from keras_exercises.runtime.errors import run_stage


def main(argv: list[str]) -> None:
    # imported here, not above: the process DVC starts hands the stage to a warm interpreter
    # before main() (run_stage), and would have imported them for nothing (0.5 s here)
    import numpy as np

    from keras_exercises.data.datasets import load_arrays, save_arrays
    from keras_exercises.params import load_params
    from keras_exercises.runtime.paths import embeddings, prepared_data
    from keras_exercises.runtime.stage_args import stage_args

    args = stage_args(argv, "embed", item=("ex4",), seed=True)
    name, base_seed = args.item, args.seed
    params = load_params()
    ex = getattr(params.exercises, name)
    data = load_arrays(prepared_data(name), f"prepare@{name}")
    if not ex.trains_on_embeddings:
        empty = np.zeros((0, 0), np.float32)
        save_arrays(
            embeddings(name), {"train": empty, "test": empty, "base_seed": np.array(base_seed)}
        )
        print(f"{name}: base is fine-tuned or inputs augmented; training end to end instead")
        return

    from keras_exercises.models import build_model, embed, split_at_embedding
    from keras_exercises.runtime.seeding import set_seed

    # the same seed and construction order as train@<exercise>: a random (weights: null)
    # base comes out identical in both processes
    set_seed(base_seed, params.threads)
    model = build_model(ex.model, data["x_train"].shape[1:])
    to_embedding, _ = split_at_embedding(model)
    save_arrays(
        embeddings(name),
        {
            "train": embed(to_embedding, data["x_train"]),
            "test": embed(to_embedding, data["x_test"]),
            "base_seed": np.array(base_seed),
        },
    )
    print(f"{name}: embedded {len(data['x_train'])} train and {len(data['x_test'])} test images")


if __name__ == "__main__":
    run_stage(main, warm="tensorflow")
