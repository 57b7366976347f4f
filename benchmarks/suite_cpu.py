"""Where the test suite's CPU goes: every process it starts, by test file.

    python -m benchmarks.suite_cpu [PYTEST ARGS...]

Runs `pytest` (pyproject's addopts: three xdist workers) under Linux process accounting
(Debian's `acct` package: `accton`, `dump-acct`; root only) with benchmarks/suite_clock.py,
which notes when each test starts and ends on its worker. The kernel writes a record for
every process that ends; each is counted for the test its worker was running when it
started, found through its parents. Processes no worker started (the warm interpreters
that fork the pipeline's stages, servers that detach, anything else on the machine) are
counted apart. On N cores the suite's wall time can be no lower than its CPU seconds over
N: the results set that floor against the 10-minute budget (issue 16).
Writes benchmarks/results/suite_cpu.{json,md}.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.pages import render
from benchmarks.run import RESULTS
from benchmarks.suite_clock import CLOCK_ENV
from keras_exercises.runtime import warm_status

BUDGET_S = 600  # the full suite's target, issue 16
TICKS_PER_S = 100  # dump-acct's default --ahz: its times are in hundredths of a second
OUTSIDE = "(no test worker started it)"
WORKERS = "(the test workers themselves)"


@dataclass(frozen=True)
class Process:
    command: str  # the kernel's 16-character name of its last thread
    pid: int
    ppid: int  # at its end: a parent that ended first leaves it to init
    cpu_s: float  # user and system
    started: float  # seconds since the epoch, whole seconds
    lasted_s: float


@dataclass(frozen=True)
class ClockedTest:
    worker: int  # the pid of the process that ran it
    started: float
    ended: float
    nodeid: str


def parse_accounting(text: str) -> list[Process]:
    """`dump-acct FILE`'s lines: command|version|utime|stime|etime|uid|gid|mem|io|pid|ppid|
    flags|exit code|tty|start, times in ticks, the start in this machine's local time."""
    processes = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) < 15:
            continue
        user, system, lasted = (float(fields[i]) / TICKS_PER_S for i in (2, 3, 4))
        started = time.mktime(time.strptime(fields[14], "%a %b %d %H:%M:%S %Y"))
        processes.append(
            Process(fields[0], int(fields[9]), int(fields[10]), user + system, started, lasted)
        )
    return processes


def parse_clock(text: str) -> list[ClockedTest]:
    runs = []
    for line in text.splitlines():
        worker, started, ended, nodeid = line.split(maxsplit=3)
        runs.append(ClockedTest(int(worker), float(started), float(ended), nodeid))
    return runs


def attribute(processes: list[Process], runs: list[ClockedTest]) -> dict[str, Counter]:
    """CPU seconds by test (nodeid) and by test file. A worker's own CPU counts as the
    workers'; a process whose ancestry reaches no worker, as OUTSIDE. Pids are reused over
    a long suite: a parent is the process of that pid alive when the child started."""
    own_runs: dict[int, list[ClockedTest]] = {}
    for run in sorted(runs, key=lambda r: r.started):
        own_runs.setdefault(run.worker, []).append(run)
    workers = set(own_runs)
    by_pid: dict[int, list[Process]] = {}
    for process in processes:
        by_pid.setdefault(process.pid, []).append(process)

    def parent(child: Process) -> Process | None:
        alive = [
            p
            for p in by_pid.get(child.ppid, [])
            if p.started - 1 <= child.started <= p.started + p.lasted_s + 1
        ]
        return alive[0] if alive else None

    def is_worker(process: Process) -> bool:
        first = own_runs[process.pid][0]
        return process.started - 1 <= first.started <= process.started + process.lasted_s + 1

    def worker_of(process: Process) -> int | None:
        seen = 0
        while (up := parent(process)) is not None and seen < 100:
            if up.pid in workers and is_worker(up):
                return up.pid
            process, seen = up, seen + 1
        return None

    tests: Counter = Counter()
    for process in processes:
        if process.pid in workers and is_worker(process):
            tests[WORKERS] += process.cpu_s
            continue
        worker = worker_of(process)
        if worker is None:
            tests[OUTSIDE] += process.cpu_s
            continue
        tests[_test_at(own_runs[worker], process.started)] += process.cpu_s
    files: Counter = Counter()
    for nodeid, cpu_s in tests.items():
        files[nodeid.split("::")[0]] += cpu_s
    return {"tests": tests, "files": files}


def _test_at(own: list[ClockedTest], started: float) -> str:
    """The test of `own` (one worker's, in order) running at `started` (a whole second: a
    second's slack either side), else the next (set-up between two tests is the second's)."""
    for run in own:
        if run.started - 1 <= started <= run.ended + 1:
            return run.nodeid
    later = [r for r in own if r.started >= started]
    return later[0].nodeid if later else "(after the worker's last test)"


