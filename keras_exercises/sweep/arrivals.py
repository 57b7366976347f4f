"""Each grid point, as soon as its node has pushed its experiment: fetched into the launching
repository (its ref with git, its outputs from the DVC remote: exp_refs) and its answers
compared with the launching commit's, on one thread beside the sweep.

The other points' stages are still running meanwhile, so all that is left after the last
stage is the last point's homecoming and its own fetch and comparison, however many points
there are. Points that come home while another is being fetched have their refs fetched
together; each point's answers are read and its outputs fetched through one DVC repository
at its commit (exp_refs.read_then_fetch). The launching commit's answers are read before
any point comes home."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from keras_exercises.runtime.errors import PipelineError
from keras_exercises.sweep.exp_refs import fetch_experiments, read_then_fetch
from keras_exercises.sweep.grid import GridPoint
from keras_exercises.sweep.results import PointResult, compare_with_launch


@dataclass(frozen=True)
class Arrival:
    name: str
    pull_seconds: float  # its ref and outputs into this repository, with any fetched along
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
        self._waiting: list[GridPoint] = []  # queued, not yet being fetched
        self._lock = threading.Lock()
        self.arrivals: list[Arrival] = []
        self._pool.submit(launch.read, "reports/answers.json")

    def bring_in(self, point: GridPoint) -> None:
        self._queued[point.name] = Future()
        with self._lock:
            self._waiting.append(point)
        self._pool.submit(self._arrive)

    def result(self, point: GridPoint) -> PointResult:
        return self._queued[point.name].result()

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)

    def _arrive(self) -> None:
        with self._lock:
            points, self._waiting = self._waiting, []
        if points:  # else an earlier call took them
            try:
                self._bring(points)
            except BaseException as exc:  # to the waiting result(), not lost in the pool
                for point in points:
                    if not self._queued[point.name].done():
                        self._queued[point.name].set_exception(exc)

    def _bring(self, points: list[GridPoint]) -> None:
        """Their refs fetched together, then each point on its own. Where the fetch of
        several fails, each is fetched alone, so that a point's failure is its own."""
        started = time.monotonic()
        try:
            fetch_experiments(self._git_remote, self._commit, [p.name for p in points])
        except PipelineError as exc:
            if len(points) > 1:
                for point in points:
                    self._bring([point])
            else:
                self._queued[points[0].name].set_result(PointResult(points[0], "failed", str(exc)))
            return
        refs_seconds = (time.monotonic() - started) / len(points)
        for point in points:
            self._queued[point.name].set_result(self._compare_and_fetch(point, refs_seconds))

    def _compare_and_fetch(self, point: GridPoint, refs_seconds: float) -> PointResult:
        from keras_exercises.comparison import Revision

        started, result = time.monotonic(), PointResult(point, "done")

        def compare(repo) -> float:
            experiment = Revision(point.name, opened=repo)
            compare_with_launch(result, self._statistics, self._launch, experiment)
            return time.monotonic()

        try:
            compared = read_then_fetch(self._git_remote, self._commit, point.name, compare)
        except PipelineError as exc:
            return PointResult(point, "failed", str(exc))
        fetched = time.monotonic() - compared + refs_seconds
        self.arrivals.append(Arrival(point.name, fetched, compared - started, time.time()))
        return result
