"""MLflow, one module per concern: the store (store.py), the UI's addresses (links.py),
runs left by dead processes (orphans.py), what a training run logs (training_run.py) and
its dataset inputs (dataset_inputs.py), and what the report writes on the runs
(report_runs.py)."""
