"""Stage validate: check the whole params.yaml before any other stage runs.

`dvc repro` deletes a stage's outputs before running it. Every other stage depends on this
one, so a typo stops the pipeline here, before DVC has deleted anything; the stages' own
checks would come too late. The output is the same for every valid params.yaml and DVC
keeps it when the check fails (persist), so it never makes another stage rerun.

With params that pass, it starts the warm interpreter the training stages run in
(runtime/warm_start.py) and leaves it importing TensorFlow while DVC runs the quick stages
in between, and the report's, which imports at the lowest priority while the stages run.
"""

from __future__ import annotations

from keras_exercises.params import PARAMS_FILE, load_params
from keras_exercises.runtime.atomic import write_text
from keras_exercises.runtime.errors import run_stage
from keras_exercises.runtime.paths import PARAMS_CHECK
from keras_exercises.runtime.stage_args import stage_args
from keras_exercises.runtime.warm_start import start_early


def main(argv: list[str]) -> None:
    stage_args(argv, "validate")
    load_params()
    write_text(PARAMS_CHECK, f"{PARAMS_FILE} is valid\n")
    start_early()


if __name__ == "__main__":
    run_stage(main)
