"""One fixture shrinks the real params.yaml; tests never invent a second config."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tools.make_mirror import build_mirror

ROOT = Path(__file__).resolve().parents[1]


def shrink(params: dict, mirror: str | None) -> dict:
    """The real params at toy size: a few dozen samples, 2 epochs, a small random MobileNetV2."""
    small = copy.deepcopy(params)
    small["data"]["mirror"] = mirror
    for ex in small["exercises"].values():
        ex["n_train"], ex["n_test"] = 40, 20
        ex["training"]["epochs"] = 2
        if ex["model"]["kind"] == "mobilenet_v2":
            ex["model"]["weights"], ex["model"]["input_size"] = None, 32
        if "mc" in ex:
            ex["mc"]["passes"] = 3
    return small


@pytest.fixture(scope="session")
def real_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="session")
def tiny_mirror(tmp_path_factory) -> Path:
    """Synthetic npz files of every dataset's real shape (no network, no shared slices)."""
    mirror = tmp_path_factory.mktemp("mirror")
    build_mirror(mirror, real=None, n_train=60, n_test=30)
    return mirror


@pytest.fixture
def small_params(real_params, tiny_mirror) -> dict:
    return shrink(real_params, str(tiny_mirror))


def write_params(directory: Path, params: dict) -> Path:
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def project(tmp_path, small_params) -> Path:
    """A copy of this project's tracked files in a fresh git repo, with shrunk params."""
    dest = tmp_path / "project"
    tracked = git(ROOT, "ls-files", "-z").split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    write_params(dest, small_params)
    git(dest, "init", "-q")
    # dvc exp commits too: give the repo its own identity rather than rely on a global one
    git(dest, "config", "user.name", "test")
    git(dest, "config", "user.email", "test@localhost")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "init")
    return dest
