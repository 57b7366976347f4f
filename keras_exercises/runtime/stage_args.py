"""A stage's command-line arguments, parsed by argparse; a wrong one is a PipelineError, so
it is reported like any other mistake (one paragraph, exit 2)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        usage = self.format_usage().strip().removeprefix("usage: ")
        raise _error(f"{self.prog}: {message}; usage: {usage}")


def _error(message: str) -> Exception:
    from keras_exercises.runtime.errors import PipelineError

    return PipelineError(message)


def _seed(value: str) -> int:
    """dvc.yaml passes the seed on the command line, not through params, so adding a seed to
    `seeds` adds stages without rerunning the other seeds' ones."""
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"the seed must be a non-negative integer, got {value!r}")
    return int(value)


def stage_args(
    argv: list[str],
    stage: str,
    item: Sequence[str] = (),
    seed: bool = False,
    optional_items: Sequence[str] = (),
) -> argparse.Namespace:
    """`python -m stages.<stage> [ITEM] [SEED] [OPTIONAL_ITEM ...]`: `item` is the one
    exercise or dataset the stage is for, `optional_items` those it may be narrowed to."""
    parser = _Parser(prog=f"python -m stages.{stage}", add_help=False)
    if item:
        parser.add_argument("item", choices=list(item))
    if seed:
        parser.add_argument("seed", type=_seed, metavar="SEED")
    if optional_items:
        # not choices=: Python 3.11's argparse checks an empty `*` against them and fails
        parser.add_argument("items", nargs="*", metavar="{" + ",".join(optional_items) + "}")
    args = parser.parse_args(argv)
    unknown = [i for i in getattr(args, "items", []) if i not in optional_items]
    if unknown:
        parser.error(f"invalid choice: {unknown[0]!r} (choose from {', '.join(optional_items)})")
    return args
