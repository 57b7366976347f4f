"""TensorFlow's C++ log, without the lines a healthy CPU run prints that a student reads as a
broken install; every other line, a real error included, goes through untouched.

TensorFlow writes them to file descriptor 2 from C++, where Python's own filters cannot
reach, and at a level (E) that TF_CPP_MIN_LOG_LEVEL cannot hide without hiding every real
error too. So the stage's stderr goes through a pipe to a small filter process, which drops
the known lines by what they say. A process, not a thread: when the stage dies (a native
crash, SIGKILL), the filter still has every line it wrote, copies it, and exits at the end
of the pipe. KERAS_EXERCISES_TF_LOG=all shows everything.

Run as a script (`python -I -S native_log.py WHEN...`), it is that filter: standard
library only, so that it starts in milliseconds.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress

SHOW_ALL_ENV = "KERAS_EXERCISES_TF_LOG"

# What each known line says, and when it is harmless: "always", or "no-driver" (on a
# machine without NVIDIA's driver; with one, a failing cuInit is a real error and shows).
KNOWN_LINES = (
    # absl's preamble to the two below, printed by each of TensorFlow's libraries
    ("WARNING: All log messages before absl::InitializeLog() is called", "always"),
    ("] oneDNN custom operations are on.", "always"),
    ("] Could not find cuda drivers on your machine, GPU will not be used.", "no-driver"),
    ("] failed call to cuInit: ", "no-driver"),
    # TensorFlow 2.21's tf.data names an attribute its own MapDataset op does not declare,
    # at every Keras fit on arrays (the op ignores it, as the line itself says)
    ("] NodeDef mentions attribute use_unbounded_threadpool which is not in the op", "always"),
)
# a line cut short in the pipe is let out after this long without its end (a progress bar)
_PARTIAL_LINE_WAIT = 0.1


def harmless_here() -> list[str]:
    """The conditions that hold on this machine, of those KNOWN_LINES names."""
    return ["always"] + ([] if os.path.exists("/proc/driver/nvidia") else ["no-driver"])


@contextmanager
def known_lines_filtered() -> Iterator[None]:
    """Within it, this process's stderr (and its subprocesses') passes the filter."""
    if os.environ.get(SHOW_ALL_ENV) == "all":
        yield
        return
    sys.stderr.flush()
    original = os.dup(2)
    read, write = os.pipe()
    try:
        # its own session: Ctrl-C stops the stage, which then ends the pipe, not the filter
        # before the stage has said why it stopped
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", __file__, *harmless_here()],
            stdin=read,
            stdout=original,
            stderr=original,
            start_new_session=True,
        )
    finally:
        os.close(read)
    os.dup2(write, 2)
    os.close(write)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # the pipe's last end in this process: the filter drains it
        os.close(original)
        # past it, a subprocess of the stage still holds the pipe: its lines still come
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def drop_known_lines(source: int, target: int, conditions: set[str]) -> None:
    """Copy `source` to `target` line by line, without the known lines that are harmless
    under `conditions`, until `source` ends."""
    known = [text.encode() for text, when in KNOWN_LINES if when in conditions]
    pending = b""
    while True:
        ready, _, _ = select.select([source], [], [], _PARTIAL_LINE_WAIT if pending else None)
        if not ready:  # no end of line coming: let the partial line out as it is
            _write_all(target, pending)
            pending = b""
            continue
        chunk = os.read(source, 65536)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        kept = [line + b"\n" for line in lines if not any(text in line for text in known)]
        if kept:
            _write_all(target, b"".join(kept))
    if pending:
        _write_all(target, pending)


def _write_all(target: int, data: bytes) -> None:
    while data:
        data = data[os.write(target, data) :]


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # ends with the pipe, never before it
    drop_known_lines(0, 1, set(sys.argv[1:]))
