"""What the sweep's tests share: the grid they sweep, and how their clusters start."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from tests.support.environment import environment_kept

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
    from keras_exercises.sweep.joining import AUTH_MODE_ENV, ray_reads_its_auth_mode

    try:
        with environment_kept():
            os.environ.pop(AUTH_MODE_ENV, None)
            os.environ["RAY_AUTH_TOKEN_PATH"] = str(folder / "no-token-here")
            ray_reads_its_auth_mode()
            yield
    finally:
        ray_reads_its_auth_mode()  # from the environment as it was
