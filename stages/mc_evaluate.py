"""Stage mc_evaluate@<seed>: MC Dropout accuracy, predictive variance and calibration of
exercises 3 and 6, for the models trained with one seed."""

from __future__ import annotations

# Imports inside the functions: the process DVC starts hands the stage to a warm interpreter
# before main() (run_stage), and would have imported them for nothing
from keras_exercises.runtime.errors import run_stage


def evaluate_exercise(params, name: str, seed: int) -> None:
    """MC Dropout on one exercise's trained model; outputs written, metrics logged to its run."""
    from keras_exercises.calibration import calibration_metrics, reliability_bins
    from keras_exercises.data.datasets import load_arrays
    from keras_exercises.mc_dropout import mc_probabilities, summarize
    from keras_exercises.models import load_model
    from keras_exercises.plot_data import mc_predictions_csv, reliability_csv
    from keras_exercises.plotting import png_bytes, reliability_figure, variance_histogram
    from keras_exercises.runtime.atomic import read_json, write_bytes, write_json, write_text
    from keras_exercises.runtime.paths import exercise_output, prepared_data
    from keras_exercises.runtime.seeding import set_seed
    from keras_exercises.tracking import store, training_run

    mc = getattr(params.exercises, name).mc
    bins = params.statistics.calibration_bins
    data = load_arrays(prepared_data(name), f"prepare@{name}")
    labels = data["y_test"]
    run_id = read_json(exercise_output(name, seed, "run.json"))["run_id"]
    # Before loading: the dropout layers take their seeds from it. Seeded per exercise, so
    # each one's passes are the same whichever exercises this process evaluates.
    set_seed(seed, params.threads)
    model = load_model(exercise_output(name, seed, "model.keras"))
    probabilities = mc_probabilities(model, data["x_test"], mc.passes, mc.batch_size)
    dropout_off = model.predict(data["x_test"], batch_size=mc.batch_size, verbose=0)
    summary = summarize(probabilities, labels)
    mc_average = probabilities.mean(axis=0)
    off = calibration_metrics(dropout_off, labels, bins)
    averaged = calibration_metrics(mc_average, labels, bins)
    metrics = {
        "mc_accuracy": summary["mc_accuracy"],
        "mean_predictive_variance": summary["mean_predictive_variance"],
        "mc_passes": mc.passes,
        **off,
        **{f"mc_{key}": value for key, value in averaged.items()},
    }
    variance = summary["per_sample_variance"]
    histogram = png_bytes(
        variance_histogram(
            variance, f"{name}, seed {seed}: predictive variance over {mc.passes} MC Dropout passes"
        )
    )
    off_bins = reliability_bins(dropout_off, labels, bins)
    mc_bins = reliability_bins(mc_average, labels, bins)
    reliability = png_bytes(
        reliability_figure(
            off_bins, mc_bins, metrics, f"{name}, seed {seed}: reliability ({bins} bins)"
        )
    )
    with store.failures_reported(f"logging the MC Dropout results of {name}, seed {seed}"):
        training_run.log_mc_evaluation(
            run_id, metrics, {"mc_variance.png": histogram, "reliability.png": reliability}
        )

    write_text(
        exercise_output(name, seed, "mc_predictions.csv"),
        mc_predictions_csv(labels, summary["mc_predictions"], variance),
    )
    write_text(exercise_output(name, seed, "reliability.csv"), reliability_csv(off_bins))
    write_text(exercise_output(name, seed, "mc_reliability.csv"), reliability_csv(mc_bins))
    write_bytes(exercise_output(name, seed, "mc_variance.png"), histogram)
    write_bytes(exercise_output(name, seed, "reliability.png"), reliability)
    write_json(exercise_output(name, seed, "mc_metrics.json"), metrics)
    print(
        f"{name}, seed {seed}: MC accuracy {metrics['mc_accuracy']:.4f}, mean predictive "
        f"variance {metrics['mean_predictive_variance']:.6f}, ECE {metrics['ece']:.3f} "
        f"(dropout off) and {metrics['mc_ece']:.3f} (MC)"
    )


def main(argv: list[str]) -> None:
    """Every exercise that asks for MC Dropout, or those named after the seed: one process
    for all, as importing TensorFlow and MLflow costs more than the passes themselves."""
    from keras_exercises.params import MC_EXERCISES, load_params
    from keras_exercises.runtime.stage_args import stage_args
    from keras_exercises.tracking import store

    args = stage_args(argv, "mc_evaluate", seed=True, optional_items=MC_EXERCISES)
    seed, names = args.seed, args.items or list(MC_EXERCISES)
    params = load_params()
    store.connect()
    for name in names:
        evaluate_exercise(params, name, seed)


if __name__ == "__main__":
    run_stage(main, warm="tensorflow")
