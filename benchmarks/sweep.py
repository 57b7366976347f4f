"""Benchmark `keras-exercises sweep` against `dvc queue` and sequential `dvc exp run`.

    python -m benchmarks.sweep [--mirror DIR] [--jobs 2]

One grid, four experiments of two seeds each (exercise 1's and exercise 2's learning rate,
two values each, `seeds: [42, 43]`), from a fresh commit three times, each in its own copy
of the project with its own empty DVC remote: by `sweep` on a local Ray instance, by
`dvc exp run --queue` + `dvc queue start --jobs N`, and by one `dvc exp run` after another.
Without --mirror, on the tests' tiny synthetic data (start-up and overhead dominate);
with it, on the real slices at the exercises' sizes. Also: each sweep task's overhead
(clone, checkout, push) against its `dvc repro` (pull, restore, the stage), and, on paper
from benchmarks/results/full_size.json, grid points per hour against nodes. Writes
benchmarks/results/sweep.json and sweep.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

from benchmarks.run import RESULTS
from keras_exercises.data.mirror import build_mirror
from tests.conftest import shrink
from tests.support.project_copy import ROOT, copy_project, git

GRID = [
    "exercises.ex1.optimizer.learning_rate=0.001,0.002",
    "exercises.ex2.optimizer.learning_rate=0.001,0.002",
]
POINTS = [
    [f"exercises.ex1.optimizer.learning_rate={a}", f"exercises.ex2.optimizer.learning_rate={b}"]
    for a in ("0.001", "0.002")
    for b in ("0.001", "0.002")
]
NODES = (1, 2, 4, 8, 16)


def project(base: Path, name: str, params: dict) -> Path:
    """A copy of the project at `params`, pushed to a bare origin, with its own DVC remote."""
    origin = base / f"{name}-origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    copy = copy_project(base / name, yaml.safe_dump(params, sort_keys=False))
    git(copy, "remote", "add", "origin", str(origin))
    remote = ["dvc", "remote", "add", "-d", "store", str(base / f"{name}-remote")]
    subprocess.run(remote, cwd=copy, check=True, capture_output=True)
    git(copy, "commit", "-qam", "a DVC remote")
    git(copy, "push", "-q", "origin", "HEAD:refs/heads/main")
    return copy


def run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def by_sweep(copy: Path) -> tuple[float, float, list[dict]]:
    """(seconds in all, seconds after the last stage ended, the stages' outcomes)."""
    started = time.perf_counter()
    command = ["keras-exercises", "sweep", "-n", "bench", "--json"]
    printed = run(command + [arg for o in GRID for arg in ("-S", o)], copy)
    seconds, ended = time.perf_counter() - started, time.time()
    stages = json.loads(printed)["stages"]
    return seconds, ended - max(s["ended_at"] for s in stages), stages


def by_queue(copy: Path, jobs: int) -> float:
    started = time.perf_counter()
    for point in POINTS:
        run(["dvc", "exp", "run", "--queue", *[a for o in point for a in ("-S", o)]], copy)
    run(["dvc", "queue", "start", "--jobs", str(jobs)], copy)
    while any(s in run(["dvc", "queue", "status"], copy) for s in ("Running", "Queued")):
        time.sleep(5)
    seconds = time.perf_counter() - started
    run(["dvc", "queue", "stop"], copy)
    status = run(["dvc", "queue", "status"], copy)
    if status.count("Success") != len(POINTS):
        sys.exit(f"the queue did not finish every experiment:\n{status}")
    return seconds


def by_sequence(copy: Path) -> float:
    started = time.perf_counter()
    for point in POINTS:
        run(["dvc", "exp", "run", *[a for o in point for a in ("-S", o)]], copy)
    return time.perf_counter() - started


def on_paper(task_overhead_s: float, seeds: int = 2) -> list[dict]:
    """Grid points per hour of this grid at full size: each point trains exercises 1 and 2
    once per seed (the rest is shared and amortized over a large grid); a node of two cores
    runs one two-thread TensorFlow task at a time, and each task pays the overhead measured
    here besides."""
    rows = json.loads((RESULTS / "full_size.json").read_text())["rows"]
    total = {row["exercise"]: row["total_s"] for row in rows}
    tasks = 2 * seeds + 1  # exercises 1 and 2 per seed, and the report
    per_point = seeds * (total["ex1"] + total["ex2"]) + tasks * task_overhead_s
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
        sweep_s, after_stages_s, stages = by_sweep(project(base, "sweep", params))
        queue_s = by_queue(project(base, "queue", params), args.jobs)
        sequence_s = by_sequence(project(base, "sequence", params))
    overhead = [s["overhead_seconds"] for s in stages]
    repro = [s["seconds"] - s["overhead_seconds"] for s in stages]
    # what a task costs beyond its stage: the tasks' summed time against the same stages
    # run one after another (the sequence also runs `validate` in each experiment)
    task_total = sum(s["seconds"] for s in stages)
    extra_per_task = (task_total - sequence_s) / len(stages)
    results = {
        "machine": f"{psutil.cpu_count()} CPU cores, {platform.system()} {platform.machine()}",
        "data": str(args.mirror) if args.mirror else "synthetic, the tests' tiny params",
        "experiments": len(POINTS),
        "seeds": 2,
        "seconds": {"sweep": sweep_s, "queue": queue_s, "sequence": sequence_s},
        "queue_jobs": args.jobs,
        "tasks": len(stages),
        "tasks_that_ran": sum(s["ran"] for s in stages),
        "task_overhead_median_s": statistics.median(overhead),
        "task_repro_median_s": statistics.median(repro),
        "task_seconds_total": task_total,
        "after_last_stage_s": after_stages_s,
        "extra_per_task_s": extra_per_task,
        "on_paper": on_paper(max(extra_per_task, statistics.median(overhead))),
        "stages": [
            {
                "address": s["address"],
                "ran": s["ran"],
                "repro_s": s["seconds"] - s["overhead_seconds"],
                "overhead_s": s["overhead_seconds"],
            }
            for s in sorted(stages, key=lambda s: s["started_at"])
        ],
    }
    (RESULTS / "sweep.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "sweep.md").write_text(markdown(results))
    print(markdown(results))


def markdown(r: dict) -> str:
    s = r["seconds"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {r['machine']}; data: {r['data']}. "
        f"{r['experiments']} experiments of {r['seeds']} seeds each "
        "(exercise 1's and 2's learning rate, two values each), from a fresh commit.",
        "",
        "| how | seconds | against one after another |",
        "|---|---|---|",
        f"| `keras-exercises sweep`, a local Ray instance | {s['sweep']:.0f} | "
        f"{s['sweep'] / s['sequence']:.2f} |",
        f"| `dvc queue start --jobs {r['queue_jobs']}` | {s['queue']:.0f} | "
        f"{s['queue'] / s['sequence']:.2f} |",
        f"| `dvc exp run`, one after another | {s['sequence']:.0f} | 1.00 |",
        "",
        f"The sweep ran {r['tasks']} tasks, of which {r['tasks_that_ran']} ran their stage "
        "(a task restores its stage from the run-cache where it can). Per task, the median "
        f"overhead (clone, checkout, push) was {r['task_overhead_median_s']:.1f} s against "
        f"a median {r['task_repro_median_s']:.1f} s in `dvc repro --pull` (pulling, restoring the "
        "stages upstream, running the stage). All tasks together took "
        f"{r['task_seconds_total']:.0f} s against {s['sequence']:.0f} s for the same stages "
        f"one after another: {r['extra_per_task_s']:.1f} s more per task, the price of a "
        "stage run anywhere (its own clone, `validate` again, the stages upstream restored "
        "through DVC, and two tasks sharing this machine's two cores). After the last stage "
        f"ended, the sweep took {r['after_last_stage_s']:.0f} s more to bring the last "
        "points home (`dvc exp run --temp --pull`, one point at a time) and print the table.",
        "",
        "On paper, at full size (benchmarks/results/full_size.json, every epoch run), "
        "with that price on each of a point's five tasks: grid points of this grid per "
        "hour, each node two cores running one two-thread task at a time.",
        "",
        "| nodes | grid points per hour |",
        "|---|---|",
        *[f"| {row['nodes']} | {row['points_per_hour']:.1f} |" for row in r["on_paper"]],
        "",
        "Each task, in the order they started: seconds in `dvc repro --pull` (restoring the "
        "stages upstream, then the stage) and in the rest (clone, checkout, push).",
        "",
        "| stage | ran | repro s | rest s |",
        "|---|---|---|---|",
        *[
            f"| {t['address']} | {'yes' if t['ran'] else 'restored'} | {t['repro_s']:.1f} | "
            f"{t['overhead_s']:.1f} |"
            for t in r["stages"]
        ],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
