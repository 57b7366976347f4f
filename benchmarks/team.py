"""What the team set-up saves: a teammate's reproduction from the remote against a cold
`dvc repro`, and one exercise restored from the shared run-cache against training it.

    python -m benchmarks.team --mirror ../shared/data

Starts PostgreSQL, an S3-compatible endpoint (moto) and the team's MLflow server on
127.0.0.1 (tools/services.py), then, on copies of the project standing for two machines:
A runs `dvc repro` from a clean state and `tools/team.sh share`; B, a fresh clone, runs
`tools/team.sh sync`; A runs an experiment (exercise 1's learning rate) and shares it; B
runs the same experiment with `dvc exp run --pull`. Writes benchmarks/results/team.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.pages import render
from benchmarks.run import RESULTS, benchmark_project
from tests.support.project_copy import git
from tests.support.services import team_script, team_servers

CHANGE = "exercises.ex1.optimizer.learning_rate=0.002"


def timed(command: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return time.perf_counter() - start, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, required=True, help="directory of <dataset>.npz")
    parser.add_argument("--weights", default=None, help="MobileNetV2 weights (default: null)")
    args = parser.parse_args()
    script = ["bash", "tools/team.sh"]

    with tempfile.TemporaryDirectory(prefix="bench-team-") as tmp, team_servers(Path(tmp)) as team:
        work = Path(tmp)
        a, _, data = benchmark_project(work, args.mirror, args.weights)
        origin = work / "origin.git"
        subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
        git(a, "remote", "add", "origin", str(origin))
        team_script(a, team.env, "remote")
        git(a, "commit", "-qam", "the team's DVC remote")

        cold_s, _ = timed(["dvc", "repro"], a, team.env)
        git(a, "add", "-A")
        git(a, "commit", "-qm", "results")
        share_s, _ = timed([*script, "share"], a, team.env)

        b = work / "b"
        subprocess.run(["git", "clone", "-q", str(origin), str(b)], check=True)
        git(b, "config", "user.name", "teammate")  # `dvc exp run` commits
        git(b, "config", "user.email", "teammate@localhost")
        sync_s, _ = timed([*script, "sync"], b, team.env)
        same = (a / "reports/answers.json").read_bytes() == (
            b / "reports/answers.json"
        ).read_bytes()

        train_s, _ = timed(["dvc", "exp", "run", "-n", "lr", "-S", CHANGE], a, team.env)
        timed([*script, "share", "lr"], a, team.env)
        timed([*script, "sync"], b, team.env)  # the run-cache A just pushed
        restore_s, restored = timed(["dvc", "exp", "run", "--pull", "-S", CHANGE], b, team.env)
        trained_on_b = re.findall(r"Running stage '(train[^']*)'", restored)

    results = {
        "date": time.strftime("%Y-%m-%d"),
        "data": data,
        "cold_repro_s": cold_s,
        "share_s": share_s,
        "sync_s": sync_s,
        "sync_answers_identical": same,
        "experiment_trained_s": train_s,
        "experiment_restored_s": restore_s,
        "stages_trained_on_restore": trained_on_b,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "team.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "team.md").write_text(markdown(results))
    print(markdown(results))


def markdown(r: dict) -> str:
    return render("team.md.j2", r=r, change=CHANGE)


if __name__ == "__main__":
    main()
