"""Stage mc_evaluate: MC Dropout accuracy and predictive variance of exercises 3 and 6."""

from __future__ import annotations

import json

from keras_exercises import tracking
from keras_exercises.data.datasets import load_arrays
from keras_exercises.params import MC_EXERCISES, load_params
from keras_exercises.plot_data import variance_csv
from keras_exercises.runtime.atomic import write_json, write_text
from keras_exercises.runtime.errors import PipelineError, run_stage
from keras_exercises.runtime.paths import exercise_output, prepared_data


def evaluate_exercise(params, name: str) -> None:
    """MC Dropout on one exercise's trained model; outputs written, metrics logged to its run."""
    from keras_exercises.mc_dropout import mc_probabilities, summarize
    from keras_exercises.models import load_model
    from keras_exercises.plotting import save_figure, variance_histogram
    from keras_exercises.runtime.seeding import set_seed

    mc = getattr(params.exercises, name).mc
    data = load_arrays(prepared_data(name), f"prepare@{name}")
    run_id = json.loads(exercise_output(name, "run.json").read_text())["run_id"]
    # Before loading: the dropout layers take their seeds from it. Seeded per exercise, so
    # each one's passes are the same whichever exercises this process evaluates.
    set_seed(params.seed)
    model = load_model(exercise_output(name, "model.keras"))
    probabilities = mc_probabilities(model, data["x_test"], mc.passes, mc.batch_size)
    summary = summarize(probabilities, data["y_test"])
    metrics = {
        "mc_accuracy": summary["mc_accuracy"],
        "mean_predictive_variance": summary["mean_predictive_variance"],
        "mc_passes": mc.passes,
    }
    variance = summary["per_sample_variance"]
    figure = variance_histogram(
        variance, f"{name}: predictive variance over {mc.passes} MC Dropout passes"
    )
    with tracking.store_failures_reported():
        tracking.log_mc_evaluation(run_id, metrics, figure)

    write_text(exercise_output(name, "mc_variance.csv"), variance_csv(variance))
    save_figure(figure, exercise_output(name, "mc_variance.png"))
    write_json(exercise_output(name, "mc_metrics.json"), metrics)
    print(
        f"{name}: MC accuracy {metrics['mc_accuracy']:.4f}, "
        f"mean predictive variance {metrics['mean_predictive_variance']:.6f}"
    )


def main(argv: list[str]) -> None:
    """Every exercise that asks for MC Dropout, or those named: one process for all, as
    importing TensorFlow and MLflow costs more than the passes themselves."""
    names = argv or list(MC_EXERCISES)
    if not set(names) <= set(MC_EXERCISES):
        raise PipelineError(f"usage: python -m stages.mc_evaluate [{' '.join(MC_EXERCISES)}]")
    params = load_params()
    tracking.connect()
    for name in names:
        evaluate_exercise(params, name)


if __name__ == "__main__":
    run_stage(main)
