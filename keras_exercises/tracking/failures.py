"""Why the MLflow tracking store failed, in one sentence with its fix: unreachable, TLS,
login, permission, a missing experiment or run. MLflow wraps every one of them in the same
MlflowException ("API request to ... failed"), so each is told by what it was raised from."""

from __future__ import annotations

import os
import re

from keras_exercises.tracking.credentials import without_credentials
from keras_exercises.tracking.links import is_server

WAIT_ENV = "KERAS_EXERCISES_TRACKING_WAIT"
ADD_USER = "`tools/team.sh add-user NAME`"


def caused_by(exc: BaseException, kinds: tuple[type, ...]) -> BaseException | None:
    """The exception among `exc` and those it was raised from or during that is one of
    `kinds`, or None: MLflow wraps a refused connection in its own exception."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def first_line(exc: BaseException) -> str:
    """An exception's type and first line, without credentials: MLflow's messages run to
    whole tracebacks and repeat the URI."""
    lines = without_credentials(str(exc)).splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` is the server being away (no connection, no answer in time, or a
    server error such as a proxy's 503 while it restarts): worth waiting out. A TLS failure
    is a ConnectionError to `requests` too, and never goes away by waiting."""
    import requests

    errors = requests.exceptions
    if caused_by(exc, (errors.SSLError,)):
        return False
    return caused_by(exc, (errors.ConnectionError, errors.Timeout, errors.RetryError)) is not None


def reason(exc: BaseException) -> str:
    """What went wrong on the wire, in a few words: the innermost OS-level cause."""
    import requests

    if caused_by(exc, (requests.exceptions.RetryError,)):
        return "it answers with server errors"
    if caused_by(exc, (requests.exceptions.Timeout,)):
        return "no answer in time"
    text = str(caused_by(exc, (requests.exceptions.ConnectionError,)) or exc)
    for known in ("Connection refused", "Name or service not known", "No route to host"):
        if known in text:
            return known.lower()
    return first_line(exc)


def how_away(exc: BaseException) -> str:
    """How a server that fails with the outage `exc` is away, as a waiting stage says it:
    "does not answer (connection refused)", "answers with server errors (HTTP 503)"."""
    if status := _server_error(exc):
        return f"answers with server errors (HTTP {status})"
    return f"does not answer ({reason(exc)})"


def describe(uri: str, exc: BaseException, doing: str, waited: float) -> str | None:
    """One paragraph: what failed while `doing` against the store at `uri`, and the fix;
    None when `exc` is not a store failure (a bug, to be reported as one)."""
    import requests
    from mlflow.exceptions import MlflowException

    address = without_credentials(uri)
    # a local store (sqlite:///mlruns/mlflow.db) is a file on this machine, not a server
    server = f"the MLflow {'tracking server' if is_server(uri) else 'store'} at {address}"
    if tls := caused_by(exc, (requests.exceptions.SSLError,)):
        return (
            f"cannot verify the TLS certificate of {server} while {doing} "
            f"({_tls_reason(tls)}). If it is signed by your organization's own CA, or "
            "self-signed, set MLFLOW_TRACKING_SERVER_CERT_PATH to that CA's certificate (or "
            "the server's) on this machine; never turn verification off"
        )
    if is_outage(exc) and (status := _server_error(exc)):
        return (
            f"{server} answered with server errors (HTTP {status}) while {doing}, and still "
            f"did after {waited:.0f} s: it is up, but failing. Its log says why (a database "
            "it cannot write, a full disk, a proxy without its backend): mend it and run "
            "again, or set MLFLOW_TRACKING_URI to another server, or unset it to use the "
            "local store under mlruns/. To wait longer for a server that restarts, set "
            f"{WAIT_ENV} (seconds)"
        )
    if is_outage(exc):
        return (
            f"{server} did not answer while {doing} ({reason(exc)}), and was not back "
            f"within {waited:.0f} s. Start it (`tools/team.sh server` on the team's machine), "
            "or fix MLFLOW_TRACKING_URI, or unset it to use the local store under mlruns/. "
            f"To wait longer for a server that restarts, set {WAIT_ENV} (seconds)"
        )
    if not isinstance(exc, MlflowException):
        return None
    said = first_line(exc)
    if exc.error_code == "UNAUTHENTICATED":
        return (
            f"{server} did not accept {_login()} while {doing} ({said}). Set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials) "
            f"to your login on that server; an admin adds one with {ADD_USER}"
        )
    if exc.error_code == "PERMISSION_DENIED" and "host" in said.lower():
        return (
            f"{server} does not serve the name this client used ({said}): use the name "
            "it serves, or add this one to TEAM_ALLOWED_HOSTS where the server starts"
        )
    if exc.error_code == "PERMISSION_DENIED":
        return (
            f"{_login()} may not write to {server} while {doing} ({said}). Training and "
            "evaluating log runs to the experiment keras-exercises and register the "
            "exercises' models, which takes EDIT on both; a reader (READ) can only look. "
            f"An admin grants it with {ADD_USER}"
        )
    if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
        return (
            f"{server} has no such run or model while {doing} ({said}): it was deleted, or "
            "the stage's run.json came from another store. Retrain it with "
            "`dvc repro --force` on its train stage"
        )
    return f"{server} failed while {doing} ({said})"


def _server_error(exc: BaseException) -> str | None:
    """The HTTP status of the 5xx answers MLflow's retries gave up on, if they did: urllib3
    says "too many 503 error responses"."""
    import requests

    retried = caused_by(exc, (requests.exceptions.RetryError,))
    found = re.search(r"too many (\d{3}) error responses", str(retried or ""))
    return found.group(1) if found else None


def _login() -> str:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    return f"the login '{user}'" if user else "this client's login (or its lack of one)"


def _tls_reason(exc: BaseException) -> str:
    text = str(exc)
    for known in ("CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER", "hostname mismatch"):
        if known in text:
            return known
    return first_line(exc)
