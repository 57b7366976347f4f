"""`keras-exercises sweep`: check, plan, run every stage on Ray, bring each grid point home
as a DVC experiment as soon as it is done (made on a node, fetched and compared here:
arrivals.py), and end with the table of answers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from dataclasses import asdict
from pathlib import Path

from keras_exercises.sweep.arrivals import Arrival, Arrivals
from keras_exercises.sweep.grid import PARAMS_FILE, GridPoint, grid_points
from keras_exercises.sweep.joining import connect, leave
from keras_exercises.sweep.node_task import PointJob, Source, StageJob
from keras_exercises.sweep.plan import Plan, plan_sweep
from keras_exercises.sweep.preflight import (
    committed_and_pushed,
    dvc_remote_in_project,
    is_local_path,
    names_git_accepts,
    remotes_fit_cluster,
    store_fits_cluster,
)
from keras_exercises.sweep.resources import check_feasible
from keras_exercises.sweep.results import PointResult, results_table
from keras_exercises.sweep.schedule import SweepProgress, run_plan

GIT_REMOTE = "origin"


def default_name(commit: str, overrides: list[str]) -> str:
    """The same command on the same commit gets the same name, so running it again (after
    the driver was killed, say) restores what is done and replaces its experiments."""
    digest = hashlib.sha256("\0".join(overrides).encode()).hexdigest()[:6]
    return f"sweep-{commit[:7]}-{digest}"


def sweep(
    name: str | None,
    overrides: list[str],
    address: str | None,
    as_json: bool,
    autoscales: bool = False,
) -> int:
    """Returns the exit status: 0 when every grid point came home, 1 otherwise. Standard
    output gets the final table (or JSON) alone; what comes before, MLflow's run addresses
    included, goes to standard error."""
    with contextlib.redirect_stdout(sys.stderr):
        status, results, progress, arrived = _sweep(name, overrides, address, autoscales)
    if as_json:
        table = {
            "points": [result.as_dict() for result in results],
            "stages": [asdict(outcome) for outcome in progress.outcomes.values()],
            "homecomings": [asdict(outcome) for outcome in progress.homecomings.values()],
            "arrivals": [asdict(arrival) for arrival in arrived],
        }
        print(json.dumps(table, indent=2))
    else:
        print(results_table(results))
    return 0 if status == "FINISHED" else 1


def _sweep(
    name: str | None, overrides: list[str], address: str | None, autoscales: bool
) -> tuple[str, list[PointResult], SweepProgress, list[Arrival]]:
    import mlflow
    import ray

    from keras_exercises.comparison import Revision
    from keras_exercises.params import load_params
    from keras_exercises.tracking import store

    url, commit = committed_and_pushed(GIT_REMOTE)
    name = name or default_name(commit, overrides)
    points = grid_points(name, overrides, Path(PARAMS_FILE))
    names_git_accepts([point.name for point in points])
    dvc_name, dvc_url = dvc_remote_in_project()
    source = Source(url, commit, dvc_name, dvc_url if is_local_path(dvc_url) else "")
    nodes = connect(address)
    try:
        remotes_fit_cluster(url, dvc_url, nodes)
        store_fits_cluster(store.without_credentials(_store_uri()), nodes)
        plan = plan_sweep(Path("."), commit, points)
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        warning = check_feasible(plan, ray.nodes(), has_gpus, autoscales)
        if warning:
            print(warning)
        experiment_id = store.connect()
        client = mlflow.MlflowClient()
        parent_id = _parent_run(client, experiment_id, name, commit, overrides, len(points))
        print(f"{name}: {len(points)} grid points on {nodes} Ray node(s); MLflow run {parent_id}")
        arrivals = Arrivals(GIT_REMOTE, commit, load_params().statistics, Revision("HEAD"))
        status = "KILLED"  # unless it gets to the end
        try:
            progress = _run(name, source, plan, points, store.tracking_uri(), parent_id, arrivals)
            leave()  # while the last points come in
            results = [_result(point, plan, progress, arrivals) for point in points]
            status = "FINISHED" if all(r.status == "done" for r in results) else "FAILED"
        finally:
            arrivals.close(cancel=status == "KILLED")
            client.set_terminated(parent_id, status)
    finally:
        leave()
    return status, results, progress, arrivals.arrivals


def _parent_run(client, experiment_id: str, name: str, commit: str, overrides, n_points) -> str:
    """One MLflow run for the sweep; every training run of it is its child."""
    grid = " ".join(overrides) or "the current params"
    # the same sweep run again (its driver was killed): the earlier attempt's run ends here
    earlier = f"tags.sweep = '{name}' AND attributes.status = 'RUNNING'"
    for run in client.search_runs([experiment_id], earlier):
        if "mlflow.parentRunId" not in run.data.tags:
            client.set_terminated(run.info.run_id, "KILLED")
    parent = client.create_run(
        experiment_id,
        run_name=f"sweep {name}",
        tags={
            "sweep": name,
            "mlflow.note.content": f"Sweep {name} of commit {commit[:7]}: {grid}, "
            f"{n_points} grid points. Its training runs are its children.",
        },
    )
    client.log_param(parent.info.run_id, "grid", grid)
    return parent.info.run_id


def _run(
    name: str,
    source: Source,
    plan: Plan,
    points: list[GridPoint],
    tracking_uri: str,
    parent_id: str,
    arrivals: Arrivals,
) -> SweepProgress:
    """How each task went (where, how long, whether it ran); each point that came home is
    brought in by `arrivals` as soon as it has."""
    by_name = {point.name: point for point in points}

    def job_of(keys: tuple[str, ...]) -> StageJob:
        stages = [plan.stages[key] for key in keys]
        # any point the first stage serves will do: its key holds its params and its
        # upstream's, and the task's other stages serve it too (Plan.tasks)
        overrides = by_name[stages[0].points[0]].overrides
        points = tuple(dict.fromkeys(point for stage in stages for point in stage.points))
        return StageJob(
            source,
            overrides,
            keys,
            tuple(stage.address for stage in stages),
            name,
            points,
            tracking_uri,
            parent_id,
        )

    def point_job_of(point_name: str) -> PointJob:
        return PointJob(source, by_name[point_name], GIT_REMOTE)

    def arrived(point_name: str) -> None:
        arrivals.bring_in(by_name[point_name])

    return run_plan(plan, job_of, point_job_of, arrived=arrived)


def _result(
    point: GridPoint, plan: Plan, progress: SweepProgress, arrivals: Arrivals | None = None
) -> PointResult:
    """The point's failure, where a stage or its homecoming failed; else what `arrivals`
    made of it (fetched and compared), where it brought it in."""
    keys = plan.point_stages[point.name]
    failed = [k for k in keys if k in progress.failures]
    # the stage that failed of itself, not one that only lacked its failed inputs
    own = [k for k in failed if not set(plan.stages[k].upstream) & set(failed)]
    if own:  # each line once (the stages of one task fail with one message), the fix last
        said = [progress.failures[k].splitlines() for k in own]
        lines = dict.fromkeys([s[0] for s in said] + [line for s in said for line in s[1:]])
        return PointResult(point, "failed", "\n".join(lines))
    if point.name in progress.point_failures:
        message = progress.point_failures[point.name]
        return PointResult(point, "failed", f"bringing it home: {message}")
    return arrivals.result(point) if arrivals else PointResult(point, "done")


def _store_uri() -> str:
    import os

    from keras_exercises.tracking.store import default_store

    return os.environ.get("MLFLOW_TRACKING_URI") or default_store()[0]
