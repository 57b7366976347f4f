"""benchmarks/suite_cpu.py: the kernel's process accounting read and each process's CPU
given to the test whose worker started it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from benchmarks import suite_cpu
from benchmarks.suite_cpu import (
    OUTSIDE,
    WORKERS,
    ClockedTest,
    Process,
    attribute,
    markdown,
    parse_accounting,
    parse_clock,
    summarize,
)
from tests.support.project_copy import ROOT

# two lines as Debian's dump-acct prints them, padded as it pads (the second a child of
# the first): command|version|utime|stime|etime|uid|gid|mem|io|pid|ppid|flags|exit|tty|start
DUMPED = "".join(
    "|".join(fields) + "\n"
    for fields in (
        ["python          ", "v3", "   512.00", "    38.00", "  1300.00", "     0", "     0"]
        + [" 15344.00", "     0.00", "   10030", "   10023", "     ", "       0", "__      "]
        + ["Wed Dec  2 15:01:36 2026"],
        ["sleep           ", "v3", "     0.00", "     2.00", "   100.00", "     0", "     0"]
        + ["  2920.00", "     0.00", "   10071", "   10030", "     ", "       0", "__      "]
        + ["Wed Dec  2 15:01:37 2026"],
    )
)


def test_accounting_lines_give_command_pids_cpu_seconds_and_local_start():
    python, sleep = parse_accounting(DUMPED)
    assert (python.command, python.pid, python.ppid) == ("python", 10030, 10023)
    assert python.cpu_s == pytest.approx(5.5) and python.lasted_s == pytest.approx(13.0)
    assert time.localtime(python.started)[:6] == (2026, 12, 2, 15, 1, 36)
    assert (sleep.ppid, sleep.cpu_s, sleep.started - python.started) == (10030, 0.02, 1)


def test_each_process_counts_for_the_test_its_worker_ran_when_it_started():
    t = 1_000_000.0
    runs = [
        ClockedTest(100, t, t + 10, "tests/test_a.py::test_one"),
        ClockedTest(100, t + 10, t + 20, "tests/test_b.py::test_two"),
    ]
    processes = [
        Process("python", 100, 1, 7.0, t - 1, 30),  # the worker
        Process("dvc", 200, 100, 3.0, t + 2, 3),
        Process("python", 201, 200, 4.0, t + 3, 1),  # the stage DVC ran
        Process("dvc", 300, 100, 2.0, t + 15, 2),
        Process("python", 400, 1, 9.0, t + 4, 60),  # a warm interpreter, detached
        Process("python", 401, 400, 1.5, t + 16, 1),  # a stage it forked
        Process("dvc", 200, 1, 0.5, t + 18, 2),  # pid 200 again, no child of the worker
        Process("git", 500, 200, 0.25, t + 19, 0),  # that one's child, not the first's
    ]
    shares = attribute(
        processes,
        parse_clock("".join(f"{r.worker} {r.started} {r.ended} {r.nodeid}\n" for r in runs)),
    )
    assert shares["tests"] == {
        "tests/test_a.py::test_one": 7.0,
        "tests/test_b.py::test_two": 2.0,
        WORKERS: 7.0,
        OUTSIDE: 11.25,
    }
    assert shares["files"]["tests/test_a.py"] == 7.0
    assert sum(shares["files"].values()) == sum(p.cpu_s for p in processes)


def test_a_process_between_two_tests_counts_for_the_second():
    t = 2_000_000.0
    runs = [
        ClockedTest(7, t, t + 5, "tests/test_a.py::x"),
        ClockedTest(7, t + 30, t + 40, "tests/test_a.py::y"),
    ]
    processes = [Process("python", 7, 1, 1.0, t - 2, 60), Process("dvc", 8, 7, 2.0, t + 20, 1)]
    assert attribute(processes, runs)["tests"]["tests/test_a.py::y"] == 2.0


def test_the_results_set_the_cpu_floor_against_the_ten_minute_budget():
    t = 3_000_000.0
    runs = [ClockedTest(5, t, t + 100, "tests/test_a.py::x")]
    processes = [Process("python", 5, 1, 300.0, t, 120), Process("dvc", 6, 5, 1300.0, t + 1, 90)]
    summary = summarize(processes, runs, wall_s=810.0, cores=2, exit_code=0)
    assert summary["floor_s"] == 800.0 and summary["cpu_allowed_s"] == 1200
    shown = markdown({**summary, "measured": "today"})
    assert "| the least wall time that CPU allows on 2 cores | 800 s |" in shown
    assert "| tests/test_a.py | 1300 | 81% |" in shown and "exit code 0" in shown


def test_the_clock_plugin_notes_each_test_on_the_process_that_ran_it(tmp_path):
    (tmp_path / "test_tiny.py").write_text("def test_passes():\n    assert True\n")
    clock = tmp_path / "clock"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "benchmarks.suite_clock",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        # no other plugin: the clock alone, and a second sooner
        env={
            **os.environ,
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PYTHONPATH": str(ROOT),
            suite_cpu.CLOCK_ENV: str(clock),
        },
        check=True,
        capture_output=True,
    )
    (run,) = parse_clock(clock.read_text())
    assert run.nodeid == "test_tiny.py::test_passes" and run.started <= run.ended
    assert run.worker != os.getpid()


def test_without_accounting_the_benchmark_says_what_to_install(monkeypatch):
    monkeypatch.setattr(suite_cpu.shutil, "which", lambda tool: None)
    with pytest.raises(SystemExit) as stopped:
        suite_cpu.main()
    assert "apt-get install -y acct" in str(stopped.value) and "root" in str(stopped.value)


def test_a_suite_the_kernel_did_not_record_is_refused_with_the_cause(tmp_path):
    """As on a disk over 98 % full: the kernel drops its records and the table read zero."""
    recorded = parse_accounting(DUMPED)
    suite_cpu.require_suite_recorded(recorded, 10030, tmp_path)
    with pytest.raises(SystemExit) as stopped:
        suite_cpu.require_suite_recorded(recorded, 4242, tmp_path)
    message = str(stopped.value)
    assert "no end for the suite's own pytest process" in message
    assert "/proc/sys/kernel/acct" in message and f"free space in {tmp_path}" in message


def test_the_suites_warm_interpreters_are_ended_so_that_their_cpu_is_counted(tmp_path):
    """Found by the name they give themselves in `ps` (a script's path no longer shows),
    those the suite started and no others; each waited for, as the kernel writes its record
    only once it has ended. Among this test's own processes: the suite's tests run beside
    it, with servers of their own."""
    named = (
        "import sys, time; from keras_exercises.runtime.warm_server import _name_the_process; "
        "_name_the_process(sys.argv[1] + '/s.sock', ['json']); print(flush=True); time.sleep(60)"
    )
    plain = "import time; print(flush=True); time.sleep(60)"

    def started(code: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, cwd=ROOT
        )
        process.stdout.readline()  # named, if it names itself
        return process

    earlier = started(named)  # running before the suite
    left_running = suite_cpu.warm_interpreters([psutil.Process(earlier.pid)])
    later, other = started(named), started(plain)
    ours = [psutil.Process(p.pid) for p in (earlier, later, other)]
    try:
        assert left_running == {earlier.pid}
        assert suite_cpu.stop_warm_interpreters(left_running, ours) == [later.pid]
        assert later.poll() is not None
        assert earlier.poll() is None and other.poll() is None
    finally:
        for process in (earlier, later, other):
            process.kill()
            process.wait()
