"""Build a data mirror for offline runs: real files where you have them, synthetic elsewhere.

    python -m tools.make_mirror OUT_DIR [--real DIR] [--n-train N] [--n-test N]

Copies <dataset>.npz from --real when it is there and writes a synthetic stand-in of the
right shape otherwise (see keras_exercises.data.mirror).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keras_exercises.data.mirror import build_mirror
from keras_exercises.runtime.errors import PipelineError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--real", type=Path, help="directory holding real <dataset>.npz files")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=500)
    args = parser.parse_args()
    try:
        made = build_mirror(args.out, args.real, args.n_train, args.n_test)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for dataset, how in made.items():
        print(f"{args.out / dataset}.npz: {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
