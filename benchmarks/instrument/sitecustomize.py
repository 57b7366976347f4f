"""Loaded by Python at start-up when benchmarks/instrument is on PYTHONPATH (see
timing_env): times the modules a stage loads (TensorFlow's, MLflow's, the others), the
stage's compute and its tracking calls, and when the process is a stage (it calls
run_stage), appends its timing record to $PIPELINE_TIMINGS at exit."""

from __future__ import annotations

import atexit
import json
import os
import resource
import sys
import threading
import time

TIMINGS_ENV = "PIPELINE_TIMINGS"  # a file path: each stage appends its timing record
WARM_CHILD = "KERAS_EXERCISES_WARM_CHILD"  # as warm_start.INSIDE: not imported at start-up
STAGE_RUNNER = "keras_exercises.runtime.errors"  # where run_stage, every stage's entry, lives

# What a stage pays to start before it does any work: the interpreter and its own modules
# (before main), then every module loaded once main has begun: these libraries, which the
# stages import inside main so that stages without them start in 0.2 s, and the rest.
# Keras 3 imports TensorFlow, so the two count as one.
HEAVY_LIBRARIES = {"tensorflow": "tensorflow", "keras": "tensorflow", "mlflow": "mlflow"}
OTHER = "other"  # any other module a stage loads once main() has begun

# Where a stage's own time goes, by the calls timed: (module, class or None, names) per
# part. Compute is Keras at work (fit, evaluate, predict, calling a model as the MC passes
# do, and the embeddings, which call it through a tf.function that Python sees only
# once); tracking is every call into MLflow the stages make, through the project's
# tracking package or directly. What is neither is "rest": reading and writing files,
# building models and figures.
SECTIONS = {
    "compute": [
        ("keras.src.models.model", "Model", ("fit", "evaluate", "predict", "__call__")),
        ("keras_exercises.models", None, ("embed",)),
    ],
    "tracking": [
        ("keras_exercises.tracking.store", None, ("connect",)),
        ("keras_exercises.tracking.orphans", None, ("end_orphaned_runs",)),
        ("keras_exercises.tracking.training_run", None, ("log_training", "log_mc_evaluation")),
        ("keras_exercises.tracking.report_runs", None, ("log_answers",)),
        ("mlflow", None, ("start_run",)),
        ("mlflow.tracking.fluent", "ActiveRun", ("__exit__",)),
    ],
}


def _since_boot() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _process_started() -> float:
    """When this stage's process started, in seconds since boot: exact to a clock tick,
    where psutil's create_time adds the boot time, which Linux gives in whole seconds. A
    stage run warm (keras_exercises/runtime/warm_start.py) started with the process DVC
    ran, which handed it over: that process's pid is in WARM_CHILD."""
    process = os.environ.get(WARM_CHILD, "self")
    with open(f"/proc/{process}/stat") as stat:
        # the command name (field 2) may hold spaces; field 22, starttime, is the 20th after it
        ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


class ImportClock:
    """Seconds spent loading modules, per library: each load counts once, for the heavy
    library it belongs to, or else for the one whose load imported it (pandas, imported by
    MLflow, is MLflow's start-up), or else as "other". Hooked where every first import
    passes, `import` statements and importlib.import_module alike, so the submodules a
    library loads lazily, inside a call (MLflow's store on connecting), count as imports
    too. Calls `on_import(name)` after each load, for the stage runner's hook."""

    def __init__(self, libraries: dict[str, str] = HEAVY_LIBRARIES, on_import=None) -> None:
        self.libraries = libraries
        self.seconds = dict.fromkeys([*libraries.values(), OTHER], 0.0)
        self.on_import = on_import
        self._loading: list[list] = []  # [library, seconds of nested loads] per load under way
        self._thread = threading.get_ident()  # other threads' imports are not start-up

    def total(self) -> float:
        return sum(self.seconds.values())

    def install(self) -> None:
        bootstrap = sys.modules["_frozen_importlib"]  # importlib._bootstrap
        real_find_and_load = bootstrap._find_and_load

        def timed_find_and_load(name, import_):
            if threading.get_ident() != self._thread:
                return real_find_and_load(name, import_)
            top = name.partition(".")[0]
            outer = self._loading[-1][0] if self._loading else OTHER
            load = [self.libraries.get(top, outer), 0.0]
            self._loading.append(load)
            start = time.perf_counter()
            try:
                return real_find_and_load(name, import_)
            finally:
                elapsed = time.perf_counter() - start
                self._loading.pop()
                self.seconds[load[0]] += elapsed - load[1]
                if self._loading:
                    self._loading[-1][1] += elapsed
                if self.on_import is not None:
                    self.on_import(name)

        bootstrap._find_and_load = timed_find_and_load


