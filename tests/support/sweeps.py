"""What the sweep's tests share: the grid they sweep, and how their clusters start."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

# two points: exercise 1's learning rate, everything else shared
RATES = "exercises.ex1.optimizer.learning_rate=0.001,0.002"
# no dashboard: on two cores its polling is taken from the stages
NO_DASHBOARD = {"include_dashboard": False}


@contextlib.contextmanager
def ray_without_token(folder: Path) -> Iterator[None]:
    """Ray's token mode off in this process, in the environment and in the config Ray read
    from it, whatever this machine's ~/.ray holds (a token from any `ray get-auth-token
    --generate` or local `ray.init` here): connect() turns it on where there is one, as
    `ray start` would, and the tests' clusters are started without. The whole environment
    comes back after."""
    from keras_exercises.sweep.joining import AUTH_MODE_ENV

    saved = dict(os.environ)
    os.environ.pop(AUTH_MODE_ENV, None)
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(folder / "no-token-here")
    _ray_reads_its_config_again()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        _ray_reads_its_config_again()


def _ray_reads_its_config_again() -> None:
    if "ray._raylet" in sys.modules:  # as connect() does once it sets the auth mode
        sys.modules["ray._raylet"].Config.initialize("")
