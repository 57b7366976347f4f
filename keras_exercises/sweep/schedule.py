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
    heard_by,
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
    # stage key -> the stage that failed (itself, or one of its task) and its message
    failures: dict[str, str] = field(default_factory=dict)
    homecomings: dict[str, PointOutcome] = field(default_factory=dict)  # by grid point
    point_failures: dict[str, str] = field(default_factory=dict)  # grid point -> message


def run_plan(
    plan: Plan,
    job_of: Callable[[tuple[str, ...]], StageJob],
    point_job_of: Callable[[str], PointJob] | None = None,
    task: Callable[..., tuple[StageOutcome, ...]] = run_stage,
    finish: Callable[..., PointOutcome] = finish_point,
    arrived: Callable[[str], None] = lambda point: None,
) -> SweepProgress:
    """Submit every task of `plan` (its stages' keys), each asking Ray for what `requests`
    says, and after each grid point's stages the task that brings it home (`point_job_of`;
    none without it). `task(job, *outcomes_needed)` runs a task's stages and returns their
    outcomes, `finish(point_job, *outcomes)` runs one homecoming; Ray starts each once the
    tasks it needs are done, and gives each stage's outcome to the tasks that need it.
    `arrived(point)` is called as each point's homecoming ends well."""
    import ray
    from tqdm import tqdm

    reported, finishing = ray.remote(_reported), ray.remote(finish)
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    watch = WaitWatch(plan, has_gpus)
    refs = {}
    for keys in plan.tasks():  # every task after the ones it needs
        stages = [plan.stages[key] for key in keys]
        asks = [requests(stage, has_gpus) for stage in stages]
        cpus, gpus = max(cpu for cpu, _ in asks), max(gpu for _, gpu in asks)
        more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
        options = {"name": stages[0].address + more, "num_cpus": cpus, "num_gpus": gpus}
        upstream = dict.fromkeys(u for stage in stages for u in stage.upstream if u not in keys)
        returned = reported.options(
            **options, num_returns=len(keys), max_retries=RETRIES_ON_LOST_NODE
        ).remote(task, watch.board, keys, job_of(keys), *[refs[u] for u in upstream])
        refs.update(zip(keys, returned if len(keys) > 1 else [returned], strict=True))
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
                    if kind == "stage":  # named by the stage that failed, where it is known
                        failed = _failed_stage(exc) or plan.stages[key].address
                        progress.failures[key] = f"{failed}: {_failure_message(exc)}"
                    else:
                        progress.point_failures[key] = _failure_message(exc)
                else:
                    if kind == "stage":
                        progress.outcomes[key] = outcome
                    else:
                        progress.homecomings[key] = outcome
                        arrived(key)
                    per_node[outcome.node[:8]] += 1
                watch.done(key)
                bar.update(1)
            nodes = ", ".join(f"node {node}: {n}" for node, n in sorted(per_node.items()))
            postfix = "; ".join(filter(None, [nodes, watch.waiting()]))
            if postfix != bar.postfix:  # drawn again only when it says something new
                bar.set_postfix_str(postfix)
    return progress


def _reported(task: Callable[..., tuple], board, keys: tuple[str, ...], job, *needed):
    """`task`, once it has told the board it started (the driver tells waiting from
    running), telling it what its stages say of the MLflow server as they say it; one
    outcome alone as itself, for Ray's `num_returns=1`."""
    board.start.remote(*keys)
    with heard_by(lambda line: board.say.remote(keys[0], line)):
        outcomes = task(job, *needed)
    return outcomes if len(keys) > 1 else outcomes[0]


def _failed_stage(exc: Exception) -> str:
    return getattr(getattr(exc, "cause", None), "address", "")


def _failure_message(exc: Exception) -> str:
    """The stage's own `error:` line; else Ray's, with the fix where the process or node
    that ran the task died (Ray names only its own log files)."""
    import ray.exceptions as lost

    cause = getattr(exc, "cause", None)
    if cause is not None and type(cause).__name__ == "StageFailed":
        return str(cause)
    lines = str(exc).strip().splitlines()
    message = lines[-1] if lines else type(exc).__name__
    died = (lost.WorkerCrashedError, lost.LocalRayletDiedError, lost.NodeDiedError)
    if isinstance(exc, (*died, lost.ObjectLostError)):
        message += (  # a line of its own: said once for the stages it ended (command.py)
            f"\nThe process or node that ran it died (killed, out of memory, or its machine "
            f"lost), {1 + RETRIES_ON_LOST_NODE} times or with no node left to run it: "
            "sweep again with the same command, and what finished is restored from DVC's "
            "run-cache, not run again."
        )
    return message
