import subprocess
import sys

import pytest
import yaml

from keras_exercises.params import load_params
from keras_exercises.runtime.errors import PipelineError
from tests.conftest import ROOT, write_params


def test_real_params_are_valid_and_hold_the_spec():
    params = load_params(ROOT / "params.yaml")
    assert params.seeds == [42]
    stats = params.statistics
    assert (stats.confidence_level, stats.significance_level, stats.calibration_bins) == (
        0.95,
        0.05,
        15,
    )
    ex1, ex4, ex6 = params.exercises.ex1, params.exercises.ex4, params.exercises.ex6
    assert (ex1.n_train, ex1.n_test, ex1.training.batch_size) == (1000, 200, 32)
    assert ex1.training.early_stopping.patience == 5
    assert ex4.model.weights == "imagenet" and ex4.optimizer.name == "adam"
    assert (ex6.optimizer.name, ex6.optimizer.momentum, ex6.mc.passes) == ("sgd", 0.9, 20)
    assert params.exercises.ex5.training.validation_split == 0
    assert not params.exercises.ex5.training.validate_on_test


def set_key(tree: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        tree = tree[key]
    if value is DELETE:
        del tree[last]
    else:
        tree[last] = value


class _Delete:
    def __repr__(self) -> str:  # a stable test id, the same in every xdist worker
        return "<deleted>"


DELETE = _Delete()

BAD_VALUES = [
    (
        "exercises.ex3.model.dropout",
        1.5,
        "exercises.ex3.model.dropout: input should be less than 1, got 1.5",
    ),
    (
        "exercises.ex3.model.dropout",
        1.0,
        "exercises.ex3.model.dropout: input should be less than 1",
    ),
    (
        "exercises.ex3.model.dropout",
        -0.1,
        "exercises.ex3.model.dropout: input should be greater than or equal to 0",
    ),
    ("exercises.ex1.model.dropuot", 0.1, "exercises.ex1.model.dropuot: unknown key"),
    ("sed", 42, "sed: unknown key"),
    ("seed", 42, "seed: replaced by `seeds`, a list: write `seeds: [<your seed>]`"),
    ("seeds", [42, 42], "seeds: each seed once, got [42, 42]"),
    ("seeds", [-1], "seeds[0]: input should be greater than or equal to 0, got -1"),
    ("threads", 0, "threads: input should be greater than 0, got 0"),
    ("threads", DELETE, "threads: required key is missing"),
    (
        "statistics.confidence_level",
        1.5,
        "statistics.confidence_level: input should be less than 1",
    ),
    (
        "statistics.significance_level",
        0,
        "statistics.significance_level: input should be greater than 0",
    ),
    (
        "statistics.calibration_bins",
        1,
        "statistics.calibration_bins: input should be greater than or equal to 2",
    ),
    (
        "exercises.ex1.training.epochs",
        0,
        "exercises.ex1.training.epochs: input should be greater than 0",
    ),
    ("exercises.ex2.training.epochs", -3, "exercises.ex2.training.epochs: input should be greater"),
    (
        "exercises.ex1.training.batch_size",
        0,
        "exercises.ex1.training.batch_size: input should be greater",
    ),
    (
        "exercises.ex1.training.batch_size",
        "32",
        "exercises.ex1.training.batch_size: input should be a valid integer",
    ),
    (
        "exercises.ex1.training.epochs",
        2.5,
        "exercises.ex1.training.epochs: input should be a valid integer",
    ),
    (
        "exercises.ex1.model.activation",
        "relux",
        "exercises.ex1.model.activation: input should be 'relu'",
    ),
    ("exercises.ex2.model.initializer", "he", "exercises.ex2.model.initializer: input should be"),
    (
        "exercises.ex1.optimizer.name",
        "adamw",
        "exercises.ex1.optimizer.name: input should be 'adam'",
    ),
    (
        "exercises.ex1.optimizer.learning_rate",
        0,
        "exercises.ex1.optimizer.learning_rate: input should be greater than 0",
    ),
    (
        "exercises.ex1.optimizer.momentum",
        0.9,
        "exercises.ex1.optimizer.momentum: nadam takes no momentum",
    ),
    (
        "exercises.ex1.training.validation_split",
        1.0,
        "exercises.ex1.training.validation_split: input should be less than 1",
    ),
    (
        "exercises.ex1.training.validation_split",
        -0.2,
        "exercises.ex1.training.validation_split: input should be greater than or equal to 0",
    ),
    (
        "exercises.ex1.training.validation_split",
        0.0,
        "exercises.ex1.training.early_stopping: needs validation data",
    ),
    (
        "exercises.ex1.training.early_stopping.patience",
        0,
        "exercises.ex1.training.early_stopping.patience: input should be greater",
    ),
    (
        "exercises.ex1.training.early_stopping.monitor",
        "loss",
        "exercises.ex1.training.early_stopping.monitor: input should be",
    ),
    (
        "exercises.ex3.mc.passes",
        1,
        "exercises.ex3.mc.passes: input should be greater than or equal to 2",
    ),
    ("exercises.ex6.mc", DELETE, "exercises.ex6.mc: required"),
    (
        "exercises.ex4.model.weights",
        "/no/such/weights.h5",
        "exercises.ex4.model.weights: no such file '/no/such/weights.h5'",
    ),
    (
        "exercises.ex4.model.input_size",
        100,
        "exercises.ex4.model.input_size: ImageNet weights exist only for",
    ),
    (
        "exercises.ex4.model.input_size",
        16,
        "exercises.ex4.model.input_size: input should be greater than or equal to 32",
    ),
    ("exercises.ex1.model.kind", "transformer", "exercises.ex1.model.kind: must be one of"),
    (
        "exercises.ex1.model.hidden_units",
        [],
        "exercises.ex1.model.hidden_units: list should have at least 1 item",
    ),
    (
        "exercises.ex5.model.conv_blocks",
        [[32, -32]],
        "exercises.ex5.model.conv_blocks[0][1]: input should be greater than 0",
    ),
    ("exercises.ex1.dataset", "fashion_mnist", "exercises.ex1.dataset: input should be 'mnist'"),
    ("exercises.ex1.n_train", 0, "exercises.ex1.n_train: input should be greater than 0"),
    ("exercises.ex1.n_test", DELETE, "exercises.ex1.n_test: required key is missing"),
    ("data.mirror", 3, "data.mirror: input should be a valid string"),
    (
        "reference.ex1.training.epoch",
        3,
        "reference.ex1.training.epoch: no such key in exercises.ex1",
    ),
    (
        "exercises.ex5.training.validate_on_test",
        "yes",
        "exercises.ex5.training.validate_on_test: input should be a valid boolean",
    ),
]


@pytest.mark.parametrize(
    ("key", "value", "message"), BAD_VALUES, ids=[b[0] + "=" + repr(b[1]) for b in BAD_VALUES]
)
def test_bad_value_is_named_by_key_path(tmp_path, real_params, key, value, message):
    params = yaml.safe_load(yaml.safe_dump(real_params))
    if key.startswith("reference."):  # reference keys are dotted themselves
        params["reference"]["ex1"]["training.epoch"] = value
    else:
        set_key(params, key, value)
    with pytest.raises(PipelineError) as caught:
        load_params(write_params(tmp_path, params))
    assert message in str(caught.value)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(PipelineError, match="not found: run the stage from the project root"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("seed: [1,\n")
    with pytest.raises(PipelineError, match="is not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_stages_and_library_import_without_tensorflow_or_mlflow():
    """Stages import TensorFlow and MLflow inside main, only when they need them, so fetch,
    prepare and report start in a fraction of a second. training.py is TensorFlow itself."""
    modules = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for folder in ("stages", "keras_exercises")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name not in ("__init__.py", "training.py")
    ]
    assert "stages.train" in modules and "keras_exercises.tracking.training_run" in modules
    code = (
        f"import sys, {', '.join(modules)}; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
