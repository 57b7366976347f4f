"""The sweep on Ray: connect to the cluster, submit every planned stage as a task that Ray
starts once the tasks it needs are done, and follow them with a progress bar."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from keras_exercises.sweep.node_task import (
    PointJob,
    PointOutcome,
    StageJob,
    StageOutcome,
    finish_point,
    run_stage,
)
from keras_exercises.sweep.plan import Plan
from keras_exercises.sweep.resources import WaitWatch, requests

# Ray runs a task again elsewhere when its node or worker dies, never for the stage's own
# failure (retry_exceptions is off)
RETRIES_ON_LOST_NODE = 3


@dataclass
class SweepProgress:
    outcomes: dict[str, StageOutcome] = field(default_factory=dict)  # by stage key
    failures: dict[str, str] = field(default_factory=dict)  # stage key -> its message
    homecomings: dict[str, PointOutcome] = field(default_factory=dict)  # by grid point
    point_failures: dict[str, str] = field(default_factory=dict)  # grid point -> message
    pull_seconds: float = 0.0  # the one `dvc exp pull` that brings the points in


def run_plan(
    plan: Plan,
    job_of: Callable[[str], StageJob],
    point_job_of: Callable[[str], PointJob] | None = None,
    task: Callable[..., StageOutcome] = run_stage,
    finish: Callable[..., PointOutcome] = finish_point,
) -> SweepProgress:
    """Submit every stage of `plan`, each asking Ray for what `requests` says, and after
    each grid point's stages the task that brings it home (`point_job_of`; none without
    it). `task(job, *outcomes_needed)` runs one stage, `finish(point_job, *outcomes)` one
    homecoming; Ray starts each once the tasks it needs are done."""
    import ray
    from tqdm import tqdm

    reported, finishing = ray.remote(_reported), ray.remote(finish)
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    watch = WaitWatch(plan, has_gpus)
    refs = {}
    for key, stage in plan.stages.items():  # every stage after the ones it needs
        cpus, gpus = requests(stage, has_gpus)
        options = {"name": stage.address, "num_cpus": cpus, "num_gpus": gpus}
        needed = [refs[upstream] for upstream in stage.upstream]
        refs[key] = reported.options(**options, max_retries=RETRIES_ON_LOST_NODE).remote(
            task, watch.board, key, job_of(key), *needed
        )
    pending = {ref: ("stage", key) for key, ref in refs.items()}
    for name, keys in plan.point_stages.items() if point_job_of else ():
        options = {"name": f"home {name}", "num_cpus": 1, "max_retries": RETRIES_ON_LOST_NODE}
        ref = finishing.options(**options).remote(point_job_of(name), *[refs[k] for k in keys])
        pending[ref] = ("point", name)

    progress = SweepProgress()
    per_node: Counter[str] = Counter()
    with tqdm(total=len(pending), unit="task", desc="sweep", dynamic_ncols=True) as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            for ref in ready:
                kind, key = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    failures = progress.failures if kind == "stage" else progress.point_failures
                    failures[key] = _failure_message(exc)
                else:
                    if kind == "stage":
                        progress.outcomes[key] = outcome
                    else:
                        progress.homecomings[key] = outcome
                    per_node[outcome.node[:8]] += 1
                watch.done(key)
                bar.update(1)
            nodes = ", ".join(f"node {node}: {n}" for node, n in sorted(per_node.items()))
            postfix = "; ".join(filter(None, [nodes, watch.waiting()]))
            if postfix != bar.postfix:  # drawn again only when it says something new
                bar.set_postfix_str(postfix)
    return progress


def _reported(task: Callable[..., StageOutcome], board, key: str, job, *needed) -> StageOutcome:
    """`task`, once it has told the board it started (the driver tells waiting from running)."""
    board.start.remote(key)
    return task(job, *needed)


def _failure_message(exc: Exception) -> str:
    cause = getattr(exc, "cause", None)
    if cause is not None and type(cause).__name__ == "StageFailed":
        return str(cause)
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__
