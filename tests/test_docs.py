"""The README and docs/ point only at what exists: every relative link resolves, every
project path they name is in the repository, and the README stays a front door."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.project_copy import ROOT, git
from tests.support.services import TEAM_SCRIPT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\s]+)`")


def tracked() -> set[str]:
    """Every tracked file and folder, as paths from the project root."""
    files = [f for f in git(ROOT, "ls-files").splitlines() if (ROOT / f).exists()]
    folders = {p.as_posix() for f in files for p in Path(f).parents if p != Path(".")}
    return set(files) | folders


def named_paths(text: str, roots: set[str]) -> list[str]:
    """Backticked project paths: those that start at a tracked top-level folder or are a
    tracked top-level file; placeholders (<ex>, *, {a,b}) are not paths."""
    found = []
    for token in CODE.findall(text):
        path = token.rstrip("/").split(":")[0]
        if re.search(r"[<>*{}$]", path):
            continue
        if path.split("/")[0] in roots and ("/" in path or "." in path):
            found.append(path)
    return found


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_resolves(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        assert (page.parent / target.split("#")[0]).exists(), f"{page.name}: {target}"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_project_path_named_exists(page):
    paths = tracked()
    roots = {p for p in paths if "/" not in p}
    missing = [p for p in named_paths(page.read_text(), roots) if p not in paths]
    assert not missing, f"{page.name} names {missing}"


def test_the_checks_see_a_broken_link_and_a_missing_path(tmp_path):
    roots = {"keras_exercises", "params.yaml"}
    text = "see `keras_exercises/nowhere.py`, `params.yaml` and `outputs/<ex>/`"
    assert named_paths(text, roots) == ["keras_exercises/nowhere.py", "params.yaml"]
    assert LINK.findall("[a](docs/x.md) and [b](https://example.org)") == [
        "docs/x.md",
        "https://example.org",
    ]


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "pip install -e . && dvc repro" in readme
    assert 'pip install -e ".[dev]" && pytest' in readme
    linked = set(LINK.findall(readme))
    assert {f"docs/{p.name}" for p in PAGES[1:]} <= linked  # every docs page is reachable


def test_the_docs_show_the_team_script_as_it_is():
    """docs/team.md shows tools/team.sh whole, which tests/test_team.py runs."""
    docs = (ROOT / "docs" / "team.md").read_text()
    assert f"```bash\n{TEAM_SCRIPT.read_text()}```" in docs
