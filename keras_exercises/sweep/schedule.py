"""The sweep on Ray: connect to the cluster, submit every planned stage as a task that Ray
starts once the tasks it needs are done, and follow them with a progress bar."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from keras_exercises.runtime.errors import PipelineError
from keras_exercises.sweep.node_task import StageJob, StageOutcome, run_stage
from keras_exercises.sweep.plan import Plan

# Ray runs a task again elsewhere when its node or worker dies, never for the stage's own
# failure (retry_exceptions is off)
RETRIES_ON_LOST_NODE = 3

# The Ray Client's head starts a server process per client, forking while its own gRPC
# threads run; that process dies at once, with an empty log, in some 7% of starts and more
# on a loaded machine (ray-project/ray#63202, open), failing `ray.init("ray://...")` with
# this message. A new client gets a new server; two failures in a row have been seen here.
CLIENT_SERVER_FAILED = "Initialization failure from server"
CLIENT_SERVER_RETRIES = 3


@dataclass
class SweepProgress:
    outcomes: dict[str, StageOutcome] = field(default_factory=dict)  # by stage key
    failures: dict[str, str] = field(default_factory=dict)  # stage key -> its message


def connect(address: str | None) -> int:
    """Join the cluster at `address` (`auto`, `host:port`, `ray://host:port`), or start a
    local Ray instance on this machine's CPUs and GPUs. Returns the number of live nodes."""
    import ray

    if address and address != "auto":
        _reachable(address)
    for attempt in range(1 + CLIENT_SERVER_RETRIES):
        try:
            # "local": a new instance, even where `ray start` left one to connect to
            ray.init(address=address or "local", log_to_driver=False, configure_logging=False)
            break
        except (ConnectionError, RuntimeError, ValueError) as exc:
            ray.shutdown()  # a failed init leaves this process half joined
            if attempt < CLIENT_SERVER_RETRIES and CLIENT_SERVER_FAILED in str(exc):
                continue
            raise PipelineError(
                f"cannot join the Ray cluster at {address} ({_gist(exc)}): start "
                "it (`ray start --head` on one machine, docs/cluster.md) or pass its address "
                "with --address"
            ) from None
    return sum(1 for node in ray.nodes() if node["Alive"])


def _gist(exc: Exception) -> str:
    """The first line of Ray's message, and its last where the first only introduces a
    traceback the Ray Client's head sent back ("Initialization failure from server:")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [repr(exc)]
    return lines[0] if not lines[0].endswith(":") else f"{lines[0]} {lines[-1]}"


def _reachable(address: str) -> None:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise PipelineError(
            f"cannot reach the Ray cluster at {address} ({exc}): check that its head node "
            "runs (`ray status` there) and that --address names it, as host:port (the "
            "head's GCS port, 6379 by default) or ray://host:10001"
        ) from None


def run_plan(
    plan: Plan,
    job_of: Callable[[str], StageJob],
    on_stage_done: Callable[[str, SweepProgress], None],
    task: Callable[..., StageOutcome] = run_stage,
) -> SweepProgress:
    """Submit every stage of `plan`, each asking Ray for its threads as CPUs (and a GPU,
    where the cluster has any, for the stages that run TensorFlow); call `on_stage_done`
    after each ends, in the order they end. `task(job, *outcomes_needed)` runs one stage."""
    import ray
    from tqdm import tqdm

    remote = ray.remote(task)
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    refs = {}
    for key, stage in plan.stages.items():  # every stage after the ones it needs
        options = {
            "name": stage.address,
            "num_cpus": stage.threads or 1,
            "num_gpus": 1 if has_gpus and stage.threads else 0,
            "max_retries": RETRIES_ON_LOST_NODE,
        }
        needed = [refs[upstream] for upstream in stage.upstream]
        refs[key] = remote.options(**options).remote(job_of(key), *needed)

    progress = SweepProgress()
    per_node: Counter[str] = Counter()
    pending = {ref: key for key, ref in refs.items()}
    with tqdm(total=len(refs), unit="stage", desc="sweep", dynamic_ncols=True) as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            for ref in ready:
                key = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    progress.failures[key] = _failure_message(exc)
                else:
                    progress.outcomes[key] = outcome
                    per_node[outcome.node[:8]] += 1
                bar.update(1)
                bar.set_postfix_str(
                    ", ".join(f"node {node}: {n}" for node, n in sorted(per_node.items()))
                )
                on_stage_done(key, progress)
    return progress


def _failure_message(exc: Exception) -> str:
    cause = getattr(exc, "cause", None)
    if cause is not None and type(cause).__name__ == "StageFailed":
        return str(cause)
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__
