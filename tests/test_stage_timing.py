"""The benchmark's instrument (benchmarks/instrument, a sitecustomize outside the stages'
code) records each stage process's wall time, start-up and imports."""

import importlib
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from benchmarks.instrument import timing_env
from benchmarks.instrument.sitecustomize import SECTIONS, ImportClock, SectionClock


def run_with_timings(command: list[str], cwd, timings) -> float:
    started = time.perf_counter()
    subprocess.run(
        command,
        cwd=cwd,
        env=timing_env(timings),
        check=True,
        capture_output=True,
        timeout=120,
    )
    return time.perf_counter() - started


def test_a_stage_records_its_wall_time_start_up_and_imports(project, tmp_path):
    timings = tmp_path / "timings.jsonl"
    elapsed = run_with_timings([sys.executable, "-m", "stages.fetch", "mnist"], project, timings)

    (record,) = [json.loads(line) for line in timings.read_text().splitlines()]
    assert record["stage"] == "fetch mnist"
    # inside what the parent saw, give or take the kernel's clock tick that counts a
    # process's start (whole-second boot-time rounding once put it 0.4 s out)
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert 0 < record["startup_s"] < record["wall_s"] <= elapsed + 2 * tick
    assert record["startup_s"] == round(record["before_main_s"] + record["import_other_s"], 3)
    assert record["import_tensorflow_s"] == record["import_mlflow_s"] == 0
    assert record["peak_rss_mb"] > 10
    assert record["imports_tensorflow"] is False
    assert record["imports_mlflow"] is False
    assert record["compute_s"] == record["tracking_s"] == 0
    assert record["rest_s"] == round(record["wall_s"] - record["startup_s"], 3)


def test_start_up_counts_a_heavy_import_made_inside_main(tmp_path):
    script = tmp_path / "stage_importing_mlflow.py"
    script.write_text(
        textwrap.dedent(
            """
            from keras_exercises.runtime.errors import run_stage

            def main(argv):
                import mlflow  # noqa: F401

            run_stage(main)
            """
        )
    )
    timings = tmp_path / "timings.jsonl"
    run_with_timings([sys.executable, str(script)], tmp_path, timings)

    (record,) = [json.loads(line) for line in timings.read_text().splitlines()]
    assert record["imports_mlflow"] is True
    assert record["import_mlflow_s"] > 0.1  # about 1 s here
    assert record["import_tensorflow_s"] == 0
    assert record["import_other_s"] < record["import_mlflow_s"]  # what MLflow loads is its own
    assert record["startup_s"] == round(
        record["before_main_s"] + record["import_mlflow_s"] + record["import_other_s"], 3
    )


@pytest.fixture
def import_hook_restored(monkeypatch):
    """An ImportClock installed in this process is taken out again after the test."""
    bootstrap = sys.modules["_frozen_importlib"]  # importlib._bootstrap
    monkeypatch.setattr(bootstrap, "_find_and_load", bootstrap._find_and_load)


def test_the_import_clock_gives_each_load_to_its_library_or_the_one_that_imported_it(
    tmp_path, monkeypatch, import_hook_restored
):
    modules = {
        "fake_library": "import time\ntime.sleep(0.3)\nimport its_dependency\n",
        "its_dependency": "import time\ntime.sleep(0.2)\n",  # the library's start-up
        "stage_helper": "import time\ntime.sleep(0.1)\nimport fake_library\n",
        "lazy_part": "import time\ntime.sleep(0.1)\n",
    }
    for name, code in modules.items():
        (tmp_path / f"{name}.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    clock = ImportClock({"fake_library": "library", "lazy_part": "library"})
    clock.install()
    try:
        import stage_helper  # noqa: F401
        import stage_helper as again  # noqa: F401  (loaded: not timed again)

        importlib.import_module("lazy_part")  # as libraries load their parts inside calls
    finally:
        for name in modules:
            sys.modules.pop(name, None)

    assert 0.6 <= clock.seconds["library"] < 1.2
    assert 0.1 <= clock.seconds["other"] < 0.3
    assert 0.7 <= clock.total() < 1.5


def test_a_process_that_is_not_a_stage_writes_no_record(tmp_path):
    timings = tmp_path / "timings.jsonl"
    run_with_timings([sys.executable, "-c", "import json"], tmp_path, timings)
    assert not timings.exists()


def test_without_the_instrument_stages_patch_no_import(project):
    code = (
        "import builtins, importlib._bootstrap as b, stages.validate; "
        "print(type(builtins.__import__).__name__, b._find_and_load.__module__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True
    )
    # neither replaced by a Python wrapper
    assert done.stdout.split() == ["builtin_function_or_method", "_frozen_importlib"]


def test_the_section_clock_times_outermost_calls_without_their_heavy_imports(
    tmp_path, monkeypatch, import_hook_restored
):
    (tmp_path / "fake_stage.py").write_text(
        "import time\n"
        "def log():\n"
        "    time.sleep(0.2)\n"
        "    import slow_library\n"  # start-up, not tracking
        "    fit()\n"  # inside log: counts as log's
        "def fit():\n"
        "    time.sleep(0.1)\n"
    )
    (tmp_path / "slow_library.py").write_text("import time\ntime.sleep(0.3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    imports = ImportClock({"slow_library": "library"})
    sections = SectionClock(
        imports,
        {"tracking": [("fake_stage", None, ("log",))], "compute": [("fake_stage", None, ("fit",))]},
    )
    imports.install()
    try:
        import fake_stage

        sections.wrap_imported()
        fake_stage.log()
        fake_stage.fit()
    finally:
        sys.modules.pop("fake_stage", None)
        sys.modules.pop("slow_library", None)

    assert 0.3 <= imports.seconds["library"] < 1
    assert 0.3 <= sections.seconds["tracking"] < 0.6
    assert 0.1 <= sections.seconds["compute"] < 0.3


def test_every_call_the_benchmark_times_exists_where_it_looks():
    """A renamed function would silently be timed as zero."""
    import importlib

    for targets in SECTIONS.values():
        for module_name, class_name, names in targets:
            module = importlib.import_module(module_name)
            owner = getattr(module, class_name) if class_name else module
            assert all(callable(getattr(owner, name, None)) for name in names), module_name


def test_a_warm_stage_counts_its_time_from_the_process_dvc_started(monkeypatch):
    """A stage handed to a warm interpreter (runtime/warm_start.py) runs in a child forked
    there; its wall time starts with the process that handed it over, named in the env."""
    from benchmarks.instrument import sitecustomize

    started = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(1.5)  # a start a clock tick can tell from this process's
        mine = sitecustomize._process_started()
        monkeypatch.setenv(sitecustomize.WARM_CHILD, str(started.pid))
        theirs = sitecustomize._process_started()
    finally:
        started.kill()
        started.wait()
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert theirs - mine > 1
    assert abs(theirs - (time.clock_gettime(time.CLOCK_BOOTTIME) - 1.5)) < 1.0 + tick
    from keras_exercises.runtime.warm_start import INSIDE

    assert sitecustomize.WARM_CHILD == INSIDE
