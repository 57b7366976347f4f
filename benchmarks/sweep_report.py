"""benchmarks/results/sweep.md from what benchmarks/sweep.py measured."""

from __future__ import annotations

import time


def markdown(r: dict) -> str:
    s, five, three = r["seconds"], r["five_seeds"], r["three_nodes"]
    home_and_pull = r["homecoming_max_s"] + r["exp_pull_all_s"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {r['machine']} ({r['cpu']}); data: "
        f"{r['data']}. {r['experiments']} experiments of {r['seeds']} seeds each "
        "(exercise 1's and 2's learning rate, two values each), from a fresh commit, each "
        "way in its own copy of the project with an empty DVC remote; the sweep's time "
        "includes bringing every point home.",
        "",
        "| how | seconds | against `dvc queue` | against one after another |",
        "|---|---|---|---|",
        f"| `keras-exercises sweep`, a local Ray instance | {s['sweep']:.0f} | "
        f"{s['sweep'] / s['queue']:.2f} | {s['sweep'] / s['sequence']:.2f} |",
        f"| `dvc queue start --jobs {r['queue_jobs']}` | {s['queue']:.0f} | 1.00 | "
        f"{s['queue'] / s['sequence']:.2f} |",
        f"| `dvc exp run`, one after another | {s['sequence']:.0f} | "
        f"{s['sequence'] / s['queue']:.2f} | 1.00 |",
        "",
        "## What a task costs",
        "",
        f"The sweep ran {r['stages_run']} stages in {r['tasks']} tasks (the ten small "
        "stages that lead the pipeline share one), and "
        f"{r['stages_that_ran']} of the stages ran (a task restores a stage from the "
        "run-cache where it can). All tasks together took "
        f"{r['task_seconds_total']:.0f} s, against {s['sequence']:.0f} s for the same "
        f"stages one after another: **{r['tasks_against_sequence']:.2f}×** (two tasks "
        "share this machine's two cores, which slows each). Per task, the median overhead "
        "beyond running or restoring its stages (clone, inputs pulled, outputs and entries "
        "pushed, its process started and handed to the node's warm DVC interpreter) was "
        f"**{r['task_overhead_median_s']:.1f} s**, against a median "
        f"{r['task_repro_median_s']:.1f} s running or restoring them (DVC's `repro "
        "--single-item`, or a pull by the hashes of the remote's run-cache entry).",
        "",
        f"From the last stage's end to the sweep's end: **{r['after_last_stage_s']:.1f} s**, "
        f"against {home_and_pull:.1f} s for the slowest point's homecoming task "
        f"({r['homecoming_max_s']:.1f} s; median {r['homecoming_median_s']:.1f} s) plus one "
        f"`dvc exp pull` that brings all {r['experiments']} points into a fresh clone of "
        f"the origin, outputs included ({r['exp_pull_all_s']:.1f} s; the last point alone: "
        f"{r['exp_pull_last_s']:.1f} s). In that time the sweep waits for the last point's "
        "homecoming, then fetches its ref, reads and compares its answers with the launching "
        f"commit's ({r['compare_s']:.1f} s, most of it DVC building its index of the point's "
        f"commit, which the fetch then uses too) and fetches its outputs ({r['pull_s']:.1f} "
        "s), while Ray's local instance ends. The other points were brought in the same way "
        f"while stages ran ({r['pulls_total_s']:.1f} s of fetches in all).",
        "",
        "## One point, five seeds",
        "",
        f"`keras-exercises sweep -S '{'seeds=[42,43,44,45,46]'}'` took "
        f"{five['sweep']:.0f} s, `dvc exp run` of the same params {five['dvc_exp_run']:.0f} s: "
        f"**{five['sweep'] / five['dvc_exp_run']:.2f}×**, from a fresh commit each. The "
        "sweep runs the seeds' stages side by side, which DVC has not done since it dropped "
        "`repro --jobs`; on two cores the stages take the cores from each other.",
        "",
        "## Many nodes: a model, and one measured run",
        "",
        "A model, not a measurement: grid points of this grid per hour at full size "
        "(benchmarks/results/full_size.json, every epoch run), each point's five tasks "
        f"paying the median overhead measured above ({r['task_overhead_median_s']:.1f} s) "
        f"and its homecoming task the median measured ({r['homecoming_median_s']:.1f} s); "
        "the shared stages amortized over a large grid; each node two cores running one "
        "two-thread task at a time, and no node waiting for another.",
        "",
        "| nodes | grid points per hour (model) |",
        "|---|---|",
        *[f"| {row['nodes']} | {row['points_per_hour']:.1f} |" for row in r["model"]],
        "",
        "Measured: the same grid's sweep on a three-node `ray.cluster_utils` cluster (a head "
        "of no CPUs, two nodes of `threads` CPUs, each its own raylet; the origin served by "
        "`git daemon`, the DVC remote on moto's S3, an MLflow server) took "
        f"{three['seconds']:.0f} s, its tasks {three['tasks_seconds_total']:.0f} s in all, "
        f"{three['after_last_stage_s']:.1f} s after its last stage (its slowest homecoming "
        f"{three['homecoming_max_s']:.1f} s, one `dvc exp pull` of every point from S3 "
        f"{three['exp_pull_all_s']:.1f} s). All three nodes share "
        "this machine's two cores, so this measures what the network transfers cost, not "
        "how the sweep scales.",
        "",
        "## Each task",
        "",
        "In the order they started: seconds in `dvc repro --single-item` (the stages, or "
        "their restore) and in the rest of the task.",
        "",
        "| stages | ran | repro s | rest s |",
        "|---|---|---|---|",
        *[
            f"| {', '.join(t['stages'])} | {t['ran']} of {len(t['stages'])} | "
            f"{t['repro_s']:.1f} | {t['overhead_s']:.1f} |"
            for t in r["tasks_run"]
        ],
        "",
    ]
    return "\n".join(lines)
