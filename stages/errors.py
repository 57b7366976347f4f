"""One error type for everything a user can fix, one way to report it, and clean stops."""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

TIMINGS_ENV = "PIPELINE_TIMINGS"  # a file path: each stage appends its timing record


class PipelineError(Exception):
    """A problem the user can fix; its message names the problem and the fix."""


class _Signals:
    deferring = False
    pending: int | None = None


def run_stage(main: Callable[[list[str]], None]) -> None:
    """Run a stage's main(); report a PipelineError as one paragraph and exit 2.

    SIGINT and SIGTERM become SystemExit, so open MLflow runs end as FAILED and no
    half-written output is renamed into place.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ banner out
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    entered = _since_boot()
    try:
        main(sys.argv[1:])
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        if os.environ.get(TIMINGS_ENV):
            _record_timing(os.environ[TIMINGS_ENV], entered)
        # The interpreter's last garbage collection walks every object TensorFlow and
        # MLflow made: 0.8 s per stage here, for memory the exiting process frees anyway.
        # Frozen objects are skipped; atexit handlers and file closing still run.
        gc.freeze()


def _since_boot() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _process_started() -> float:
    """When this process started, in seconds since boot: exact to a clock tick, where
    psutil's create_time adds the boot time, which Linux gives in whole seconds."""
    with open("/proc/self/stat") as stat:
        # the command name (field 2) may hold spaces; field 22, starttime, is the 20th after it
        ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


def _record_timing(path: str, entered: float) -> None:
    """One JSON line per stage process, for benchmarks/: wall time from process start,
    start-up (interpreter and module imports, before main), peak memory. The exit after
    this line is not in it; gc.freeze() keeps it short."""
    import json
    import resource

    started = _process_started()
    record = {
        "stage": " ".join([sys.argv[0].rsplit("/", 1)[-1].removesuffix(".py"), *sys.argv[1:]]),
        "wall_s": round(_since_boot() - started, 3),
        "startup_s": round(entered - started, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "imports_tensorflow": "tensorflow" in sys.modules,
        "imports_mlflow": "mlflow" in sys.modules,
    }
    with open(path, "a") as out:
        out.write(json.dumps(record) + "\n")


def _on_signal(signum: int, frame: object) -> None:
    if _Signals.deferring:
        _Signals.pending = signum
    else:
        raise SystemExit(128 + signum)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while TensorFlow runs: an exception raised inside its C++ loop
    can abort the process (seen here: "free(): invalid next size"). The caller polls
    `stop_requested()` and stops cleanly; the exit happens when the block ends."""
    _Signals.deferring = True
    try:
        yield
    finally:
        _Signals.deferring = False
    if _Signals.pending is not None:
        print(f"stopped by signal {_Signals.pending}", file=sys.stderr)
        raise SystemExit(128 + _Signals.pending)


def stop_requested() -> bool:
    return _Signals.pending is not None
