"""What dvc.yaml runs: one module per stage, each a thin main() over keras_exercises."""
