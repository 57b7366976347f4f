"""`joining.connect` in a process of its own: Ray keeps its auth mode and its C++ logging
for the process that first joined, so each way of joining gets a fresh one."""

from __future__ import annotations

import os
import subprocess
import sys

JOIN = (
    "import sys\n"
    "from keras_exercises.runtime.errors import PipelineError\n"
    "from keras_exercises.sweep.joining import connect\n"
    "try:\n"
    "    print(connect(sys.argv[1]))\n"
    "except PipelineError as exc:\n"
    "    sys.exit(f'error: {exc}')\n"
)


def join(address: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """With `env` as its whole environment (this one's by default): its exit code, the
    nodes it counted on stdout, or `error: ...` last on stderr."""
    return subprocess.run(
        [sys.executable, "-c", JOIN, address],
        env=os.environ if env is None else env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def last_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else ""
