"""`tools/team.sh server` refuses what `mlflow server` would not: a password in a database
URI, logins over plain HTTP off this machine, a port that is no port, an address it cannot
listen on (where `mlflow server` logs the error and exits 0, so whatever started it would
think it runs); `add-user` refuses to send passwords over plain HTTP off this machine."""

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
    certificate = {"TEAM_TLS_CERT": str(TEAM_SCRIPT), "TEAM_TLS_KEY": str(TEAM_SCRIPT)}
    done = server(TEAM_HOST="192.0.2.1", TEAM_PORT="5000", **certificate)  # TEST-NET-1
    assert done.returncode == 1
    assert "cannot listen on 192.0.2.1:5000 (Cannot assign requested address)" in done.stderr


@pytest.mark.parametrize("port", ["abc", "0", "70000", "099999", "50 00"])
def test_a_port_that_is_no_port_is_refused(port: str):
    done = server(TEAM_PORT=port)
    assert done.returncode == 2
    assert done.stderr == f"TEAM_PORT is '{port}': give a port number from 1 to 65535.\n"


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://mlflow:s3cret@db.example/mlflow",
        "postgresql://mlflow@db.example/mlflow?sslmode=require&password=s3cret",
        "postgresql://mlflow@db.example/mlflow?PASSWORD=s3cret",
    ],
)
@pytest.mark.parametrize("setting", ["TEAM_DATABASE", "TEAM_AUTH_DATABASE"])
def test_a_database_uri_with_a_password_is_refused_without_showing_it(setting, uri):
    done = server(**{setting: uri})
    assert done.returncode == 2
    assert done.stderr.startswith(f"{setting} holds a password: take it out, and give it in")
    assert "s3cret" not in done.stdout + done.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "mlflow.example", "::"])
def test_logins_over_plain_http_off_this_machine_are_refused(host):
    done = server(TEAM_HOST=host, TEAM_PORT="5000")
    assert done.returncode == 2
    assert done.stderr.startswith(f"TEAM_HOST is {host} without TEAM_TLS_CERT: logins would")
    assert "reverse proxy on this machine" in done.stderr


def test_a_certificate_that_is_no_file_is_refused():
    done = server(TEAM_TLS_CERT="/nowhere/mlflow.crt", TEAM_TLS_KEY=str(TEAM_SCRIPT))
    assert done.returncode == 2
    assert done.stderr == "TEAM_TLS_CERT is '/nowhere/mlflow.crt': give the path of a PEM file.\n"


@pytest.mark.parametrize("uri", ["http://mlflow.example:5000", "http://10.1.2.3:5000"])
def test_add_user_over_plain_http_off_this_machine_is_refused(uri, tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TEAM_USER_PASSWORD": "n3w-s3cret"}
    command = ["bash", str(TEAM_SCRIPT), "add-user", "carol"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "plain HTTP shows to anyone on the path. Use the server's https:// address" in (
        done.stderr
    )
    assert "n3w-s3cret" not in done.stdout + done.stderr
