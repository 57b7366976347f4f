"""A pytest plugin for benchmarks/suite_cpu.py: each test's start and end, on the process that
ran it (an xdist worker), a line each in the file `SUITE_CLOCK` names.

Whole protocol, set-up and teardown included: a fixture's work counts for the test that
first needed it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

CLOCK_ENV = "SUITE_CLOCK"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    path = os.environ.get(CLOCK_ENV)
    started = time.time()
    try:
        return (yield)
    finally:
        if path:
            with open(path, "a", encoding="utf-8") as clock:
                clock.write(f"{os.getpid()} {started:.3f} {time.time():.3f} {item.nodeid}\n")
