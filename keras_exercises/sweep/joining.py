"""Joining the Ray cluster a sweep runs on, or starting a local Ray instance; each way it
can fail named with its fix (nothing listens there, the head wants a token this machine
lacks, the Ray Client's server died as it started)."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from keras_exercises.runtime.errors import PipelineError

# The Ray Client's head starts a server process per client, forking while its own gRPC
# threads run; that process dies at once, with an empty log, in some 7% of starts and more
# on a loaded machine (ray-project/ray#63202, open), failing `ray.init("ray://...")` with
# this message. A new client gets a new server; two failures in a row have been seen here.
CLIENT_SERVER_FAILED = "Initialization failure from server"
CLIENT_SERVER_RETRIES = 3


AUTH_MODE_ENV = "RAY_AUTH_MODE"
# what Ray's GCS client logs (to the process's stderr, from C++) when the head refuses it
REFUSED_TOKEN = "Authentication token is missing or incorrect"


def connect(address: str | None) -> int:
    """Join the cluster at `address` (`auto`, `host:port`, `ray://host:port`), or start a
    local Ray instance on this machine's CPUs and GPUs. Returns the number of live nodes."""
    if address and address != "auto":
        _reachable(address)
    if address:
        _token_where_ray_start_would()
    import ray

    for attempt in range(1 + CLIENT_SERVER_RETRIES):
        with _stderr_kept() as printed:
            try:
                # "local": a new instance, even where `ray start` left one to connect to
                ray.init(address=address or "local", log_to_driver=False, configure_logging=False)
                break
            except (ConnectionError, RuntimeError, ValueError) as exc:
                ray.shutdown()  # a failed init leaves this process half joined
                failure = exc
        if attempt < CLIENT_SERVER_RETRIES and CLIENT_SERVER_FAILED in str(failure):
            continue
        if REFUSED_TOKEN in printed():
            raise PipelineError(_token_refused(address)) from None
        raise PipelineError(
            f"cannot join the Ray cluster at {address} ({_gist(failure)}): start "
            "it (`ray start --head` on one machine, docs/cluster.md) or pass its address "
            "with --address"
        ) from None
    # through the Ray Client (ray://) the driver runs on the head: nothing calls back here
    joined_directly = address and not address.startswith("ray://")
    if joined_directly and os.environ.get(AUTH_MODE_ENV) == "token":
        _cluster_calls_back(address)
    return sum(1 for node in ray.nodes() if node["Alive"])


def leave() -> None:
    """Leave the cluster; a local instance this process started ends with it.

    Ray ends a local instance's processes one after another, giving each a second to exit
    on SIGTERM. Its autoscaler monitor, ended after the GCS it reports to, spends all of
    that second trying to report its own end, then gets SIGKILL: 1.0 of the 1.3 s that
    `ray.shutdown()` took at the end of every sweep on one machine. Sent SIGKILL first, as
    Ray would have a second later, it loses nothing: a local instance does not autoscale."""
    import psutil
    import ray

    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if any(part.endswith(_AUTOSCALER_MONITOR) for part in child.cmdline()):
                child.kill()
    ray.shutdown()


_AUTOSCALER_MONITOR = os.path.join("autoscaler", "_private", "monitor.py")


def _cluster_calls_back(address: str) -> None:
    """A cluster without token authentication accepts a process that joins with a token,
    but cannot call back into it: its tasks run, the actors it owns never start (Ray wants
    one mode on every node). An actor of no CPUs tells, in about a second."""
    import ray

    @ray.remote(num_cpus=0)
    class Echo:
        def ping(self) -> bool:
            return True

    echo = Echo.remote()
    try:
        ray.get(echo.ping.remote(), timeout=60)
    except ray.exceptions.ActorDiedError:
        ray.shutdown()
        raise PipelineError(
            f"joined the Ray cluster at {address} with token authentication (RAY_AUTH_MODE "
            "is token here, or this machine has a token in ~/.ray/auth_token), but the "
            "cluster runs without it and cannot call back into this process. Join as it "
            "runs (`export RAY_AUTH_MODE=disabled`), or start the cluster with the token "
            '(docs/cluster.md, "Token authentication")'
        ) from None
    except ray.exceptions.GetTimeoutError:
        pass  # slow to start an actor, not refusing: the sweep goes on
    finally:
        if ray.is_initialized():
            ray.kill(echo)


def _token_where_ray_start_would() -> None:
    """`ray start --head` turns Ray's token authentication on where the machine has a token
    (~/.ray/auth_token, made by any earlier local `ray.init`), but a process joining a
    cluster leaves it off unless told: with RAY_AUTH_MODE unset and a token here, join with
    it, as the head would. A head without authentication accepts it too."""
    if AUTH_MODE_ENV in os.environ:
        return
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    if os.environ.get("RAY_AUTH_TOKEN") or Path(token_file).is_file():
        os.environ[AUTH_MODE_ENV] = "token"
        ray_reads_its_auth_mode()


def ray_reads_its_auth_mode() -> None:
    """Ray reads RAY_AUTH_MODE into its config when it is imported: again, once changed."""
    if "ray._raylet" in sys.modules:
        sys.modules["ray._raylet"].Config.initialize("")


def _token_refused(address: str | None) -> str:
    mode = os.environ.get(AUTH_MODE_ENV, "unset")
    return (
        f"the Ray cluster at {address} refused this machine: it uses token authentication "
        f'and Ray says "{REFUSED_TOKEN}" (RAY_AUTH_MODE is {mode} here). Copy the head\'s '
        "token (`ray get-auth-token` on the head) to ~/.ray/auth_token on this machine, or "
        "export RAY_AUTH_TOKEN, then `export RAY_AUTH_MODE=token` and sweep again "
        '(docs/cluster.md, "Token authentication")'
    )


@contextlib.contextmanager
def _stderr_kept() -> Iterator:
    """What this process writes to its stderr meanwhile, Ray's C++ included (its reason for
    refusing a connection appears nowhere else), held back; yields a function that returns
    it. Written out after, unless it is the twenty lines of a refused token."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        text = ""
        try:
            yield lambda: text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode(errors="replace")
            if REFUSED_TOKEN not in text:
                os.write(2, text.encode())


def _gist(exc: Exception) -> str:
    """The first line of Ray's message, and its last where the first only introduces a
    traceback the Ray Client's head sent back ("Initialization failure from server:")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [repr(exc)]
    return lines[0] if not lines[0].endswith(":") else f"{lines[0]} {lines[-1]}"


def _reachable(address: str) -> None:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise PipelineError(
            f"cannot reach the Ray cluster at {address} ({exc}): check that its head node "
            "runs (`ray status` there) and that --address names it, as host:port (the "
            "head's GCS port, 6379 by default) or ray://host:10001"
        ) from None
