"""What users see, in a real browser: Debian's chromium, driven by Playwright, against a
live `mlflow ui` over the tiny pipeline's store. Screenshots of every page land in
test-screenshots/ (git-ignored), where they stay when a test fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from keras_exercises.tracking.links import experiment_page, run_page
from tests.conftest import dvc
from tests.support.project_copy import ROOT, set_params
from tests.support.services import NO_JOB_RUNNER, free_port, stop, wait_until_up

pytestmark = pytest.mark.slow

SCREENSHOTS = ROOT / "test-screenshots"
CHROMIUM = "/usr/bin/chromium"  # Debian's package; .ci/run installs it


@pytest.fixture(scope="module")
def ui(finished_project, tmp_path_factory) -> Iterator[tuple[Path, str]]:
    """A copy of the finished tiny pipeline whose report links to a live `mlflow ui`,
    started as the README says, on a free port."""
    project = Path(
        shutil.copytree(finished_project, tmp_path_factory.mktemp("ui") / "p", symlinks=True)
    )
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    set_params(project, {"mlflow_ui": address})
    dvc(project, "repro")  # reruns the report with links to this address
    server = subprocess.Popen(
        ["mlflow", "ui", "--backend-store-uri", "sqlite:///mlruns/mlflow.db"]
        + ["--host", "127.0.0.1", "--port", str(port)],
        cwd=project,
        env={**os.environ, **NO_JOB_RUNNER},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_up(address, server, "mlflow ui")
        yield project, address
    finally:
        stop(server)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), "install Debian's chromium: apt-get install -y chromium"
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def open_page(browser, url: str, name: str, width: int = 1400, wait_for: str | None = None):
    """A new page at `url`; once `wait_for` shows (or the page has loaded), a full-page
    screenshot test-screenshots/<name>.png, taken before any assertion can fail."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    go_to(page, url, name, page.get_by_text(wait_for, exact=True) if wait_for else None)
    return page


def go_to(page, url: str, name: str, shown=None) -> None:
    """`page` at `url`, then, once the locator `shown` is visible (or the page has loaded),
    its screenshot test-screenshots/<name>.png."""
    # generous waits: on two loaded cores (the suite's other workers training) the MLflow
    # UI's first page took over 30 s to load, and its runs table over 60 s to show
    page.goto(url, timeout=120_000)
    try:
        if shown is not None:
            shown.first.wait_for(timeout=180_000)
        else:
            page.wait_for_load_state("load")
    finally:
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def runs_of(project: Path) -> dict[str, dict]:
    """Run name -> run.json of every exercise's (only) seed."""
    return {
        f"{ex} seed 42": json.loads((project / f"outputs/{ex}/seed42/run.json").read_text())
        for ex in ("ex1", "ex2", "ex3", "ex4", "ex5", "ex6")
    }


def test_report_renders_and_every_run_link_opens_that_runs_page(ui, browser):
    project, address = ui
    report = open_page(browser, (project / "reports/report.html").as_uri(), "report")
    images = report.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
    assert len(images) == 11 and all(width > 0 for width in images), images
    captions = report.eval_on_selector_all("figcaption", "els => els.map(e => e.textContent)")
    assert len(captions) == len(images) and all(captions)
    links = report.eval_on_selector_all("td a", "els => els.map(e => e.href)")
    runs = runs_of(project)
    assert len(links) == 9  # one per answer
    assert set(links) == {
        run_page(address, run["experiment_id"], run["run_id"]) for run in runs.values()
    }
    # in one tab, as a user going from link to link: MLflow's app loads once (the first
    # link, a deep link into it) and routes to each next run without loading again
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    for name, run in runs.items():
        url = run_page(address, run["experiment_id"], run["run_id"])
        # the run's own heading: a run name elsewhere on the previous run's page won't do
        go_to(page, url, f"run {name}", page.get_by_role("heading", name=name, exact=True))
        assert run["run_id"] in page.content()
    page.close()


def test_runs_page_lists_six_runs_each_with_its_data_and_registered_model(ui, browser):
    project, address = ui
    runs = runs_of(project)
    experiment_id = next(iter(runs.values()))["experiment_id"]
    page = open_page(
        browser,
        experiment_page(address, experiment_id),
        "runs",
        width=2200,  # wide enough for the Models column beside the assistant panel
        wait_for="ex1 seed 42",
    )
    texts: dict[str, str] = {}  # the grid splits each row over pinned and scrolled parts
    rows = page.locator("[role=row][row-index]")
    for i in range(rows.count()):
        index = rows.nth(i).get_attribute("row-index")
        texts[index] = texts.get(index, "") + "\n" + rows.nth(i).inner_text()
    assert len(texts) == 6, texts
    lock = (project / "dvc.lock").read_text()
    for name in runs:
        exercise = name.split()[0]
        (row,) = [text for text in texts.values() if f"\n{name}\n" in text]
        assert f"({exercise}) (" in row and "Training" in row  # the dataset, by exercise
        digest = row.split(f"({exercise}) (")[1].split(")")[0]
        assert f"md5: {digest}" in lock  # the DVC hash of the prepared file
        assert f"keras-exercises-{exercise}" in row, row  # the registered model
    assert "Model training" in page.content()


def test_report_reads_on_a_phone(ui, browser):
    project, _ = ui
    page = open_page(browser, (project / "reports/report.html").as_uri(), "report-phone", width=390)
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0  # wide tables scroll inside themselves, the page does not
    widths = page.eval_on_selector_all("img", "els => els.map(e => e.clientWidth)")
    assert max(widths) <= 390


def test_the_answer_model_of_exercise_1_serves_ten_probabilities(ui):
    project, _ = ui
    port = free_port()
    env_uri = f"sqlite:///{project / 'mlruns/mlflow.db'}"
    server = subprocess.Popen(
        ["mlflow", "models", "serve", "-m", "models:/keras-exercises-ex1@answer"]
        + ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        cwd=project,
        env={**os.environ, "MLFLOW_TRACKING_URI": env_uri},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/ping", server, "mlflow models serve")
        with np.load(project / "data/prepared/ex1.npz") as data:
            image = data["x_test"][:1]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": image.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            (probabilities,) = json.loads(response.read())["predictions"]
    finally:
        stop(server)
    assert len(probabilities) == 10
    assert sum(probabilities) == pytest.approx(1, abs=1e-4)
    assert all(p >= 0 for p in probabilities)
