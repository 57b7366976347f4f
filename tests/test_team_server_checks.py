"""`tools/team.sh server` refuses what `mlflow server` would not: a password in a database
URI, a port that is no port, an address it cannot listen on (where `mlflow server` logs
the error and exits 0, so whatever started it would think it runs)."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.support.services import TEAM_SCRIPT


def server(**settings: str) -> subprocess.CompletedProcess:
    """`tools/team.sh server` with placeholder databases and `settings` over them."""
    env = {
        **os.environ,
        "TEAM_DATABASE": "postgresql://mlflow@127.0.0.1:5432/mlflow",
        "TEAM_AUTH_DATABASE": "postgresql://mlflow@127.0.0.1:5432/mlflow_auth",
        "TEAM_ARTIFACTS": "s3://team-bucket/mlflow",
        **settings,
    }
    command = ["bash", str(TEAM_SCRIPT), "server"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_a_port_where_a_server_listens_fails_with_what_to_do():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = server(TEAM_HOST="127.0.0.1", TEAM_PORT=str(port))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(
        f"The team's server cannot listen on 127.0.0.1:{port} (Address already in use): "
        "stop the server listening there, or set TEAM_PORT to a free port"
    )


def test_an_address_not_of_this_machine_fails_with_what_to_do():
    done = server(TEAM_HOST="192.0.2.1", TEAM_PORT="5000")  # TEST-NET-1: nobody's
    assert done.returncode == 1
    assert "cannot listen on 192.0.2.1:5000 (Cannot assign requested address)" in done.stderr


@pytest.mark.parametrize("port", ["abc", "0", "70000", "099999", "50 00"])
def test_a_port_that_is_no_port_is_refused(port: str):
    done = server(TEAM_PORT=port)
    assert done.returncode == 2
    assert done.stderr == f"TEAM_PORT is '{port}': give a port number from 1 to 65535.\n"


def test_a_database_uri_with_a_password_is_refused_without_showing_it():
    done = server(TEAM_DATABASE="postgresql://mlflow:s3cret@db.example/mlflow")
    assert done.returncode == 2
    assert "A database URI holds a password" in done.stderr
    assert "s3cret" not in done.stdout + done.stderr
