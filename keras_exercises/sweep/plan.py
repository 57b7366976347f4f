"""What a sweep runs: each grid point's stages and their order, read from dvc.yaml through
DVC's API, with a stage that several points share (same command, same params, same
upstream stages, same commit) planned once for all of them."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from keras_exercises.sweep.grid import PARAMS_FILE, GridPoint, apply

THREADS_PARAM = "threads"


@dataclass
class PlannedStage:
    """One stage to run once: `address` as DVC names it (`train@ex1-42`), the keys of the
    stages it needs, the grid points it serves and the TensorFlow threads it asks for (None
    for a stage that does not read `threads`, which needs one CPU and no GPU)."""

    key: str
    address: str
    upstream: tuple[str, ...]
    threads: int | None
    points: list[str] = field(default_factory=list)


@dataclass
class Plan:
    stages: dict[str, PlannedStage]  # by key, every stage after the ones it needs
    point_stages: dict[str, list[str]]  # grid point name -> keys of all its stages

    def tasks(self) -> list[tuple[str, ...]]:
        """The stages of each Ray task, every task after the ones it needs. A task costs a
        clone, DVC's start and its transfers, more than a stage that checks params or copies
        a file: the stages that lead the pipeline without TensorFlow and serve every grid
        point (validate, fetch, prepare) run in order in one task; each other stage in its
        own, side by side with the others."""
        everyone, leading = set(self.point_stages), []
        for key, stage in self.stages.items():
            light = stage.threads is None and set(stage.points) >= everyone
            if light and set(stage.upstream) <= set(leading):
                leading.append(key)
        others = [(key,) for key in self.stages if key not in leading]
        return [tuple(leading), *others] if leading else others


def plan_sweep(repo: Path, commit: str, points: list[GridPoint]) -> Plan:
    """Each point's pipeline at `commit`, its params overridden, merged into one plan."""
    stages: dict[str, PlannedStage] = {}
    point_stages: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="sweep-plan-") as scratch:
        clone = Path(scratch) / "repo"
        _git("clone", "--quiet", "--shared", "--no-checkout", str(repo), str(clone))
        _git("-C", str(clone), "checkout", "--quiet", commit)
        for point in points:
            _git("-C", str(clone), "checkout", "--quiet", commit, "--", PARAMS_FILE)
            apply(point.overrides, clone / PARAMS_FILE)
            keys = []
            for planned in _pipeline(clone):
                known = stages.setdefault(planned.key, planned)
                known.points.append(point.name)
                keys.append(planned.key)
            point_stages[point.name] = keys
    return Plan(stages, point_stages)


def _pipeline(workspace: Path) -> list[PlannedStage]:
    import networkx as nx
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(workspace)) as repo:
        graph = repo.index.graph  # an edge goes from a stage to a stage it needs
        planned: dict[object, PlannedStage] = {}
        for stage in reversed(list(nx.topological_sort(graph))):
            params: dict = {}
            for dep in stage.deps:
                if isinstance(dep, ParamsDependency):
                    params.update(dep.read_params())
            upstream = tuple(sorted(planned[needed].key for needed in graph.successors(stage)))
            identity = {"stage": stage.name, "cmd": stage.cmd, "params": params}
            key = hashlib.sha256(
                json.dumps([identity, upstream], sort_keys=True, default=str).encode()
            ).hexdigest()[:16]
            threads = params.get(THREADS_PARAM)
            planned[stage] = PlannedStage(key, stage.name, upstream, threads)
    return list(planned.values())


def _git(*args: str) -> None:
    subprocess.run(["git", *args], check=True, capture_output=True, text=True)
