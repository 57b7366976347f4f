"""A tracking URI's user:password, kept out of everything printed or written.

MLflow accepts https://user:password@host, and then repeats that URI in its own messages
(the "View run ... at:" link every run prints, its errors and warnings). Moved into
MLflow's own MLFLOW_TRACKING_USERNAME/PASSWORD before MLflow sees the URI, the login works
the same and MLflow never has the password to print."""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit, urlunsplit

# the user:password part of a URL
_USERINFO = re.compile(r"(?<=://)[^/?#\s@]+@")


def without_credentials(text: str) -> str:
    """`text` with the user:password of every URL in it removed."""
    return _USERINFO.sub("", text)


def move_into_environment(uri: str) -> str:
    """`uri` without its credentials, which go to MLFLOW_TRACKING_USERNAME/PASSWORD (they
    win over those, as they did in the URI); MLFLOW_TRACKING_URI is set to the clean URI so
    that the stage's own subprocesses see no password either."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return uri
    userinfo, _, host = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    os.environ["MLFLOW_TRACKING_USERNAME"] = unquote(user)
    if has_password:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = unquote(password)
    clean = urlunsplit(parts._replace(netloc=host))
    os.environ["MLFLOW_TRACKING_URI"] = clean
    return clean
