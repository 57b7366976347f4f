"""One error type for everything a user can fix, and one way to report it."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable


class PipelineError(Exception):
    """A problem the user can fix; its message names the problem and the fix."""


def run_stage(main: Callable[[list[str]], None]) -> None:
    """Run a stage's main(); report a PipelineError as one paragraph and exit 2.

    SIGTERM becomes an exception like Ctrl-C's, so open MLflow runs end as FAILED and no
    half-written output is renamed into place.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ banner out
    signal.signal(signal.SIGTERM, _terminate)
    try:
        main(sys.argv[1:])
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
