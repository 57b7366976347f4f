"""Real servers on 127.0.0.1 for the team set-up's tests and benchmarks: PostgreSQL (Debian's
binaries), an S3-compatible endpoint (moto's standalone server, as DVC's and MLflow's own
test suites use) and `mlflow server` on both. Each is a context manager that stops its
server, whatever happens."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
TEAM_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "team.sh"
# moto accepts any credentials; clients of a real endpoint get theirs from their own setup
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not answer {url} in {timeout:g} s") from None
            time.sleep(0.3)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def _as_postgres(command: list[str]) -> list[str]:
    # initdb refuses to run as root: run the server as the postgres user
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class Postgres:
    """A PostgreSQL 15 cluster in a directory of its own, listening on 127.0.0.1 only."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.uri = f"postgresql://postgres@127.0.0.1:{self.port}/mlflow"

    def _run(self, program: str, *args: str) -> None:
        command = _as_postgres([str(POSTGRES_BIN / program), *args])
        subprocess.run(command, check=True, capture_output=True, text=True)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "mlflow")

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.directory}"
        log = str(self.directory / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def postgres() -> Iterator[Postgres]:
    # its own directory under /tmp: pytest's temporary directories are private to root,
    # and the server runs as the postgres user
    directory = Path(tempfile.mkdtemp(prefix="keras-exercises-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = Postgres(directory)
    try:
        server.init()
        yield server
    finally:
        with suppress(subprocess.CalledProcessError):  # already stopped, or never started
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


class S3Endpoint:
    """moto's standalone S3 server; `stop()` and `start()` again on the same port and
    state are how tests take the storage away and bring it back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until_up(self.url, self.process, "moto's S3 server")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def create_bucket(self, name: str) -> None:
        import boto3

        boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        ).create_bucket(Bucket=name)


@contextmanager
def s3_endpoint() -> Iterator[S3Endpoint]:
    endpoint = S3Endpoint()
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


def team_environment(s3: S3Endpoint, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **S3_CREDENTIALS, "AWS_DEFAULT_REGION": "us-east-1", **(extra or {})}


class TeamServer:
    """`tools/team.sh server`: the team's `mlflow server` on PostgreSQL, artifacts on S3."""

    def __init__(self, database: Postgres, s3: S3Endpoint, bucket: str, log: Path) -> None:
        self.database, self.s3, self.log = database, s3, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = team_environment(
            s3,
            {
                "MLFLOW_TRACKING_URI": self.url,
                "TEAM_DATABASE": database.uri,
                "TEAM_ARTIFACTS": f"s3://{bucket}/mlflow",
                "TEAM_REMOTE": f"s3://{bucket}/dvc",
                "S3_ENDPOINT": s3.url,
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
            },
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["bash", str(TEAM_SCRIPT), "server"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until_up(f"{self.url}/health", self.process, "mlflow server")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@contextmanager
def team_servers(directory: Path, bucket: str = "team") -> Iterator[TeamServer]:
    """PostgreSQL, S3 with `bucket`, and the team's MLflow server on both, all started."""
    with s3_endpoint() as s3, postgres() as database:
        s3.create_bucket(bucket)
        server = TeamServer(database, s3, bucket, directory / "mlflow-server.log")
        server.start()
        try:
            yield server
        finally:
            server.stop()


def _run_team_script(clone: Path, env: dict[str, str], args: tuple[str, ...]):
    return subprocess.run(
        ["bash", str(TEAM_SCRIPT), *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def team_script(clone: Path, env: dict[str, str], *args: str) -> str:
    """Run `tools/team.sh ARGS` in `clone`; everything it printed."""
    done = _run_team_script(clone, env, args)
    if done.returncode != 0:
        raise RuntimeError(f"tools/team.sh {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def team_script_fails(clone: Path, env: dict[str, str], *args: str) -> str:
    """Run `tools/team.sh ARGS` in `clone`, which must fail; everything it printed."""
    done = _run_team_script(clone, env, args)
    assert done.returncode != 0, done.stdout + done.stderr
    return done.stdout + done.stderr
