"""Load and validate params.yaml before anything expensive happens.

Every stage calls `load_params()` first, so a typo'd key or an out-of-range value stops the
stage with one message naming the key path, before TensorFlow is imported and before any
output is touched.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from keras_exercises.runtime.errors import PipelineError
from keras_exercises.runtime.paths import from_project

PARAMS_FILE = Path("params.yaml")
EXERCISES = ("ex1", "ex2", "ex3", "ex4", "ex5", "ex6")
MC_EXERCISES = ("ex3", "ex6")

Dataset = Literal["mnist", "cifar10", "svhn_cropped"]
Activation = Literal["relu", "elu", "selu", "tanh", "sigmoid", "gelu", "swish", "linear"]
Initializer = Literal[
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "glorot_normal",
    "glorot_uniform",
]


Rate = Annotated[float, Field(ge=0, lt=1)]
Probability = Annotated[float, Field(gt=0, lt=1)]
Layers = Annotated[list[PositiveInt], Field(min_length=1)]
HttpUrl = Annotated[str, Field(pattern=r"^https?://")]  # as written: pydantic's own adds a "/"


class Section(BaseModel):
    # strict: a "32" from `dvc exp run -S` must not silently become 32 here and "32" elsewhere
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LayerSettings(Section):
    """What every builder's dense (and convolutional) layers share."""

    activation: Activation
    initializer: Initializer
    dropout: Rate  # after each hidden dense layer; 0 for none
    dropout_kind: Literal["standard", "alpha"]


class DenseModel(LayerSettings):
    kind: Literal["dense"]
    hidden_units: Layers


class CnnModel(LayerSettings):
    kind: Literal["cnn"]
    conv_blocks: Annotated[list[Layers], Field(min_length=1)]
    kernel_size: PositiveInt
    pool_size: PositiveInt
    padding: Literal["valid", "same"]
    dense_units: Layers


class MobileNetV2Model(LayerSettings):
    kind: Literal["mobilenet_v2"]
    input_size: Annotated[int, Field(ge=32)]
    alpha: Literal[0.35, 0.5, 0.75, 1.0, 1.3, 1.4]
    weights: str | None = Field(
        description='"imagenet" (downloaded by Keras), null (random), or a local .h5 file'
    )
    pixel_scaling: Literal["unit", "imagenet"]
    fine_tune_base: bool  # true: the base's weights train too (slower, no embedding cache)
    dense_units: Layers

    @model_validator(mode="after")
    def _weights_exist(self) -> MobileNetV2Model:
        if self.weights not in (None, "imagenet") and not from_project(self.weights).is_file():
            raise ValueError(
                f"weights: no such file {self.weights!r}; use null, 'imagenet' or the path of "
                "a local MobileNetV2 no-top .h5 weights file"
            )
        if self.weights == "imagenet" and self.input_size not in (96, 128, 160, 192, 224):
            raise ValueError(
                "input_size: ImageNet weights exist only for 96, 128, 160, 192 or 224, "
                f"got {self.input_size}"
            )
        return self


class Optimizer(Section):
    name: Literal["adam", "nadam", "sgd", "rmsprop"]
    learning_rate: PositiveFloat
    momentum: Rate = 0.0

    @model_validator(mode="after")
    def _momentum_only_where_used(self) -> Optimizer:
        if self.momentum and self.name not in ("sgd", "rmsprop"):
            raise ValueError(f"momentum: {self.name} takes no momentum; set it to 0")
        return self


class EarlyStopping(Section):
    monitor: Literal["val_loss", "val_accuracy"]
    patience: PositiveInt
    restore_best_weights: bool


class Training(Section):
    epochs: PositiveInt
    batch_size: PositiveInt
    validation_split: Rate
    early_stopping: EarlyStopping | None
    # The course's exercises 5-6 solutions validated (and early-stopped) on the test set,
    # leaking it into the result. Opt-in only; never the default.
    validate_on_test: bool = False
    augment: bool  # random horizontal flips of the training images

    @model_validator(mode="after")
    def _stopping_needs_validation(self) -> Training:
        if self.early_stopping and not (self.validation_split or self.validate_on_test):
            raise ValueError(
                "early_stopping: needs validation data; set validation_split above 0 "
                "or early_stopping to null"
            )
        if self.validate_on_test and self.validation_split:
            raise ValueError("validate_on_test: cannot be combined with validation_split > 0")
        return self


class MonteCarlo(Section):
    passes: Annotated[int, Field(ge=2)]
    batch_size: PositiveInt


