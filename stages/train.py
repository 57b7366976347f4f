"""Stage train@<exercise>: fit the exercise's model, evaluate it, log one MLflow run."""

from __future__ import annotations

from keras_exercises import tracking
from keras_exercises.data.datasets import load_arrays
from keras_exercises.params import exercise_arg, load_params
from keras_exercises.plot_data import history_csv, predictions_csv
from keras_exercises.runtime.atomic import atomic_path, write_json, write_text
from keras_exercises.runtime.errors import run_stage
from keras_exercises.runtime.paths import embeddings, exercise_output, prepared_data


def main(argv: list[str]) -> None:
    name = exercise_arg(argv, "train")
    params = load_params()
    ex = getattr(params.exercises, name)
    data = load_arrays(prepared_data(name), f"prepare@{name}")
    cached = None
    if ex.trains_on_embeddings:
        stored = load_arrays(embeddings(name), f"embed@{name}")
        cached = {"train": stored["train"], "test": stored["test"]}
    experiment_id = tracking.connect()
    for run_id in tracking.end_orphaned_runs(experiment_id):
        print(f"MLflow run {run_id} was still RUNNING though its process is gone: now KILLED")

    import mlflow
    from sklearn.metrics import confusion_matrix

    from keras_exercises.plotting import evaluation_figure, save_figure
    from keras_exercises.runtime.seeding import set_seed
    from keras_exercises.training import train_exercise

    set_seed(params.seed)
    with (
        tracking.store_failures_reported(),
        mlflow.start_run(
            experiment_id=experiment_id, run_name=name, tags=tracking.run_tags(f"train@{name}")
        ) as run,
    ):
        result = train_exercise(ex, data, cached)
        predicted = result.test_probabilities.argmax(axis=1)
        confusion = confusion_matrix(data["y_test"], predicted, labels=range(10))
        figure = evaluation_figure(
            confusion,
            result.history,
            result.best_epoch,
            f"{name}: test accuracy {result.test_accuracy:.3f}",
        )
        metrics = {
            "test_accuracy": result.test_accuracy,
            "test_loss": result.test_loss,
            "epochs_run": len(result.history["loss"]),
            "best_epoch": result.best_epoch,
        }
        tracking.log_training(params, name, result, metrics, figure, data["x_test"][:4])

    # Outputs last: a failure above leaves the previous results in place.
    with atomic_path(exercise_output(name, "model.keras")) as tmp:
        result.model.save(tmp)
    write_text(exercise_output(name, "history.csv"), history_csv(result.history))
    write_text(exercise_output(name, "predictions.csv"), predictions_csv(data["y_test"], predicted))
    save_figure(figure, exercise_output(name, "evaluation.png"))
    write_json(exercise_output(name, "metrics.json"), metrics)
    write_json(
        exercise_output(name, "run.json"),
        {
            "run_id": run.info.run_id,
            "experiment_id": experiment_id,
            "tracking_uri": mlflow.get_tracking_uri(),
        },
    )
    print(f"{name}: test accuracy {result.test_accuracy:.4f}, MLflow run {run.info.run_id}")


if __name__ == "__main__":
    run_stage(main)
