"""One error type for everything a user can fix, one way to report it, and clean stops."""

from __future__ import annotations

import gc
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from keras_exercises.runtime.native_log import known_lines_filtered


class PipelineError(Exception):
    """A problem the user can fix; its message names the problem and the fix."""


class _Signals:
    deferring = False
    pending: int | None = None


def run_stage(main: Callable[[list[str]], None], warm: str | None = None) -> None:
    """Run a stage's main(); report how it failed as one paragraph that ends with how to get
    the previous results back: exit 2 for a PipelineError, 1 for a bug, 128 + N for signal N.

    SIGINT and SIGTERM become SystemExit, so open MLflow runs end as FAILED and no
    half-written output is renamed into place. `warm`: a stage that imports TensorFlow or
    MLflow runs in a warm interpreter that has them loaded (runtime/warm_start.py), the one
    for its kind of stage ("tensorflow" or "report", warm_start.PRELOADS).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ banner out
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        # inside: Ctrl-C while it waits for a warm interpreter to start is a stop like any other
        if warm:
            from keras_exercises.runtime import warm_start

            warm_start.hand_off_main(warm)
        # TensorFlow's C++ log without the lines of a healthy CPU run (runtime/native_log.py)
        with known_lines_filtered() if warm == "tensorflow" else nullcontext():
            main(sys.argv[1:])
    except PipelineError as exc:
        hint = restore_hint()
        print(f"error: {str(exc).rstrip('.') + '.' if hint else exc}{hint}", file=sys.stderr)
        sys.exit(2)
    except SystemExit as exc:
        if isinstance(exc.code, int) and exc.code > 128:
            print(f"stopped by signal {exc.code - 128}.{restore_hint()}", file=sys.stderr)
        raise
    except Exception as exc:
        traceback.print_exc()
        print(
            f"error: the stage failed with an unexpected {type(exc).__name__} (traceback "
            f"above): a bug, please report it.{restore_hint()}",
            file=sys.stderr,
        )
        sys.exit(1)
    finally:
        # The interpreter's last garbage collection walks every object TensorFlow and
        # MLflow made: 0.8 s per stage here, for memory the exiting process frees anyway.
        # Frozen objects are skipped; atexit handlers and file closing still run.
        gc.freeze()


def restore_hint() -> str:
    """Where the previous results are now, for a stage that stops without finishing.

    `dvc repro` deletes a stage's outputs before it runs the stage, and records new ones in
    dvc.lock only when the stage succeeds; every output is in DVC's cache, so the last
    successful run's outputs come back with `dvc checkout`.
    """
    stage = os.environ.get("DVC_STAGE")
    if not stage:  # run by hand, not by DVC: nothing was deleted
        return ""
    if ".dvc/tmp/exps" in Path.cwd().as_posix():
        return " This experiment ran in a temporary copy: your workspace is as it was."
    if stage == "validate":  # its output persists: DVC deletes nothing before it
        return " No stage ran and every output is as it was."
    if not _locked(stage):
        return " (It had no earlier results to restore.)"
    # --force: without it DVC refuses to replace an output this failed run may have left
    return (
        f" DVC deleted {stage}'s previous outputs before running it; "
        f"`dvc checkout --force {stage}` brings back those of its last successful run."
    )


def _locked(stage: str) -> bool:
    """Whether dvc.lock records an earlier successful run of `stage`."""
    import yaml

    try:
        lock = yaml.safe_load(Path("dvc.lock").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    return stage in (lock.get("stages") or {})


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
        raise SystemExit(128 + _Signals.pending)


def stop_requested() -> bool:
    return _Signals.pending is not None
