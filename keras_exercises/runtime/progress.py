"""Progress of long work (downloads, embeddings, MC passes): a live tqdm bar on a terminal;
in a log, a plain line at each quarter, so a CI log holds four lines, not thousands of
carriage returns."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LOG_LINES = 4  # lines per task when stderr is not a terminal
LOG_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"


@contextmanager
def progress(
    description: str, total: int | None, unit: str = "images"
) -> Iterator[Callable[[int], None]]:
    """Yield `update(n)`, to call as each n units are done. unit "B" shows bytes as KB, MB."""
    from tqdm import tqdm

    in_bytes = unit == "B"
    style = {
        "unit": unit if in_bytes else f" {unit}",  # "30.5 images/s"
        "unit_scale": in_bytes,
        "unit_divisor": 1024 if in_bytes else 1000,
    }
    stream = sys.stderr
    if stream.isatty():
        with tqdm(total=total, desc=description, file=stream, dynamic_ncols=True, **style) as bar:
            yield bar.update
        return

    start, done, marks = time.monotonic(), 0, []
    if total:
        marks = [total * (i + 1) / LOG_LINES for i in range(LOG_LINES)]

    def line() -> None:
        text = tqdm.format_meter(
            done,
            total or done,
            time.monotonic() - start,
            prefix=description,
            bar_format=LOG_FORMAT,
            **style,
        )
        print(text, file=stream, flush=True)

    def update(n: int) -> None:
        nonlocal done
        done += n
        passed = False
        while marks and done >= marks[0]:
            marks.pop(0)
            passed = True
        if passed:
            line()

    yield update
    if not total:  # size unknown: one line at the end
        line()
