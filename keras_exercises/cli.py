"""The `keras-exercises` command: `compare [A [B]] [--json]`,
`sweep [--address ADDRESS] [-n NAME] [-S OVERRIDE]... [--json] [--autoscales]` and `warm [stop]`."""

from __future__ import annotations

import argparse
import json
import sys

from keras_exercises.comparison import (
    WORKSPACE,
    Revision,
    compare,
    comparison_table,
    unpaired_seeds,
)
from keras_exercises.params import load_params
from keras_exercises.runtime.errors import PipelineError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="keras-exercises", description="Tools for the Keras exercises pipeline."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    compare_parser = commands.add_parser(
        "compare",
        help="both revisions' answers, their differences and a paired test of each",
        description=(
            "Per question and seed, the answers of revisions A and B, their difference and a "
            "paired test on the same test images (McNemar's exact test for accuracies, a "
            "paired bootstrap for Q6.3). A revision is a git commit, branch or tag, a DVC "
            f"experiment name, or '{WORKSPACE}'. Files are read through DVC: nothing is "
            "checked out."
        ),
    )
    compare_parser.add_argument("a", nargs="?", default="HEAD", help="default: HEAD")
    compare_parser.add_argument("b", nargs="?", default=WORKSPACE, help=f"default: {WORKSPACE}")
    compare_parser.add_argument("--json", action="store_true", help="a JSON list of rows")
    sweep_parser = commands.add_parser(
        "sweep",
        help="a grid of experiments, every stage of each a task on a Ray cluster",
        description=(
            "Runs every grid point's stages as Ray tasks (each starts once the stages it needs "
            "are done; stages the points share run once), then brings each point home as a "
            "DVC experiment restored from DVC's run-cache and pushes it. The workspace must "
            "be committed and pushed, with a DVC remote in .dvc/config. docs/cluster.md."
        ),
    )
    sweep_parser.add_argument(
        "--address",
        help="a Ray cluster: auto, host:port or ray://host:port (default: a Ray instance "
        "on this machine's CPUs and GPUs)",
    )
    sweep_parser.add_argument(
        "-n", "--name", help="the sweep's name; its experiments are <name>-1, <name>-2, ..."
    )
    sweep_parser.add_argument(
        "-S",
        "--set-param",
        dest="overrides",
        action="append",
        default=[],
        metavar="OVERRIDE",
        help="as `dvc exp run -S`, sweeps included: key=a,b, key=choice(a,b), "
        "key=range(1,4); the grid is the product of all of them",
    )
    sweep_parser.add_argument("--json", action="store_true", help="the final table as JSON")
    sweep_parser.add_argument(
        "--autoscales",
        action="store_true",
        help="the cluster adds nodes as work waits: a stage no node fits yet is a warning",
    )
    warm_parser = commands.add_parser(
        "warm",
        help="the warm interpreters that run the stages: list them, or stop them",
        description=(
            "Stages that import TensorFlow or MLflow run in a child of a warm interpreter, "
            "which exits on its own after KERAS_EXERCISES_WARM_IDLE seconds (300) without "
            "a stage. Lists each with its pid, what it preloads, the memory ending it frees "
            "and when it exits; `stop` ends them once their running stages finish."
        ),
    )
    warm_parser.add_argument("action", nargs="?", choices=["stop"], help="end them")
    args = parser.parse_args(argv)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "warm":
        from keras_exercises.runtime import warm_status

        print(warm_status.stop() if args.action == "stop" else warm_status.status())
        return 0
    try:
        statistics = load_params().statistics
        a, b = (Revision(None if rev == WORKSPACE else rev) for rev in (args.a, args.b))
        rows, note = compare(a, b, statistics), unpaired_seeds(a, b)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
    else:
        print(comparison_table(rows, a.label, b.label, statistics.significance_level, note))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from keras_exercises.sweep.command import sweep

    try:
        return sweep(args.name, args.overrides, args.address, args.json, args.autoscales)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def run() -> None:
    """The console script: `main()`, then out without tearing the interpreter down. A
    sweep's process holds Ray's, DVC's and MLflow's modules, whose teardown took 1.2 s after
    the table was printed (the sweep's tail, benchmarks/results/sweep.md). Exit handlers
    still run; what is printed is flushed first."""
    import atexit
    import logging
    import os

    status = main()
    atexit._run_exitfuncs()  # Ray's, MLflow's: what a normal exit would run
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    run()
