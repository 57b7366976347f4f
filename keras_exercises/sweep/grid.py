"""The grid a sweep runs: the product of `-S` overrides in DVC's own sweep syntax
(`key=a,b`, `choice(...)`, `range(...)`), parsed by DVC's code, each point checked against
the params schema before anything runs."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from keras_exercises.runtime.errors import PipelineError

PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class GridPoint:
    """One experiment of the sweep: its DVC experiment name and its params overrides."""

    name: str
    overrides: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"name": self.name, "overrides": list(self.overrides)}


def grid_points(sweep: str, overrides: list[str], params_file: Path) -> list[GridPoint]:
    """`<sweep>-1`, `<sweep>-2`, ... (DVC's own naming of a queued sweep), one per
    combination of `overrides`; a single point of the current params when there are none."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps

    by_file = to_path_overrides(overrides)
    other = sorted(set(by_file) - {PARAMS_FILE})
    if other:
        raise PipelineError(
            f"the overrides name {', '.join(other)}: the stages read only {PARAMS_FILE}; "
            "write them as `-S key=value`"
        )
    try:
        sweeps = get_hydra_sweeps(by_file) if overrides else [{PARAMS_FILE: []}]
    except Exception as exc:  # DVC's and hydra's parse errors share no base class
        raise PipelineError(_syntax_error(overrides, exc)) from None
    points = [
        GridPoint(f"{sweep}-{index}", tuple(sweep_overrides.get(PARAMS_FILE, [])))
        for index, sweep_overrides in enumerate(sweeps, start=1)
    ]
    for point in points:
        check_point(point, params_file)
    return points


def _syntax_error(overrides: list[str], exc: Exception) -> str:
    cause = str(exc.__cause__ or exc).strip().splitlines()
    return (
        f"cannot read the overrides {' '.join(overrides)} ({cause[0] if cause else exc}): "
        "write each as DVC's `dvc exp run -S` does, `key=value`, `key=a,b`, "
        "`key=choice(a,b)` or `key=range(start,stop,step)`"
    )


def apply(overrides: tuple[str, ...], params_file: Path) -> None:
    """Write `overrides` into `params_file`, the way `dvc exp run -S` does."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import apply_overrides

    if not overrides:
        return
    try:
        apply_overrides(params_file, list(overrides))
    except InvalidArgumentError as exc:
        cause = str(exc.__cause__ or exc).strip().splitlines()
        raise PipelineError(
            f"cannot apply {' '.join(overrides)} to {params_file.name} ({cause[0]}): "
            "name keys that params.yaml has, as `dvc exp run -S` does"
        ) from None


def check_point(point: GridPoint, params_file: Path) -> None:
    """The point's params pass the same checks the validate stage makes."""
    from keras_exercises.params import load_params

    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / PARAMS_FILE
        shutil.copyfile(params_file, copy)
        apply(point.overrides, copy)
        try:
            load_params(copy)
        except PipelineError as exc:
            message = str(exc).replace(str(copy), f"{PARAMS_FILE} with {' '.join(point.overrides)}")
            raise PipelineError(f"grid point {point.name}: {message}") from None