class Exercise(Section):
    dataset: Dataset
    n_train: PositiveInt
    n_test: PositiveInt
    model: Annotated[DenseModel | CnnModel | MobileNetV2Model, Field(discriminator="kind")]
    optimizer: Optimizer
    training: Training
    mc: MonteCarlo | None = None

    @property
    def trains_on_embeddings(self) -> bool:
        """A frozen base in inference mode, fed unaugmented images, maps each image to the
        same embedding in every epoch: compute those once and train only the head."""
        return (
            self.model.kind == "mobilenet_v2"
            and not self.model.fine_tune_base
            and not self.training.augment
        )


class Exercises(Section):
    ex1: Exercise
    ex2: Exercise
    ex3: Exercise
    ex4: Exercise
    ex5: Exercise
    ex6: Exercise

    @model_validator(mode="after")
    def _mc_where_asked(self) -> Exercises:
        for name in MC_EXERCISES:
            if getattr(self, name).mc is None:
                raise ValueError(f"{name}.mc: required (its questions ask for MC Dropout)")
        return self


class Data(Section):
    mirror: str | None
    download_url: HttpUrl | None
    timeout_seconds: PositiveFloat
    attempts: PositiveInt


def _distinct_seeds(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"each seed once, got {seeds}")
    return seeds


class Statistics(Section):
    confidence_level: Probability  # of every interval
    significance_level: Probability  # below it, a difference is "beyond noise"
    bootstrap_resamples: Annotated[int, Field(ge=100)]
    bootstrap_seed: NonNegativeInt
    calibration_bins: Annotated[int, Field(ge=2)]


class Params(Section):
    # every training and MC stage runs once per seed (dvc.yaml's matrix); answers are means
    seeds: Annotated[list[NonNegativeInt], Field(min_length=1), AfterValidator(_distinct_seeds)]
    # TensorFlow's threads in each stage that trains, embeds or runs MC passes: they change
    # a CNN's weights in the last digits, so the count is a param of those stages and DVC's
    # run-cache key holds it
    threads: PositiveInt
    data: Data
    # where the report's run links open the local store's runs: `mlflow ui` (README) serves it
    mlflow_ui: HttpUrl
    statistics: Statistics
    exercises: Exercises
    # The exercise text's own values; the report flags answers computed under others.
    reference: dict[str, dict[str, int | float | str | None]]

    @model_validator(mode="after")
    def _reference_names_real_keys(self) -> Params:
        for name, values in self.reference.items():
            if name not in EXERCISES:
                raise ValueError(f"reference.{name}: not an exercise; use one of {EXERCISES}")
            flat = flatten(getattr(self.exercises, name).model_dump())
            for key in values:
                if key not in flat:
                    raise ValueError(f"reference.{name}.{key}: no such key in exercises.{name}")
        return self


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params; raise PipelineError naming the first bad key path."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise PipelineError(
            f"{path} not found: run the stage from the project root, where params.yaml lives."
        ) from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path} is not valid YAML: {exc}. Fix the file and rerun.") from None
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise PipelineError(_describe(exc, raw, path)) from None


def _describe(exc: ValidationError, raw: Any, path: Path) -> str:
    errors = exc.errors()
    # `X | None` unions also report "input should be None"; that branch is rarely the point
    errors = [e for e in errors if e["type"] != "none_required"] or errors
    lines = []
    for err in errors:
        key, message = _key_path(err["loc"], raw, err["type"]), _message(err)
        nested = re.match(r"^([\w.]+): (.*)$", message)
        if nested:  # a validator named the sub-key itself: "weights: no such file"
            key = f"{key}.{nested[1]}" if key else nested[1]
            message = nested[2]
        lines.append(f"{key or '(top level)'}: {message}")
    return f"invalid {path}: " + "; ".join(dict.fromkeys(lines))


def _key_path(loc: tuple, raw: Any, kind: str) -> str:
    # pydantic puts union tags ("dense", "EarlyStopping") inside loc: keep only real keys,
    # plus a last part that is absent from the file (the name of a missing key)
    parts, node = [], raw
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            parts.append(str(part))
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            parts[-1] += f"[{part}]"
            node = node[part]
        elif i == len(loc) - 1 and kind == "missing":
            parts.append(str(part))
    if kind == "union_tag_invalid":
        parts.append("kind")
    return ".".join(parts)


def _message(err: dict) -> str:
    kind, msg = err["type"], err["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden" and tuple(err["loc"]) == ("seed",):
        return "replaced by `seeds`, a list: write `seeds: [<your seed>]`"
    if kind == "extra_forbidden":
        return "unknown key; check its spelling against the keys listed in params.yaml"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"must be one of {err['ctx']['expected_tags']}, got {err['ctx']['tag']!r}"
    msg = f"{msg[0].lower()}{msg[1:]}"
    if isinstance(err.get("input"), dict | list):
        return msg
    return f"{msg}, got {err['input']!r}"
