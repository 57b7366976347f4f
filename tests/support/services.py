"""Real servers on 127.0.0.1 for the team set-up's tests and benchmarks: PostgreSQL (Debian's
binaries), an S3-compatible endpoint (moto's standalone server, as DVC's and MLflow's own
test suites use) and `mlflow server` on both. Each is a context manager that stops its
server, whatever happens."""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import ssl
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


# Above Ray Client's per-client servers (23000-23999) and its workers (10002-19999)
QUIET_PORTS_FROM = 24100


def free_port() -> int:
    """A free port below the kernel's ephemeral range, which every `bind(0)` and every
    outgoing connection's own end draw from. A server stopped and started again on its port
    (the team's, moto's, PostgreSQL's) can find it taken in between: CI's team server did."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    quiet = range(QUIET_PORTS_FROM, low)
    tries = random.SystemRandom().sample(quiet, min(200, len(quiet)))
    for port in [*tries, 0]:  # 0: where the range leaves no room, any free port
        with socket.socket() as sock, suppress(OSError):
            sock.bind(("127.0.0.1", port))
            return sock.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


def wait_until_up(
    url: str,
    process: subprocess.Popen,
    what: str,
    timeout: float = 300,
    context=None,
    log: Path | None = None,
) -> None:
    """Until `url` answers. Five minutes: on two loaded cores (a Ray cluster and pipelines
    beside it) a server's start has taken over two. A server that exits says why in `log`
    (`mlflow server` exits with 0 when its port is taken)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if process.poll() is not None:
                said = log.read_text(errors="replace").splitlines()[-5:] if log else []
                ends = "; its log ends:\n" + "\n".join(said) if said else ""
                raise RuntimeError(f"{what} exited with {process.returncode}{ends}") from None
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
    """A PostgreSQL 15 cluster in a directory of its own, listening on 127.0.0.1 only, where
    the role `mlflow` logs in with a password (scram-sha-256) and owns two databases: the
    tracking server's and its users'. Only the server's own socket trusts its superuser."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.uri = f"postgresql://mlflow@127.0.0.1:{self.port}/mlflow"
        # a % in it, as URIs have (encoded characters), which MLflow's auth file must escape
        self.auth_uri = (
            f"postgresql://mlflow@127.0.0.1:{self.port}/mlflow_auth?application_name=team%20auth"
        )

    def _run(self, program: str, *args: str, stdin: str | None = None) -> None:
        command = _as_postgres([str(POSTGRES_BIN / program), *args])
        subprocess.run(command, check=True, capture_output=True, text=True, input=stdin)

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres",
            "--auth-local=trust", "--auth-host=scram-sha-256",
        )  # fmt: skip
        self.start()
        socket_dir = ["-h", str(self.directory), "-p", str(self.port), "-U", "postgres"]
        # the password through standard input: a command line is there for anyone's `ps`
        self._run(
            "psql", *socket_dir, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
            stdin=f"CREATE ROLE mlflow LOGIN PASSWORD '{self.password}';",
        )  # fmt: skip
        for database in ("mlflow", "mlflow_auth"):
            self._run("createdb", *socket_dir, "-O", "mlflow", database)

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


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1 and localhost, made by openssl, as a team would for
    a server on a private network without a CA of its own."""
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


# the team of the tests: two teammates, alice on machine A and bob on B, and a reader
TEAMMATES, READER = ("alice", "bob"), "rita"


class TeamServer:
    """`tools/team.sh server`: the team's `mlflow server` with MLflow's basic-auth app, over
    HTTPS only, on PostgreSQL with password authentication, artifacts on S3. Its users are
    added with `tools/team.sh add-user` on the first start."""

    def __init__(self, database: Postgres, s3: S3Endpoint, bucket: str, directory: Path) -> None:
        self.database, self.s3, self.log = database, s3, directory / "mlflow-server.log"
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.cert, key = self_signed_certificate(directory)
        self.passwords = {name: secrets.token_urlsafe(16) for name in ("admin", *TEAMMATES, READER)}
        self.server_env = team_environment(
            s3,
            {
                "TEAM_DATABASE": database.uri,
                "TEAM_AUTH_DATABASE": database.auth_uri,
                "PGPASSWORD": database.password,
                "MLFLOW_AUTH_ADMIN_PASSWORD": self.passwords["admin"],
                "TEAM_ARTIFACTS": f"s3://{bucket}/mlflow",
                "S3_ENDPOINT": s3.url,
                "TEAM_TLS_CERT": str(self.cert),
                "TEAM_TLS_KEY": str(key),
                "TEAM_HOST": "127.0.0.1",
                "TEAM_PORT": str(self.port),
                "TEAM_ALLOWED_HOSTS": "127.0.0.1,localhost",
                # a worker per core (MLflow's default is 4): each imports MLflow and its
                # auth app at start, and the server restarts in several tests
                "MLFLOW_WORKERS": "2",
            },
        )
        self.bucket = bucket
        self.process: subprocess.Popen | None = None

    def user_env(self, name: str) -> dict[str, str]:
        """A client machine's environment, logged in as `name`: no database or admin secret."""
        return team_environment(
            self.s3,
            {
                "MLFLOW_TRACKING_URI": self.url,
                "MLFLOW_TRACKING_USERNAME": name,
                "MLFLOW_TRACKING_PASSWORD": self.passwords[name],
                "MLFLOW_TRACKING_SERVER_CERT_PATH": str(self.cert),
                "TEAM_REMOTE": f"s3://{self.bucket}/dvc",
                "S3_ENDPOINT": self.s3.url,
            },
        )

    @property
    def env(self) -> dict[str, str]:
        """Machine A's: the first teammate's."""
        return self.user_env(TEAMMATES[0])

    def secrets(self) -> list[str]:
        """Every password of the set-up, which must never show."""
        return [self.database.password, *self.passwords.values()]

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["bash", str(TEAM_SCRIPT), "server"],
                env=self.server_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        context = ssl.create_default_context(cafile=str(self.cert))
        wait_until_up(
            f"{self.url}/health", self.process, "mlflow server", context=context, log=self.log
        )

    def add_users(self) -> None:
        admin = self.user_env("admin")
        for name in (*TEAMMATES, READER):
            env = {**admin, "TEAM_USER_PASSWORD": self.passwords[name]}
            role = ["--reader"] if name == READER else []
            team_script(self.log.parent, env, "add-user", *role, name)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@contextmanager
def team_servers(directory: Path, bucket: str = "team") -> Iterator[TeamServer]:
    """PostgreSQL, S3 with `bucket`, and the team's MLflow server on both, all started, with
    its users added."""
    with s3_endpoint() as s3, postgres() as database:
        s3.create_bucket(bucket)
        server = TeamServer(database, s3, bucket, directory)
        server.start()
        try:
            server.add_users()
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


# MLflow 3's servers start a job runner (seven processes importing MLflow, a minute of CPU)
# for GenAI features nothing here uses; tools/team.sh turns it off the same way
NO_JOB_RUNNER = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@contextmanager
def plain_mlflow_server(directory: Path) -> Iterator[str]:
    """`mlflow server` on SQLite with proxied artifacts, on a free port; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server"]
        + ["--backend-store-uri", f"sqlite:///{directory / 'server.db'}"]
        + ["--artifacts-destination", str(directory / "server-artifacts")]
        + ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=directory,
        env={**os.environ, **NO_JOB_RUNNER},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_up(f"{url}/health", server, "mlflow server")
        yield url
    finally:
        stop(server)
