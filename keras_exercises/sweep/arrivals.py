"""Each grid point, as soon as its node has pushed its experiment: fetched into the launching
repository (its ref with git, its outputs from the DVC remote: exp_refs.pull_experiments)
and its answers compared with the launching commit's, on one thread beside the sweep.

The other points' stages are still running meanwhile, so all that is left after the last
stage is the last point's homecoming and its own fetch and comparison, however many points
there are. Fetched all at once at the end, four points took 2 s to fetch and 1.4 s to
compare after the last stage; each point's fetch is a git fetch of one ref and a DVC fetch
of one revision.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from keras_exercises.runtime.errors import PipelineError
from keras_exercises.sweep.exp_refs import pull_experiments
from keras_exercises.sweep.grid import GridPoint
from keras_exercises.sweep.results import PointResult, compare_with_launch


@dataclass(frozen=True)
class Arrival:
    name: str
    pull_seconds: float  # its ref and outputs into this repository
    compare_seconds: float
    ended_at: float  # seconds since the epoch


class Arrivals:
    """`bring_in(point)` queues a point whose experiment is on the git origin; `result(point)`
    waits for it: the point's answers and differences, or its failure to come in."""

    def __init__(self, git_remote: str, commit: str, statistics, launch) -> None:
        self._git_remote, self._commit = git_remote, commit
        self._statistics, self._launch = statistics, launch  # the launching commit's Revision
        # one thread: DVC's fetches into one repository go one after another
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arrivals")
        self._queued: dict[str, Future[PointResult]] = {}
        self.arrivals: list[Arrival] = []

    def bring_in(self, point: GridPoint) -> None:
        self._queued[point.name] = self._pool.submit(self._arrive, point)

    def result(self, point: GridPoint) -> PointResult:
        return self._queued[point.name].result()

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)

    def _arrive(self, point: GridPoint) -> PointResult:
        started = time.monotonic()
        result = PointResult(point, "done")
        try:
            pull_experiments(self._git_remote, self._commit, [point.name])
        except PipelineError as exc:
            return PointResult(point, "failed", str(exc))
        fetched = time.monotonic()
        compare_with_launch(result, self._statistics, self._launch)
        ended = time.monotonic()
        self.arrivals.append(Arrival(point.name, fetched - started, ended - fetched, time.time()))
        return result
