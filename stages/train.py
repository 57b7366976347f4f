"""Stage train@<exercise>-<seed> (train_head@ex4-<seed>): fit the exercise's model with one
seed, evaluate it, log one MLflow run."""

from __future__ import annotations

from keras_exercises.runtime.errors import run_stage


def main(argv: list[str]) -> None:
    # imported here, not above: the process DVC starts hands the stage to a warm interpreter
    # before main() (run_stage), and would have imported them for nothing (0.5 s here)
    from keras_exercises.data.datasets import load_arrays
    from keras_exercises.params import EXERCISES, load_params
    from keras_exercises.plot_data import history_csv, predictions_csv
    from keras_exercises.runtime.atomic import atomic_path, write_bytes, write_json, write_text
    from keras_exercises.runtime.paths import embeddings, exercise_output, prepared_data
    from keras_exercises.runtime.stage_args import stage_args
    from keras_exercises.tracking import links, orphans, store, training_run

    args = stage_args(argv, "train", item=EXERCISES, seed=True)
    name, seed = args.item, args.seed
    params = load_params()
    ex = getattr(params.exercises, name)
    # the store first: a login that may not log runs fails before any data is loaded
    experiment_id = store.connect()
    with store.failures_reported("ending the runs of processes that are gone"):
        for run_id in orphans.end_orphaned_runs(experiment_id):
            print(f"MLflow run {run_id} was still RUNNING though its process is gone: now KILLED")
    data = load_arrays(prepared_data(name), f"prepare@{name}")
    cached, base_seed = None, seed
    if ex.trains_on_embeddings:
        stored = load_arrays(embeddings(name), f"embed@{name}")
        cached = {"train": stored["train"], "test": stored["test"]}
        base_seed = int(stored["base_seed"])

    import mlflow
    from sklearn.metrics import confusion_matrix

    from keras_exercises.model_file import save_model
    from keras_exercises.plotting import evaluation_figure, png_bytes
    from keras_exercises.runtime.seeding import set_seed
    from keras_exercises.training import train_exercise

    # the base the embeddings came from, then this seed for everything after it.
    # On a CPU, Grappler's graph rewrites cost a dense net more than they save: measured
    # here, a third of each of exercise 1's epochs after the first (0.07 s of 0.19 s). The
    # CNNs' steps looked a tenth slower without their fused kernels: kept for those. Every
    # output is byte for byte the same either way.
    set_seed(base_seed, params.threads, rewrite_graphs=ex.model.kind != "dense")
    with (
        # renamed into place only once the run has ended well (atomic_path)
        atomic_path(exercise_output(name, seed, "model.keras")) as saved_model,
        store.failures_reported(f"logging the run of {name}, seed {seed}", left_running=True),
        mlflow.start_run(
            experiment_id=experiment_id,
            run_name=training_run.run_name(name, seed),
            tags=training_run.run_tags(seed),
            description=training_run.run_description(name, ex.dataset, ex.n_train, ex.n_test, seed),
        ) as run,
    ):
        result = train_exercise(ex, data, cached, head_seed=seed if base_seed != seed else None)
        predicted = result.test_probabilities.argmax(axis=1)
        confusion = confusion_matrix(data["y_test"], predicted, labels=range(10))
        figure = png_bytes(
            evaluation_figure(
                confusion,
                result.history,
                result.best_epoch,
                f"{name}, seed {seed}: test accuracy {result.test_accuracy:.3f}",
            )
        )
        metrics = {
            "test_accuracy": result.test_accuracy,
            "test_loss": result.test_loss,
            "epochs_run": len(result.history["loss"]),
            "best_epoch": result.best_epoch,
        }
        save_model(result.model, saved_model)  # once: MLflow logs this file
        version = training_run.log_training(
            params,
            name,
            seed,
            prepared_data(name),
            result,
            metrics,
            figure,
            data["x_test"][:4],
            saved_model,
        )

    # Outputs last: a failure above leaves the previous results in place.
    write_text(exercise_output(name, seed, "history.csv"), history_csv(result.history))
    write_text(
        exercise_output(name, seed, "predictions.csv"), predictions_csv(data["y_test"], predicted)
    )
    write_bytes(exercise_output(name, seed, "evaluation.png"), figure)
    write_json(exercise_output(name, seed, "metrics.json"), metrics)
    write_json(
        exercise_output(name, seed, "run.json"),
        {
            "run_id": run.info.run_id,
            "experiment_id": experiment_id,
            "tracking_uri": store.tracking_uri(),
            "model_version": version,
        },
    )
    page = links.run_page(  # printed only: mlflow_ui is not one of this stage's params
        links.ui_address(store.tracking_uri(), params.mlflow_ui),
        experiment_id,
        run.info.run_id,
    )
    print(f"{name}, seed {seed}: test accuracy {result.test_accuracy:.4f}, MLflow run {page}")


if __name__ == "__main__":
    run_stage(main, warm="tensorflow")
