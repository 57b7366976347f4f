"""`keras-exercises compare` on hand-made prediction files in a real git + DVC repo: the
paired tests, the verdicts, and what it says when it cannot pair."""

import json
import shutil
import subprocess

import pytest

from keras_exercises import cli
from keras_exercises.plot_data import predictions_csv
from tests.conftest import ROOT
from tests.support.project_copy import git


def write_predictions(project, exercise: str, actual: list[int], predicted: list[int]) -> None:
    path = project / "outputs" / exercise / "seed42" / "predictions.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(predictions_csv(actual, predicted))


def command(project, *args: str) -> subprocess.CompletedProcess:
    """The installed `keras-exercises` command, in its own process."""
    return subprocess.run(
        ["keras-exercises", "compare", *args], cwd=project, capture_output=True, text=True
    )


@pytest.fixture
def compare(monkeypatch, capsys):
    """The same command in this process (seconds faster: SciPy and DVC stay imported)."""

    def run(project, *args: str) -> subprocess.CompletedProcess:
        monkeypatch.chdir(project)
        capsys.readouterr()
        code = cli.main(["compare", *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


@pytest.fixture
def repo(tmp_path):
    project = tmp_path / "repo"
    project.mkdir()
    shutil.copy(ROOT / "params.yaml", project / "params.yaml")
    git(project, "init", "-q")
    git(project, "config", "user.name", "test")
    git(project, "config", "user.email", "test@localhost")
    subprocess.run(["dvc", "init", "-q"], cwd=project, check=True)
    return project


def test_twelve_flips_one_way_are_beyond_noise_and_the_rest_is_reported(repo, compare):
    actual = [i % 10 for i in range(100)]
    before = [a if i >= 20 else (a + 1) % 10 for i, a in enumerate(actual)]  # 80 right
    write_predictions(repo, "ex1", actual, before)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "A")
    after = [a if i >= 8 else (a + 1) % 10 for i, a in enumerate(actual)]  # 12 more right
    write_predictions(repo, "ex1", actual, after)

    done = command(repo, "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    (q11,) = [r for r in rows if r["question"] == "Q1.1"]
    assert (q11["seed"], q11["a"], q11["b"]) == (42, 0.8, 0.92)
    assert q11["difference"] == pytest.approx(0.12)
    assert q11["p_value"] == pytest.approx(2 / 4096)  # McNemar exact: 12 discordant, all one way
    assert q11["verdict"] == "beyond noise"
    assert all(r["verdict"] == "no answer in HEAD" for r in rows if r["question"] != "Q1.1")

    table = compare(repo).stdout  # HEAD against the workspace by default
    assert table.startswith("HEAD (a) against workspace (b), on the same test images")
    assert "Q1.1" in table and "+12.0 pts" in table and "McNemar exact: beyond noise" in table

    # the same comparison between two commits, read through git without a checkout
    git(repo, "commit", "-qam", "B")
    assert json.loads(compare(repo, "HEAD~1", "HEAD", "--json").stdout)[0] == q11

    # two flips: within noise
    write_predictions(
        repo, "ex1", actual, [a if i >= 6 else (a + 1) % 10 for i, a in enumerate(actual)]
    )
    (q11,) = [r for r in json.loads(compare(repo, "--json").stdout) if r["question"] == "Q1.1"]
    assert q11["p_value"] == pytest.approx(0.5) and q11["verdict"] == "within noise"


def test_other_test_images_are_not_paired_and_a_bad_revision_is_named(repo, compare):
    write_predictions(repo, "ex1", [1, 2, 3], [1, 2, 3])
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "A")
    write_predictions(repo, "ex1", [3, 2, 1], [3, 2, 0])
    (q11,) = [r for r in json.loads(compare(repo, "--json").stdout) if r["question"] == "Q1.1"]
    assert q11["verdict"] == "different test images: no paired test"
    assert q11["p_value"] is None and q11["difference"] == pytest.approx(-1 / 3)

    done = compare(repo, "no-such-rev")
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot read revision 'no-such-rev'")
    assert "DVC experiment name" in done.stderr
