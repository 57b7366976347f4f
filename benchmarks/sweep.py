"""Benchmark `keras-exercises sweep` against `dvc queue` and sequential `dvc exp run`.

    python -m benchmarks.sweep [--mirror DIR] [--jobs 2]

One grid, four experiments of two seeds each (exercise 1's and exercise 2's learning rate,
two values each, `seeds: [42, 43]`), from a fresh commit each time, each in its own copy of
the project with its own empty DVC remote: by `sweep` on a local Ray instance (homecoming
included), by `dvc exp run --queue` + `dvc queue start --jobs N`, and by one `dvc exp run`
after another. Then one point of five seeds, `sweep -S 'seeds=[42,43,44,45,46]'` against
`dvc exp run` of the same params; and the grid's sweep once more on a three-node
`ray.cluster_utils` cluster (a head and two nodes of `threads` CPUs each, the origin served
by `git daemon`, the DVC remote on moto's S3). Without --mirror, on the tests' tiny
synthetic data (start-up and overhead dominate); with it, on the real slices.

Also: each task's overhead (the task less running or restoring its stages), all tasks
together against the same stages one after another, the time from the last stage's end to
the sweep's end against one point's homecoming plus the pull, and, as a model, grid points
per hour against nodes. Writes benchmarks/results/sweep.json and sweep.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import psutil
import yaml

from benchmarks.pages import render
from benchmarks.run import RESULTS
from keras_exercises.data.mirror import build_mirror
from tests.conftest import shrink
from tests.support.networked import git_daemon, put_online
from tests.support.project_copy import ROOT, copy_project, git, set_dvc_remote
from tests.support.services import S3_CREDENTIALS, plain_mlflow_server, s3_endpoint

GRID = [
    "exercises.ex1.optimizer.learning_rate=0.001,0.002",
    "exercises.ex2.optimizer.learning_rate=0.001,0.002",
]
POINTS = [
    [f"exercises.ex1.optimizer.learning_rate={a}", f"exercises.ex2.optimizer.learning_rate={b}"]
    for a in ("0.001", "0.002")
    for b in ("0.001", "0.002")
]
FIVE_SEEDS = "seeds=[42,43,44,45,46]"
NODES = (1, 2, 4, 8, 16)


def project(base: Path, name: str, params: dict) -> Path:
    """A copy of the project at `params`, pushed to a bare origin, with its own DVC remote."""
    origin = base / name / "origin.git"
    origin.parent.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    copy = copy_project(base / name / "project", yaml.safe_dump(params, sort_keys=False))
    git(copy, "remote", "add", "origin", str(origin))
    set_dvc_remote(copy, str(base / name / "dvc-remote"))
    git(copy, "commit", "-qam", "a DVC remote")
    git(copy, "push", "-q", "origin", "HEAD:refs/heads/main")
    return copy


def run(command: list[str], cwd: Path, env: dict | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def by_sweep(copy: Path, overrides: list[str], address: str = "", env=None) -> dict:
    """The sweep's seconds, its tasks, and its time after the last stage ended."""
    command = ["keras-exercises", "sweep", "-n", "bench", "--json"]
    command += ["--address", address] if address else []
    started = time.perf_counter()
    printed = run(command + [arg for o in overrides for arg in ("-S", o)], copy, env)
    seconds, ended = time.perf_counter() - started, time.time()
    table = json.loads(printed)
    stages, homes = table["stages"], table["homecomings"]
    last = max(table["arrivals"], key=lambda arrival: arrival["ended_at"])
    names = [point["name"] for point in table["points"]]
    return {
        "seconds": seconds,
        "after_last_stage_s": ended - max(s["ended_at"] for s in stages),
        # the reference: one `dvc exp pull` brings every point in
        "exp_pull_all_s": exp_pull(copy, names, env),
        "exp_pull_last_s": exp_pull(copy, [last["name"]], env),
        "homecoming_median_s": statistics.median(h["seconds"] for h in homes),
        "homecoming_max_s": max(h["seconds"] for h in homes),
        "pull_s": last["pull_seconds"],  # the last point's: what is left after the last stage
        "compare_s": last["compare_seconds"],
        "pulls_total_s": sum(arrival["pull_seconds"] for arrival in table["arrivals"]),
        "stages": stages,
    }


