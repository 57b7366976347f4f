"""`python -m keras_exercises.sweep.stage_runner JOB RESULT`, in a task's clone: one stage,
its inputs and its outputs moved by DVC's API in one process.

What DVC's `repro --pull` would do costs a task more than its stage: it pulls the remote's
whole run-cache (every entry the team ever pushed), then checks, restores or reruns every
stage upstream (`validate` again, each time). A task knows better. The lock entries of the
stages it needs come with it (JOB, from the tasks that made them), so it writes them into
dvc.lock and pulls exactly their outputs; it asks the remote's run-cache for its own stage's
key alone; `dvc repro --single-item` then restores or runs the stage; and it pushes the
outputs, then the one entry it made. RESULT gets the stage's lock entry, for the tasks
downstream, and how long `dvc repro` took (the task's overhead is the rest).

The order of the pushes: an entry reaches the remote after its outputs, so a task stopped
between the two never leaves an entry whose outputs never arrived (DVC would restore from it
and fail, or run the stage again when its grid point comes home).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

LOCK_FILE = "dvc.lock"


def write_lock_entries(entries: dict[str, dict], lock_file: Path = Path(LOCK_FILE)) -> None:
    """Put each stage's entry into dvc.lock, as `dvc repro` would have written it."""
    from dvc.utils.serialize import dump_yaml, load_yaml

    lock = load_yaml(lock_file) if lock_file.exists() else {"schema": "2.0", "stages": {}}
    lock.setdefault("stages", {}).update(entries)
    dump_yaml(lock_file, lock)


def lock_entry(address: str, lock_file: Path = Path(LOCK_FILE)) -> dict:
    from dvc.utils.serialize import load_yaml

    return load_yaml(lock_file)["stages"][address]


def run(address: str, upstream: dict[str, dict]) -> dict:
    """Restore or run the stage at `address` once its `upstream` entries' outputs are in
    place; returns RESULT's content. Raises SystemExit with DVC's code when `dvc repro`
    fails (its own message printed)."""
    from dvc.cli import main as dvc
    from dvc.repo import Repo

    if upstream:
        write_lock_entries(upstream)
    with Repo() as repo:
        if upstream:
            repo.pull(targets=list(upstream))
        (stage,) = repo.stage.collect(address)
        known = _remote_entry(repo, stage)
        if known:  # an earlier sweep or a teammate did it: restored, not run
            write_lock_entries({address: known})
            repo.fetch(targets=[address])
    started = time.monotonic()
    # DVC's own command line prints what `dvc repro` prints: the stage's output, its
    # "Running stage" line and its errors, which the task reads
    code = dvc(["repro", "--single-item", address])
    stage_seconds = time.monotonic() - started
    if code != 0:
        raise SystemExit(code)
    entry = lock_entry(address)
    # restored, or run again with the same outputs: the remote has them and the entry
    if known is None or entry["outs"] != known["outs"]:
        with Repo() as repo:
            repo.push(targets=[address])
            repo.push(targets=[address], run_cache=True)  # the outputs are there: the entry
    return {"entry": entry, "stage_seconds": stage_seconds}


def _remote_entry(repo, stage) -> dict | None:
    """The newest entry of the stage's run-cache key in the default remote, or None."""
    from dvc.schema import COMPILED_LOCK_FILE_STAGE_SCHEMA
    from dvc.stage.cache import _can_hash, _get_stage_hash
    from dvc.utils.serialize import parse_yaml

    stage.save_deps()
    if not _can_hash(stage):  # a stage DVC never run-caches (validate's output persists)
        return None
    key = _get_stage_hash(stage)
    odb = repo.cloud.get_remote_odb(None, "fetch --run-cache", hash_name="md5-dos2unix")
    folder = odb.fs.join(odb.path, "runs", key[:2], key)
    try:
        found = odb.fs.ls(folder, detail=True)
    except FileNotFoundError:
        return None
    if not found:
        return None
    newest = max(found, key=lambda info: (_modified(info), info["name"]))
    text = odb.fs.cat_file(newest["name"]).decode()
    return COMPILED_LOCK_FILE_STAGE_SCHEMA(parse_yaml(text, newest["name"]))


def _modified(info: dict) -> float:
    stamp = info.get("mtime") or info.get("LastModified") or 0
    return stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)


def main(job_file: Path, result_file: Path) -> int:
    job = json.loads(job_file.read_text())
    result = run(job["stage"], job["upstream"])
    result_file.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
