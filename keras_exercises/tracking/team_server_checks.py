"""`tools/team.sh server`'s checks, before MLflow starts: what `mlflow server` would take
and then run unsafely or not at all. Exit 2 for a setting to fix, 1 for an address it
cannot listen on (`mlflow server` logs that and exits 0, so whatever started it would think
it runs). Run as `python -m keras_exercises.tracking.team_server_checks HOST PORT`, with
the settings in the environment."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from urllib.parse import parse_qsl, urlsplit

DATABASES = ("TEAM_DATABASE", "TEAM_AUTH_DATABASE")


def holds_password(uri: str) -> bool:
    """Whether a database URI carries a password, as user:password@ or as ?password=."""
    parts = urlsplit(uri)
    if parts.password is not None:
        return True
    return any(key.lower() == "password" for key, _ in parse_qsl(parts.query))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any address


def problem(host: str, port_text: str) -> tuple[int, str] | None:
    """(exit code, message) for the first setting that must not start a server, or None."""
    for name in DATABASES:
        if holds_password(os.environ.get(name, "")):
            return 2, (
                f"{name} holds a password: take it out, and give it in PGPASSWORD or "
                "~/.pgpass (a URI reaches files and logs that a password must not)."
            )
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        return 2, f"TEAM_PORT is '{port_text}': give a port number from 1 to 65535."
    certificate = os.environ.get("TEAM_TLS_CERT")
    if not certificate and not is_loopback(host):
        return 2, (
            f"TEAM_HOST is {host} without TEAM_TLS_CERT: logins would cross the network in "
            "the clear. Set TEAM_TLS_CERT and TEAM_TLS_KEY to the server's certificate and "
            "key, or keep TEAM_HOST on 127.0.0.1 behind a reverse proxy on this machine that "
            "holds the certificate (docs/team.md)."
        )
    for name in ("TEAM_TLS_CERT", "TEAM_TLS_KEY") if certificate else ():
        if not os.path.isfile(os.environ.get(name, "")):
            return 2, f"{name} is '{os.environ.get(name, '')}': give the path of a PEM file."
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, int(port_text)))
        except OSError as error:
            return 1, (
                f"The team's server cannot listen on {host}:{port_text} ({error.strerror}): "
                "stop the server listening there, or set TEAM_PORT to a free port (TEAM_HOST "
                "to an address of this machine)."
            )
    return None


if __name__ == "__main__":
    found = problem(sys.argv[1], sys.argv[2])
    if found:
        print(found[1], file=sys.stderr)
        sys.exit(found[0])
