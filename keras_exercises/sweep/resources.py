"""What each stage asks Ray for, whether any node of the cluster can give it (checked before
anything runs), and, while the sweep runs, which tasks have waited long for it and why:
Ray itself says "infeasible" only in its own session logs, and a task that no node fits
waits forever. A stage that waits for the MLflow server says so on its node, far from the
user's terminal: that is repeated too."""

from __future__ import annotations

import contextlib
import time

from keras_exercises.runtime.errors import PipelineError
from keras_exercises.sweep.plan import Plan, PlannedStage
from keras_exercises.tracking.outages import WAITING_UP_TO

WAIT_BEFORE_SAYING_S = 60.0


def requests(stage: PlannedStage, has_gpus: bool) -> tuple[int, int]:
    """(CPUs, GPUs): a stage that runs TensorFlow (reads `threads`) asks for its threads as
    CPUs, and a GPU where the cluster has any; the others one CPU."""
    return stage.threads or 1, 1 if has_gpus and stage.threads else 0


def _asks(cpus: int, gpus: int) -> str:
    return f"{cpus} CPU{'s' * (cpus != 1)}" + (f" and {gpus} GPU" if gpus else "")


def _fits(node: dict, cpus: int, gpus: int) -> bool:
    offered = node.get("Resources", {})
    return offered.get("CPU", 0) >= cpus and offered.get("GPU", 0) >= gpus


def _most_cpus(nodes: list[dict]) -> int:
    return int(max((n.get("Resources", {}).get("CPU", 0) for n in nodes), default=0))


def _largest(nodes: list[dict]) -> str:
    cpus = _most_cpus(nodes)
    return f"the largest node offers {cpus} CPU{'s' * (cpus != 1)}"


def check_feasible(plan: Plan, nodes: list[dict], has_gpus: bool, autoscales: bool) -> str:
    """Raises, naming the first stage no live node can run, what it asks, what the largest
    node offers and the fix; on a cluster that autoscales, returns that as a warning."""
    alive = [node for node in nodes if node.get("Alive")]
    for stage in plan.stages.values():
        cpus, gpus = requests(stage, has_gpus)
        if any(_fits(node, cpus, gpus) for node in alive):
            continue
        asked = f"stage {stage.address} asks for {_asks(cpus, gpus)}"
        if stage.threads:
            asked += f" (threads: {stage.threads} in params.yaml)"
        if autoscales:
            return f"warning: {asked} and no node offers that yet: it waits for the autoscaler"
        raise PipelineError(
            f"{asked}, and no node of the cluster can run it ({_largest(alive)}): sweep with "
            f"-S threads={max(1, _most_cpus(alive))}, or "
            "start nodes with more CPUs (`ray start --num-cpus N`); on a cluster that adds "
            "nodes as work waits, pass --autoscales"
        )
    return ""


def board():
    """A small Ray actor on the driver's node that the tasks tell when they start, and what
    their stages say about waiting while they run."""
    import ray

    @ray.remote(num_cpus=0, max_restarts=-1)
    class Board:
        def __init__(self) -> None:
            self.started: set[str] = set()
            self.said: dict[str, tuple[str, float]] = {}  # task key -> its line, and when

        def start(self, *keys: str) -> None:
            self.started.update(keys)

        def say(self, key: str, line: str) -> None:
            self.said[key] = (line, time.time())

        def snapshot(self) -> tuple[set[str], dict[str, tuple[str, float]]]:
            return self.started, self.said

    here = ray.get_runtime_context().get_node_id()
    strategy = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(here, soft=True)
    return Board.options(scheduling_strategy=strategy).remote()


class WaitWatch:
    """Which stage tasks have had every input for over a minute and not started, and why;
    and which wait for the MLflow server, as their stages said."""

    def __init__(self, plan: Plan, has_gpus: bool) -> None:
        self.plan, self.has_gpus = plan, has_gpus
        self.board = board()
        self.ready_since: dict[str, float] = {
            key: time.monotonic() for key, stage in plan.stages.items() if not stage.upstream
        }
        self.ended: set[str] = set()
        self.started: set[str] = set()
        self.said: dict[str, tuple[str, float]] = {}
        self.asked = None  # the board's answer to come, never waited for
        self.heard = False  # until the board answers, no task is known to have started

    def done(self, key: str) -> None:
        self.ended.add(key)
        for other, stage in self.plan.stages.items():
            if other not in self.ready_since and set(stage.upstream) <= self.ended:
                self.ready_since[other] = time.monotonic()

    def waiting(self) -> str:
        """The progress line's note: a stage that waits for the MLflow server, and the
        stages that have waited over a minute for resources, and why."""
        self._hear_board()
        return "; ".join(filter(None, [self._server_away(), self._resources_busy()]))

    def _hear_board(self) -> None:
        """The board's last answer, if it came (at most one call of the driver's loop old),
        and the next question; the loop never waits for an actor."""
        import ray

        if self.asked is not None:
            ready, _ = ray.wait([self.asked], timeout=0)
            if not ready:
                return
            with contextlib.suppress(ray.exceptions.RayError):
                self.started, self.said = ray.get(ready[0])
                self.heard = True
        self.asked = self.board.snapshot.remote()

    def _server_away(self) -> str:
        away = [
            (at, key, line)
            for key, (line, at) in self.said.items()
            if key not in self.ended and WAITING_UP_TO in line
        ]
        if not away:
            return ""
        at, key, line = min(away)
        # "the MLflow tracking server at URL does not answer (why)", without the wait's limit
        said = line.split(WAITING_UP_TO, 1)[0]
        others = f" and {len(away) - 1} more" if len(away) > 1 else ""
        waited = f"waited {time.time() - at:.0f} s so far"
        return f"{self.plan.stages[key].address}{others}: {said[0].lower()}{said[1:]}, {waited}"

    def _resources_busy(self) -> str:
        import ray

        if not self.heard:
            return ""
        now = time.monotonic()
        long = [
            key
            for key, since in self.ready_since.items()
            if key not in self.ended
            and key not in self.started
            and now - since > WAIT_BEFORE_SAYING_S
        ]
        if not long:
            return ""
        stage = self.plan.stages[long[0]]
        cpus, gpus = requests(stage, self.has_gpus)
        alive = [node for node in ray.nodes() if node.get("Alive")]
        why = (
            "every node that fits it is busy with other tasks"
            if any(_fits(node, cpus, gpus) for node in alive)
            else f"no node offers that ({_largest(alive)})"
        )
        others = f" and {len(long) - 1} more" if len(long) > 1 else ""
        seconds = now - self.ready_since[long[0]]
        return f"{stage.address}{others} waited {seconds:.0f} s for {_asks(cpus, gpus)}: {why}"
