"""A project whose git origin and DVC remote are reached over the network, as every node of
a real cluster reaches them: `git daemon` serving a bare origin (pushes allowed) and moto's
S3 server, both on 127.0.0.1."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from tests.support.project_copy import git, set_dvc_remote
from tests.support.services import S3_CREDENTIALS, S3Endpoint, free_port, stop

BUCKET = "sweep"


@contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """Serve the bare repositories under `base`; yields the URL prefix, git://127.0.0.1:P."""
    port = free_port()
    daemon = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack"]
        + [f"--base-path={base}", "--listen=127.0.0.1", f"--port={port}", str(base)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"git://127.0.0.1:{port}"
    try:
        for _ in range(100):  # until it answers
            probe = subprocess.run(["git", "ls-remote", f"{url}/origin.git"], capture_output=True)
            if probe.returncode == 0:
                break
            subprocess.run(["sleep", "0.1"])
        yield url
    finally:
        stop(daemon)


def put_online(project: Path, origin_url: str, s3: S3Endpoint) -> None:
    """Point the project's origin at `origin_url` and its default DVC remote at a bucket of
    `s3`, commit and push."""
    s3.create_bucket(BUCKET)
    git(project, "remote", "set-url", "origin", origin_url)
    # the region in DVC's config rather than AWS_DEFAULT_REGION: the nodes' environment then
    # is the one the finished pipeline ran in, and their stages share its warm interpreters
    set_dvc_remote(project, f"s3://{BUCKET}/dvc", endpointurl=s3.url, region="us-east-1")
    git(project, "commit", "-qam", "the DVC remote on S3")
    git(project, "push", "-q", "origin", "HEAD:refs/heads/main")


def run_cache_entries(s3: S3Endpoint) -> list[dict]:
    """Every run-cache entry in the bucket's DVC remote (asked every second while a test
    waits for one: one client per endpoint, and libyaml)."""
    client = _client(s3.url)
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="dvc/runs/").get("Contents", [])
    bodies = [client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed]
    return [yaml.load(body, Loader=yaml.CSafeLoader) for body in bodies]


@functools.cache
def _client(url: str):
    import boto3

    return boto3.client("s3", endpoint_url=url, region_name="us-east-1", **_lower(S3_CREDENTIALS))


def _lower(credentials: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in credentials.items()}
