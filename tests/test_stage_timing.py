"""The timing record each stage writes for benchmarks/ measures the stage's own process."""

import json
import os
import subprocess
import sys
import time

from stages.errors import TIMINGS_ENV


def test_a_stage_records_its_wall_time_start_up_and_imports(project, tmp_path):
    timings = tmp_path / "timings.jsonl"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "stages.fetch", "mnist"],
        cwd=project,
        env={**os.environ, TIMINGS_ENV: str(timings)},
        check=True,
        capture_output=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - started

    (record,) = [json.loads(line) for line in timings.read_text().splitlines()]
    assert record["stage"] == "fetch mnist"
    # inside what the parent saw, give or take the kernel's clock tick that counts a
    # process's start (whole-second boot-time rounding once put it 0.4 s out)
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert 0 < record["startup_s"] < record["wall_s"] <= elapsed + 2 * tick
    assert record["peak_rss_mb"] > 10
    assert record["imports_tensorflow"] is False
    assert record["imports_mlflow"] is False
