"""A tracking server that is away for a while (restarted, upgraded, its proxy reloading)
is waited out, not turned into lost training: up to KERAS_EXERCISES_TRACKING_WAIT seconds
(default 120) at any request of the stage, saying once that it waits and once that the
server is back.

The waiting is MLflow's own: its HTTP client retries refused connections, timeouts and
5xx answers with exponential backoff (urllib3's Retry), as many times as the limit needs.
What it says comes from urllib3's log records of those retries, each turned into nothing
but the first of an outage."""

from __future__ import annotations

import logging
import os
import sys
import time

from keras_exercises.runtime.errors import PipelineError
from keras_exercises.tracking.failures import WAIT_ENV

DEFAULT_WAIT = 120
# urllib3 sleeps 0, 2, 4, 8, ... s (backoff factor 1) before each retry, at most 120 s
# apart; MLflow allows at most 10 retries, which wait 486 s in all
_BACKOFF_FACTOR, _BACKOFF_MAX, _MAX_RETRIES = 1, 120, 10
MAX_WAIT = sum(min(_BACKOFF_FACTOR * 2 ** (n - 1), _BACKOFF_MAX) for n in range(2, 11))
# how what a stage says of the server starts: a sweep repeats it on its progress line
# (sweep/resources.py), as the stage runs on a node far from the user's terminal
SAID_OF_THE_SERVER = "The MLflow tracking server at "
WAITING_UP_TO = ": waiting up to "


def wait_limit() -> float:
    """KERAS_EXERCISES_TRACKING_WAIT in seconds: how long a stage waits for the server."""
    text = os.environ.get(WAIT_ENV, "")
    if not text:
        return DEFAULT_WAIT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_WAIT:
        raise PipelineError(
            f"{WAIT_ENV} is '{text}': give the seconds a stage waits for a tracking server "
            f"that does not answer, from 0 to {MAX_WAIT} (unset, {DEFAULT_WAIT})."
        )
    return seconds


def retries_for(seconds: float) -> int:
    """The fewest of MLflow's retries whose backoff adds up to at least `seconds`."""
    waited = 0.0
    for retries in range(_MAX_RETRIES + 1):
        if retries >= 2:
            waited += min(_BACKOFF_FACTOR * 2 ** (retries - 1), _BACKOFF_MAX)
        if waited >= seconds:
            return retries
    return _MAX_RETRIES


def use_retries(retries: int) -> None:
    """MLflow's HTTP client from here on, in this process and its subprocesses: each request
    tried `retries` more times while the server is away, at urllib3's growing intervals,
    each try given up after MLFLOW_HTTP_REQUEST_TIMEOUT seconds (10 unless set)."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(_BACKOFF_FACTOR)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def wait_out_outages(address: str, seconds: float) -> None:
    """From here on, every request MLflow makes to the server is retried for `seconds`
    while the server is away, and the stage says when it waits. The timeout is per
    try: a dead host costs seconds, not MLflow's default two minutes, per try."""
    use_retries(retries_for(seconds))
    pool = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RetriesReported) for f in pool.filters):
        # the retries of a 5xx answer and the answers themselves are logged at DEBUG: the
        # filter sees them, and lets through only what the logger's level did before
        shown_from = pool.getEffectiveLevel()
        pool.addFilter(_RetriesReported(address, seconds, shown_from))
        pool.setLevel(logging.DEBUG)


class Waiting:
    """Says once that the stage waits for the server, and once that it is back."""

    def __init__(self, address: str, seconds: float) -> None:
        self.address, self.seconds = address, seconds
        self.since: float | None = None

    def started(self, state: str) -> None:
        """`state`: how the server is away, as "does not answer (no connection)"."""
        if self.since is None:
            self.since = time.monotonic()
            print(
                f"{SAID_OF_THE_SERVER}{self.address} {state}{WAITING_UP_TO}"
                f"{self.seconds:.0f} s for it ({WAIT_ENV}).",
                file=sys.stderr,
                flush=True,
            )

    def ended(self) -> None:
        if self.since is not None:
            waited = time.monotonic() - self.since
            print(
                f"{SAID_OF_THE_SERVER}{self.address} answers again, after "
                f"{waited:.0f} s: going on.",
                file=sys.stderr,
                flush=True,
            )
            self.since = None


class _RetriesReported(logging.Filter):
    def __init__(self, address: str, seconds: float, shown_from: int) -> None:
        super().__init__()
        self.waiting = Waiting(address, seconds)
        self.shown_from = shown_from
        self.status: object = None  # of the last answer, which urllib3 logs before its retry

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("Retrying ("):  # a connection refused, reset or timed out
            self.waiting.started("does not answer (no connection)")
            return False
        if message.startswith("Retry: "):  # an answer in MLflow's retry codes (5xx, 429)
            self.waiting.started(f"answers with server errors (HTTP {self.status})")
            return False
        if message.startswith('%s://%s:%s "%s %s %s" %s %s'):  # an answer
            self.status = record.args[-2] if isinstance(record.args, tuple) else None
            if isinstance(self.status, int) and self.status < 500:
                self.waiting.ended()
        return record.levelno >= self.shown_from
