"""Loaded by Python at start-up when benchmarks/instrument is on PYTHONPATH (see
timing_env): times the first imports of TensorFlow and MLflow, and when the process is a
stage (it calls run_stage), appends its timing record to $PIPELINE_TIMINGS at exit."""

from __future__ import annotations

import atexit
import builtins
import json
import os
import resource
import sys
import time

TIMINGS_ENV = "PIPELINE_TIMINGS"  # a file path: each stage appends its timing record
STAGE_RUNNER = "keras_exercises.runtime.errors"  # where run_stage, every stage's entry, lives

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
    `import` statement, so a library imported by another counts once, for the outer one.
    Calls `on_import(name)` after each import, for the stage runner's hook."""

    def __init__(self, libraries: dict[str, str] = HEAVY_LIBRARIES, on_import=None) -> None:
        self.libraries = libraries
        self.seconds = dict.fromkeys(libraries.values(), 0.0)
        self.on_import = on_import
        self._timing = False

    def install(self) -> None:
        real_import = builtins.__import__

        def timed_import(name, globals=None, locals=None, fromlist=(), level=0):
            top = name.partition(".")[0]
            if self._timing or level or top not in self.libraries or top in sys.modules:
                module = real_import(name, globals, locals, fromlist, level)
            else:
                self._timing = True
                start = time.perf_counter()
                try:
                    module = real_import(name, globals, locals, fromlist, level)
                finally:
                    self._timing = False
                    self.seconds[self.libraries[top]] += time.perf_counter() - start
            if self.on_import is not None:
                self.on_import(name)
            return module

        builtins.__import__ = timed_import


class StageTimer:
    """Wraps run_stage as soon as its module is imported, before a stage binds the name,
    to note when main() is entered; records the stage's timing at exit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.entered_main: float | None = None
        self.imports = ImportClock(on_import=self._hook)

    def _hook(self, name: str) -> None:
        # the module may still be running its own imports: wait until run_stage is there
        original = getattr(sys.modules.get(STAGE_RUNNER), "run_stage", None)
        if original is None or getattr(original, "_timed", False):
            return
        runner = sys.modules[STAGE_RUNNER]

        def run_stage(main):
            self.entered_main = _since_boot()
            atexit.register(self.record)
            return original(main)

        run_stage._timed = True
        runner.run_stage = run_stage

    def record(self) -> None:
        """Append one JSON line: wall time from process start, start-up (everything before
        main, plus importing TensorFlow and MLflow), peak memory."""
        started = _process_started()
        seconds = self.imports.seconds
        # rounded before they are summed, so the parts in the record add up to its start-up
        parts = {
            "before_main_s": round(self.entered_main - started, 3),
            "import_tensorflow_s": round(seconds["tensorflow"], 3),
            "import_mlflow_s": round(seconds["mlflow"], 3),
        }
        tensorflow = "tensorflow" in sys.modules
        if tensorflow:
            from keras_exercises.runtime.device import training_device
        record = {
            "stage": " ".join([sys.argv[0].rsplit("/", 1)[-1].removesuffix(".py"), *sys.argv[1:]]),
            "wall_s": round(_since_boot() - started, 3),
            "startup_s": round(sum(parts.values()), 3),
            **parts,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "imports_tensorflow": tensorflow,
            "device": training_device() if tensorflow else None,
            "imports_mlflow": "mlflow" in sys.modules,
        }
        with open(self.path, "a") as out:
            out.write(json.dumps(record) + "\n")


if os.environ.get(TIMINGS_ENV):
    StageTimer(os.environ[TIMINGS_ENV]).imports.install()