def exp_pull(copy: Path, names: list[str], env=None) -> float:
    """Seconds of `dvc exp pull` of the named experiments into a fresh clone of the origin,
    their outputs with them: how the launching repository would bring them in at the end."""
    origin = run(["git", "remote", "get-url", "origin"], copy, env).strip()
    with tempfile.TemporaryDirectory(prefix="exp-pull-") as scratch:
        clone = Path(scratch) / "clone"
        run(["git", "clone", "-q", "-b", "main", origin, str(clone)], copy, env)
        started = time.perf_counter()
        run(["dvc", "exp", "pull", "origin", *names], clone, env)
        return time.perf_counter() - started


def by_queue(copy: Path, jobs: int) -> float:
    started = time.perf_counter()
    for point in POINTS:
        run(["dvc", "exp", "run", "--queue", *[a for o in point for a in ("-S", o)]], copy)
    # not through a pipe: the queue's workers inherit it, and once a worker that did not
    # exit held it open, so `run` waited for it
    start = ["dvc", "queue", "start", "--jobs", str(jobs)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(start, cwd=copy, check=True, **quiet)
    while any(s in run(["dvc", "queue", "status"], copy) for s in ("Running", "Queued")):
        time.sleep(5)
    seconds = time.perf_counter() - started
    run(["dvc", "queue", "stop"], copy)
    status = run(["dvc", "queue", "status"], copy)
    if status.count("Success") != len(POINTS):
        failed = [line.split()[0] for line in status.splitlines() if "Failed" in line]
        logs = "".join(run(["dvc", "queue", "logs", task], copy)[-2000:] for task in failed)
        sys.exit(f"the queue did not finish every experiment:\n{status}\n{logs}")
    return seconds


def by_sequence(copy: Path, points: list[list[str]]) -> float:
    started = time.perf_counter()
    for point in points:
        run(["dvc", "exp", "run", *[a for o in point for a in ("-S", o)]], copy)
    return time.perf_counter() - started


def on_three_nodes(base: Path, params: dict) -> dict:
    """The grid's sweep on a head of no CPUs and two nodes of `threads` CPUs, every node its
    own raylet, reaching the origin and the DVC remote over the network."""
    copy = project(base, "cluster", params)
    credentials = {**S3_CREDENTIALS, "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(credentials)  # the nodes start with this process's environment
    # every Ray address on 127.0.0.1, as in the tests; and the sweep joins as these nodes
    # run, without a token (a local Ray instance leaves one in ~/.ray/auth_token)
    os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"})
    from ray.cluster_utils import Cluster  # reads the first when imported

    os.environ["KERAS_EXERCISES_SCRATCH"] = str(base / "cluster" / "scratch")
    with ExitStack() as stack:
        served = stack.enter_context(git_daemon(base / "cluster"))
        s3 = stack.enter_context(s3_endpoint())
        put_online(copy, f"{served}/origin.git", s3)
        cluster = Cluster(
            initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
        )
        stack.callback(cluster.shutdown)
        for _ in range(2):
            cluster.add_node(num_cpus=params["threads"])
        cluster.wait_for_nodes()
        server = stack.enter_context(plain_mlflow_server(base / "cluster"))
        return by_sweep(copy, GRID, cluster.address, {**os.environ, "MLFLOW_TRACKING_URI": server})


def tasks_of(stages: list[dict]) -> list[list[dict]]:
    """The stages of each task (the leading small stages share one), in the order they ran."""
    tasks: dict[str, list[dict]] = {}
    for stage in sorted(stages, key=lambda s: s["started_at"]):
        tasks.setdefault(stage["task"] or stage["key"], []).append(stage)
    return list(tasks.values())


def task_costs(sweep: dict, sequence_s: float) -> dict:
    """What the tasks cost beyond their stages: a task's overhead is its time less running
    or restoring its stages (each stage's outcome carries an equal share of it)."""
    stages, tasks = sweep["stages"], tasks_of(sweep["stages"])
    total = sum(s["seconds"] for s in stages)
    return {
        "tasks": len(tasks),
        "stages_run": len(stages),
        "stages_that_ran": sum(s["ran"] for s in stages),
        "task_overhead_median_s": statistics.median(
            sum(s["overhead_seconds"] for s in task) for task in tasks
        ),
        "task_repro_median_s": statistics.median(
            sum(s["seconds"] - s["overhead_seconds"] for s in task) for task in tasks
        ),
        "task_seconds_total": total,
        "tasks_against_sequence": total / sequence_s,
    }


def model(overhead_s: float, homecoming_s: float, seeds: int = 2) -> list[dict]:
    """A model, not a measurement: grid points of this grid per hour at full size
    (benchmarks/results/full_size.json, every epoch run). Each point trains exercises 1 and 2
    once per seed and makes its report, each a task paying the measured overhead, then
    comes home in a task of the measured length; the shared stages are amortized over a
    large grid; a node of two cores runs one two-thread task at a time, and nodes never
    wait for each other."""
    rows = json.loads((RESULTS / "full_size.json").read_text())["rows"]
    total = {row["exercise"]: row["total_s"] for row in rows}
    tasks = 2 * seeds + 1
    per_point = seeds * (total["ex1"] + total["ex2"]) + tasks * overhead_s + homecoming_s
    return [{"nodes": n, "points_per_hour": 3600 * n / per_point} for n in NODES]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, help="real data slices (default: synthetic)")
    parser.add_argument("--jobs", type=int, default=2, help="the queue's parallel jobs")
    args = parser.parse_args()
    real = yaml.safe_load((ROOT / "params.yaml").read_text())
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as scratch:
        base = Path(scratch)
        if args.mirror:
            params = real
            params["data"]["mirror"] = str(args.mirror.resolve())
            params["exercises"]["ex4"]["model"]["weights"] = None
        else:
            (base / "mirror").mkdir()
            build_mirror(base / "mirror", real=None, n_train=60, n_test=30)
            params = shrink(real, str(base / "mirror"))
        params["seeds"] = [42, 43]
        sweep = by_sweep(project(base, "sweep", params), GRID)
        queue_s = by_queue(project(base, "queue", params), args.jobs)
        sequence_s = by_sequence(project(base, "sequence", params), POINTS)
        five = {
            "sweep": by_sweep(project(base, "five-sweep", params), [FIVE_SEEDS])["seconds"],
            "dvc_exp_run": by_sequence(project(base, "five-run", params), [[FIVE_SEEDS]]),
        }
        cluster = on_three_nodes(base, params)
    costs = task_costs(sweep, sequence_s)
    results = {
        "machine": f"{psutil.cpu_count()} CPU cores, {platform.system()} {platform.machine()}",
        "cpu": platform.processor() or _cpu_model(),
        "data": str(args.mirror) if args.mirror else "synthetic, the tests' tiny params",
        "experiments": len(POINTS),
        "seeds": 2,
        "seconds": {"sweep": sweep["seconds"], "queue": queue_s, "sequence": sequence_s},
        "queue_jobs": args.jobs,
        **costs,
        "after_last_stage_s": sweep["after_last_stage_s"],
        "exp_pull_all_s": sweep["exp_pull_all_s"],
        "exp_pull_last_s": sweep["exp_pull_last_s"],
        "homecoming_median_s": sweep["homecoming_median_s"],
        "homecoming_max_s": sweep["homecoming_max_s"],
        "pull_s": sweep["pull_s"],
        "compare_s": sweep["compare_s"],
        "pulls_total_s": sweep["pulls_total_s"],
        "five_seeds": five,
        "three_nodes": {k: v for k, v in cluster.items() if k != "stages"}
        | {"tasks_seconds_total": sum(s["seconds"] for s in cluster["stages"])},
        "model": model(costs["task_overhead_median_s"], sweep["homecoming_median_s"]),
        "tasks_run": [
            {
                "stages": [s["address"] for s in task],
                "ran": sum(s["ran"] for s in task),
                "repro_s": sum(s["seconds"] - s["overhead_seconds"] for s in task),
                "overhead_s": sum(s["overhead_seconds"] for s in task),
            }
            for task in tasks_of(sweep["stages"])
        ],
    }
    (RESULTS / "sweep.json").write_text(json.dumps(results, indent=2) + "\n")
    page = markdown(results, time.strftime("%Y-%m-%d"))
    (RESULTS / "sweep.md").write_text(page)
    print(page)


def markdown(results: dict, date: str) -> str:
    return render("sweep.md.j2", r=results, date=date)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
