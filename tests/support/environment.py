"""The process's environment as it was before: for tests whose code under test sets
variables for the whole process (MLflow's retry and login settings, Ray's auth mode and
debugger hook)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def environment_kept() -> Iterator[None]:
    """Every variable back as it was once the block ends, those set meanwhile gone."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
