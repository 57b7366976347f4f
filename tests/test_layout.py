"""The layout is the architecture: stages/ holds what dvc.yaml runs, each stage lists the
library code that decides its outputs, and nothing in the tree writes an MLflow store."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import yaml

from tests.support.project_copy import ROOT

# Where and how outputs are written, and what is recorded about the process (its device,
# its timing), never what the outputs hold: a change here reruns nothing.
WRITE_ONLY = {
    "keras_exercises/runtime/device.py",
    "keras_exercises/runtime/atomic.py",
    "keras_exercises/runtime/errors.py",
    "keras_exercises/runtime/paths.py",
    "keras_exercises/runtime/progress.py",  # prints how far long work has got
    "keras_exercises/runtime/stage_args.py",  # reads the command line dvc.yaml gives
    # where a stage runs (in its own process or a warm interpreter's child), not what it does
    "keras_exercises/runtime/warm_start.py",
    "keras_exercises/runtime/warm_server.py",
    # how a new MLflow store gets MLflow's empty schema (a copy), not what a run records
    "keras_exercises/tracking/empty_store.py",
    # how long a stage waits for a tracking server, and what it says when one fails
    "keras_exercises/tracking/outages.py",
    "keras_exercises/tracking/failures.py",
    # which of TensorFlow's log lines reach the terminal
    "keras_exercises/runtime/native_log.py",
}
# what report_pages.py renders: a change to a template reruns the report
TEMPLATES = "keras_exercises/templates"


def module_file(name: str) -> str | None:
    path = Path(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if (ROOT / candidate).is_file():
            return candidate.as_posix()
    return None


def project_imports(path: str) -> set[str]:
    """Project files `path` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {f for f in map(module_file, names) if f and not f.endswith("__init__.py")}
    return found


def closure(path: str) -> set[str]:
    seen, todo = set(), [path]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(project_imports(current))
    return seen


def stage_definitions() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def stage_module(definition: dict) -> str:
    body = definition.get("do", definition)
    return "stages/" + re.match(r"python -m stages\.(\w+)", body["cmd"])[1] + ".py"


def test_stages_holds_only_what_dvc_yaml_runs():
    run = {stage_module(d) for d in stage_definitions().values()}
    present = {p.relative_to(ROOT).as_posix() for p in (ROOT / "stages").glob("*.py")}
    assert present - {"stages/__init__.py"} == run
    for path in run:
        tree = ast.parse((ROOT / path).read_text())
        functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        assert "main" in functions, path
        # a stage may import the library, never another stage
        assert not any(f.startswith("stages/") and f != path for f in closure(path)), path


def test_each_stage_lists_the_library_code_that_decides_its_outputs():
    for name, definition in stage_definitions().items():
        body = definition.get("do", definition)
        module = stage_module(definition)
        needed = {f for f in closure(module) if f.endswith(".py")} - WRITE_ONLY
        assert needed == set(body["deps"]) & needed, (name, sorted(needed - set(body["deps"])))
        listed_code = {d for d in body["deps"] if d.endswith(".py")}
        assert listed_code <= needed, (name, sorted(listed_code - needed))
        renders = "keras_exercises/report_pages.py" in needed
        assert renders == (TEMPLATES in body["deps"]), name


def test_library_has_no_stage_and_no_stray_store():
    library = {p.relative_to(ROOT).as_posix() for p in (ROOT / "keras_exercises").rglob("*.py")}
    assert not any(f.startswith("stages/") for path in library for f in project_imports(path))
    # MLflow's default store, made by anything that touches MLflow before tracking's set-up
    # (conftest fails the session if a test does): never committed
    assert "/mlflow.db" in (ROOT / ".gitignore").read_text().splitlines()


def test_no_module_is_over_400_lines():
    """A module that grows past 400 lines has taken on a second job: split it by job."""
    modules = [ROOT / path for path in git_files("*.py")]
    assert len(modules) > 100, modules  # the whole tree, not a folder of it
    long = {m.relative_to(ROOT).as_posix(): n for m in modules if (n := line_count(m)) > 400}
    assert not long, long


def git_files(pattern: str) -> list[str]:
    """The tracked files matching `pattern`, and those about to be: what a clone holds."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", pattern],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [path for path in listed.stdout.splitlines() if (ROOT / path).exists()]


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines())
