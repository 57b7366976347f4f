"""The benchmark's instrument, kept out of the stages' code: a `sitecustomize` module that
every Python process started with `timing_env()` loads at start-up. Stage processes (those
that call run_stage) append a timing record to the file PIPELINE_TIMINGS names."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.instrument.sitecustomize import TIMINGS_ENV


def timing_env(timings: Path, env: dict | None = None) -> dict[str, str]:
    """`env` (default: this process's) with the instrument on the path of every Python
    process started in it, DVC's stage commands included."""
    env = dict(os.environ if env is None else env)
    path = [str(Path(__file__).parent), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    env[TIMINGS_ENV] = str(timings)
    return env
