"""The timing record each stage process writes for benchmarks/ when PIPELINE_TIMINGS is set."""

from __future__ import annotations

import builtins
import json
import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from keras_exercises.runtime.device import training_device

TIMINGS_ENV = "PIPELINE_TIMINGS"  # a file path: each stage appends its timing record

# What a stage pays to start before it does any work: the interpreter and its own modules
# (before main), then these libraries, which the stages import inside main so that stages
# without them start in 0.2 s. Keras 3 imports TensorFlow, so the two count as one.
HEAVY_LIBRARIES = {"tensorflow": "tensorflow", "keras": "tensorflow", "mlflow": "mlflow"}


def _since_boot() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _process_started() -> float:
    """When this process started, in seconds since boot: exact to a clock tick, where
    psutil's create_time adds the boot time, which Linux gives in whole seconds."""
    with open("/proc/self/stat") as stat:
        # the command name (field 2) may hold spaces; field 22, starttime, is the 20th after it
        ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


class ImportClock:
    """Seconds spent in the first import of each heavy library, timed at the outermost
    `import` statement, so a library imported by another counts once, for the outer one."""

    def __init__(self, libraries: dict[str, str] = HEAVY_LIBRARIES) -> None:
        self.libraries = libraries
        self.seconds = dict.fromkeys(libraries.values(), 0.0)
        self._timing = False

    def install(self) -> None:
        real_import = builtins.__import__

        def timed_import(name, globals=None, locals=None, fromlist=(), level=0):
            top = name.partition(".")[0]
            if self._timing or level or top not in self.libraries or top in sys.modules:
                return real_import(name, globals, locals, fromlist, level)
            self._timing = True
            start = time.perf_counter()
            try:
                return real_import(name, globals, locals, fromlist, level)
            finally:
                self._timing = False
                self.seconds[self.libraries[top]] += time.perf_counter() - start

        builtins.__import__ = timed_import


@contextmanager
def stage_timing() -> Iterator[None]:
    """Around a stage's main(): when PIPELINE_TIMINGS names a file, append this process's
    timing record to it as the block ends, however it ends."""
    path = os.environ.get(TIMINGS_ENV)
    if not path:
        yield
        return
    imports = ImportClock()
    imports.install()
    entered_main = _since_boot()
    try:
        yield
    finally:
        _record_timing(path, entered_main, imports)


def _record_timing(path: str, entered_main: float, imports: ImportClock) -> None:
    """Append one JSON line: wall time from process start, start-up (everything before
    main, plus importing TensorFlow and MLflow), peak memory. The exit after this line is
    not in it; run_stage's gc.freeze() keeps that short."""
    started = _process_started()
    # rounded before they are summed, so the parts in the record add up to its start-up
    parts = {
        "before_main_s": round(entered_main - started, 3),
        "import_tensorflow_s": round(imports.seconds["tensorflow"], 3),
        "import_mlflow_s": round(imports.seconds["mlflow"], 3),
    }
    record = {
        "stage": " ".join([sys.argv[0].rsplit("/", 1)[-1].removesuffix(".py"), *sys.argv[1:]]),
        "wall_s": round(_since_boot() - started, 3),
        "startup_s": round(sum(parts.values()), 3),
        **parts,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "imports_tensorflow": "tensorflow" in sys.modules,
        "device": training_device() if "tensorflow" in sys.modules else None,
        "imports_mlflow": "mlflow" in sys.modules,
    }
    with open(path, "a") as out:
        out.write(json.dumps(record) + "\n")
