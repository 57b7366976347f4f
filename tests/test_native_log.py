"""TensorFlow's known harmless C++ log lines are dropped from a stage's stderr; every other
line, a real error's and a crash's last words included, still shows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from keras_exercises.runtime.native_log import SHOW_ALL_ENV, harmless_here
from tests.support.project_copy import ROOT

# as TensorFlow 2.21 prints them on a CPU machine without NVIDIA's driver
HARMLESS = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796505310.645342    4556 port.cc:153] oneDNN custom operations are on. You "
    "may see slightly different numerical results due to floating-point round-off errors.",
    "I0000 00:00:1796505310.649745    4556 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "E0000 00:00:1796505319.233767    4556 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "E0000 00:00:1796505369.907594    5540 node_def_util.cc:682] NodeDef mentions attribute "
    "use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset; ...>",
]
REAL = "E0000 00:00:1796505369.9 5540 op_kernel.cc:1857] INVALID_ARGUMENT: a real error"


def stage_writing(lines: list[str], then: str = "", env: dict | None = None):
    """A process that writes `lines` to file descriptor 2 as TensorFlow's C++ code does,
    inside the filter, then runs `then`; what it printed, and how it ended."""
    script = textwrap.dedent(f"""
        import os, sys
        from keras_exercises.runtime.native_log import known_lines_filtered
        with known_lines_filtered():
            for line in {lines!r}:
                os.write(2, line.encode() + b"\\n")
            print("from Python", file=sys.stderr)
            {then}
        print("after", file=sys.stderr)
    """)
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_known_lines_are_dropped_and_every_other_line_shows():
    done = stage_writing([*HARMLESS, REAL])
    assert done.returncode == 0, done.stderr
    if "no-driver" in harmless_here():  # this machine: no NVIDIA driver
        assert done.stderr == f"{REAL}\nfrom Python\nafter\n"
    else:  # with a driver, a failing cuInit is a real error and shows
        assert "failed call to cuInit" in done.stderr and "oneDNN" not in done.stderr


def test_a_crash_still_shows_its_last_words():
    """The filter is a process of its own: the stage dying of SIGABRT right after writing
    loses no line of it."""
    fatal = "F0000 00:00:1796505369.9 5540 check.cc:12] Check failed: a native crash"
    done = stage_writing([HARMLESS[3], fatal], then="os.abort()")
    assert done.returncode == -signal.SIGABRT
    assert fatal in done.stderr and "after" not in done.stderr
    assert "cuInit" not in done.stderr or "no-driver" not in harmless_here()


def test_everything_shows_when_asked():
    done = stage_writing([*HARMLESS, REAL], env={SHOW_ALL_ENV: "all"})
    assert done.stderr.splitlines() == [*HARMLESS, REAL, "from Python", "after"]
