"""The `keras-exercises` command: `keras-exercises compare [A [B]] [--json]`."""

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
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