class SectionClock:
    """Seconds spent inside the SECTIONS' calls, outermost call only (Keras calls the model
    inside fit; that counts once, as fit). A module loaded inside a call is start-up,
    which the ImportClock counts, so it is taken out of the call's time."""

    def __init__(self, imports: ImportClock, sections: dict = SECTIONS) -> None:
        self.imports = imports
        self.seconds = dict.fromkeys(sections, 0.0)
        self._pending = [(part, *each) for part, targets in sections.items() for each in targets]
        self._inside = False

    def wrap_imported(self) -> None:
        """Wrap each target whose module has been imported (called after every import)."""
        for pending in list(self._pending):
            part, module_name, class_name, names = pending
            module = sys.modules.get(module_name)
            owner = getattr(module, class_name, None) if class_name else module
            if owner is None or not all(hasattr(owner, name) for name in names):
                continue  # not imported yet, or still running its own imports
            for name in names:
                setattr(owner, name, self._timed(part, getattr(owner, name)))
            self._pending.remove(pending)

    def _timed(self, part: str, function):
        def timed(*args, **kwargs):
            if self._inside:
                return function(*args, **kwargs)
            self._inside = True
            imported = self.imports.total()
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[part] += elapsed - (self.imports.total() - imported)
                self._inside = False

        return timed


class StageTimer:
    """Wraps run_stage as soon as its module is imported, before a stage binds the name,
    to note when main() is entered; records the stage's timing at exit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.entered_main: float | None = None
        self.imported_before_main: dict[str, float] = {}
        self.imports = ImportClock(on_import=self._hook)
        self.sections = SectionClock(self.imports)

    def _hook(self, name: str) -> None:
        self.sections.wrap_imported()
        # the module may still be running its own imports: wait until run_stage is there
        original = getattr(sys.modules.get(STAGE_RUNNER), "run_stage", None)
        if original is None or getattr(original, "_timed", False):
            return
        runner = sys.modules[STAGE_RUNNER]

        def run_stage(main, **options):
            self.entered_main = _since_boot()
            self.imported_before_main = dict(self.imports.seconds)  # part of before_main_s
            # a stage handed to a warm interpreter ends this process without atexit: the
            # record is written where the stage ran
            atexit.register(self.record)
            return original(main, **options)

        run_stage._timed = True
        runner.run_stage = run_stage

    def record(self) -> None:
        """Append one JSON line: wall time from process start, start-up (everything before
        main, plus the modules loaded after: TensorFlow's, MLflow's and the others),
        compute, tracking, the rest, peak memory."""
        started = _process_started()
        seconds = {
            library: loaded - self.imported_before_main.get(library, 0.0)
            for library, loaded in self.imports.seconds.items()
        }
        # rounded before they are summed, so the parts in the record add up to its start-up
        parts = {
            "before_main_s": round(self.entered_main - started, 3),
            "import_tensorflow_s": round(seconds["tensorflow"], 3),
            "import_mlflow_s": round(seconds["mlflow"], 3),
            "import_other_s": round(seconds[OTHER], 3),
        }
        tensorflow = "tensorflow" in sys.modules
        if tensorflow:
            from keras_exercises.runtime.device import training_device
        wall = round(_since_boot() - started, 3)
        startup = round(sum(parts.values()), 3)
        compute, tracking = (round(self.sections.seconds[p], 3) for p in ("compute", "tracking"))
        record = {
            "stage": " ".join([sys.argv[0].rsplit("/", 1)[-1].removesuffix(".py"), *sys.argv[1:]]),
            "wall_s": wall,
            "startup_s": startup,
            **parts,
            "compute_s": compute,
            "tracking_s": tracking,
            "rest_s": round(wall - startup - compute - tracking, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "imports_tensorflow": tensorflow,
            "device": training_device() if tensorflow else None,
            "imports_mlflow": "mlflow" in sys.modules,
        }
        with open(self.path, "a") as out:
            out.write(json.dumps(record) + "\n")


# A stage run warm (keras_exercises/runtime/warm_start.py) loads this module when it starts
# in its child of the warm interpreter, with its own environment, as a process would.
if os.environ.get(TIMINGS_ENV):
    StageTimer(os.environ[TIMINGS_ENV]).imports.install()