def summarize(
    processes: list[Process], runs: list[ClockedTest], wall_s: float, cores: int, exit_code: int
) -> dict:
    shares = attribute(processes, runs)
    cpu_s = sum(p.cpu_s for p in processes)
    return {
        "wall_s": round(wall_s, 1),
        "cores": cores,
        "cpu_s": round(cpu_s, 1),
        "tests": len(runs),
        "pytest_exit_code": exit_code,
        "floor_s": round(cpu_s / cores, 1),
        "budget_s": BUDGET_S,
        "cpu_allowed_s": BUDGET_S * cores,
        "files": {k: round(v, 1) for k, v in shares["files"].most_common()},
        "slowest_tests": {k: round(v, 1) for k, v in shares["tests"].most_common(15)},
    }


def markdown(s: dict) -> str:
    return render("suite_cpu.md.j2", s=s)


def _require_accounting() -> None:
    missing = [tool for tool in ("accton", "dump-acct") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        raise SystemExit(
            "error: this benchmark needs Linux process accounting, which only root can turn "
            f"on{f' (missing: {missing})' if missing else ''}: install Debian's acct "
            "package (apt-get install -y acct) and run it as root."
        )


def require_suite_recorded(processes: Iterable[Process], suite_pid: int, folder: Path) -> None:
    """The kernel writes no records once free space where they go falls under 2 % (and
    until it is over 4 %: /proc/sys/kernel/acct), and says so nowhere: a suite without its
    own record was not measured, and a table of zeros must not pass for one."""
    if not any(process.pid == suite_pid for process in processes):
        disk = shutil.disk_usage(folder)
        free = disk.free / disk.total
        raise SystemExit(
            "error: the kernel recorded no end for the suite's own pytest process, so its "
            "CPU was not counted: the kernel stops writing process accounting once free "
            f"space in {folder} falls below a share set in /proc/sys/kernel/acct, and starts "
            f"again only above a larger one (by default 2 % and 4 %; free now: {free:.1%}). "
            "Free disk space there (or point TMPDIR at a disk with room) and run the "
            "benchmark again."
        )


def warm_interpreters(processes: Iterable[psutil.Process] | None = None) -> set[int]:
    """The pids of the warm interpreters among `processes` (every process on the machine
    unless given), by the name each gives itself in `ps`: each test's copy of the project
    starts its own copy's server, in runtime folders `keras-exercises warm stop` does not
    look in."""
    found = set()
    for process in psutil.process_iter() if processes is None else processes:
        with contextlib.suppress(psutil.Error):  # ended meanwhile
            if warm_status.TITLE in " ".join(process.cmdline()):
                found.add(process.pid)
    return found


def stop_warm_interpreters(
    left_running: set[int], processes: Iterable[psutil.Process] | None = None
) -> list[int]:
    """The suite's warm interpreters outlive it by their idle time: ended now, they and what
    they ran are in the accounting. Those in `left_running` (running before the suite) are
    not the suite's. Returns the pids ended."""
    servers = []
    for pid in sorted(warm_interpreters(processes) - left_running):
        with contextlib.suppress(psutil.Error):  # it ended by itself meanwhile
            server = psutil.Process(pid)
            server.terminate()
            servers.append(server)
    # a server lets its running stage finish first; one still running is not counted
    psutil.wait_procs(servers, timeout=60)
    return [server.pid for server in servers]


def main() -> None:
    _require_accounting()
    root = Path(__file__).parent.parent
    with tempfile.TemporaryDirectory(prefix="suite-cpu-") as tmp:
        accounting, clock = Path(tmp) / "pacct", Path(tmp) / "clock"
        accounting.touch()
        subprocess.run(["accton", str(accounting)], check=True, capture_output=True)
        started, left_running = time.time(), warm_interpreters()
        if left_running:  # they may serve the suite's stages, their imports paid already
            print(
                f"warning: {len(left_running)} warm interpreter(s) ran before the suite: what "
                "they do for it is not counted. `keras-exercises warm stop` first.",
                file=sys.stderr,
            )
        try:
            suite = subprocess.Popen(
                [sys.executable, "-m", "pytest", "-p", "benchmarks.suite_clock", *sys.argv[1:]],
                cwd=root,
                env={**os.environ, CLOCK_ENV: str(clock)},
            )
            suite.wait()
            wall_s = time.time() - started
            stop_warm_interpreters(left_running)
        finally:
            subprocess.run(["accton", "off"], check=True, capture_output=True)
        dumped = subprocess.run(["dump-acct", str(accounting)], capture_output=True, text=True)
        processes = [p for p in parse_accounting(dumped.stdout) if p.started >= int(started)]
        require_suite_recorded(processes, suite.pid, Path(tmp))
        runs = parse_clock(clock.read_text())
    summary = summarize(processes, runs, wall_s, psutil.cpu_count(), suite.returncode)
    summary["measured"] = f"{time.strftime('%Y-%m-%d')} on {psutil.cpu_count()} CPU cores, " + (
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "suite_cpu.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / "suite_cpu.md").write_text(markdown(summary))
    print(markdown(summary))
    sys.exit(suite.returncode)


if __name__ == "__main__":
    main()
