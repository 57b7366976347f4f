"""`python -m keras_exercises.sweep.stage_runner JOB RESULT`, in a task's clone: one stage, or
a few small ones in order, their inputs and outputs moved by DVC's API in one process.

What DVC's `repro --pull` would do costs a task more than its stage: it pulls the remote's
whole run-cache (every entry the team ever pushed), then checks, restores or reruns every
stage upstream (`validate` again, each time). A task knows better. The lock entries of the
stages it needs come with it (JOB, from the tasks that made them): dvc.lock holds them
alone, so a pull fetches exactly their outputs. For each of its stages it asks the remote's
run-cache for that stage's key alone: where an entry is there, made from exactly these
deps, its outputs are pulled by their hashes, which is all `dvc repro` would do; else DVC's
`repro --single-item` runs it. Then it pushes the outputs, then the entries it made. RESULT
gets each stage's lock entry, for the tasks downstream, how long restoring or running it
took (the task's overhead is the rest) and which ran; or, when a stage failed, which one.

The order of the pushes: an entry reaches the remote after its outputs, so a task stopped
between the two never leaves an entry whose outputs never arrived (DVC would restore from it
and fail, or run the stage again when its grid point comes home).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

LOCK_FILE = "dvc.lock"
# DVC reads dvc.yaml again for each target it pulls (0.1 s here), and without targets it
# checks out the whole pipeline's index (0.8 s): a few inputs are pulled by name, more at once
FEW_INPUTS = 5


def write_lock_entries(
    entries: dict[str, dict], lock_file: Path = Path(LOCK_FILE), *, alone: bool = False
) -> None:
    """Put each stage's entry into dvc.lock, as `dvc repro` would have written it; `alone`:
    dvc.lock then holds these entries and no other (the commit's own are dropped)."""
    from dvc.utils.serialize import dump_yaml, load_yaml

    fresh = {"schema": "2.0", "stages": {}}
    lock = load_yaml(lock_file) if lock_file.exists() and not alone else fresh
    lock.setdefault("stages", {}).update(entries)
    dump_yaml(lock_file, lock)


def lock_entry(address: str, lock_file: Path = Path(LOCK_FILE)) -> dict:
    from dvc.utils.serialize import load_yaml

    return load_yaml(lock_file)["stages"][address]


class Failed(Exception):
    """One of the task's stages could not be restored or run."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.address = address


def run(addresses: list[str], upstream: dict[str, dict]) -> dict:
    """Restore or run each stage of `addresses`, in order, once the outputs of the
    `upstream` entries are in place; returns RESULT's content. Raises Failed with the
    stage when one fails (DVC's message printed). One DVC repo serves every step: DVC
    reads dvc.yaml, dvc.lock and params.yaml again for each, but starts once."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    write_lock_entries(upstream, alone=True)
    entries, seconds, ran, made = {}, {}, [], []
    with Repo() as repo:
        if len(upstream) > FEW_INPUTS:
            # the stages without an entry are not this task's inputs: nothing to check out
            # (fetching still fails on an input the remote lacks)
            repo.pull(allow_missing=True)
        elif upstream:
            repo.pull(targets=list(upstream))
        runs = _RemoteRuns(repo)
        try:
            for address in addresses:
                try:
                    entries[address], seconds[address], did_run, restored = _restore_or_run(
                        repo, runs, address
                    )
                except DvcException as exc:
                    print(f"ERROR: {address}: {_dvc_message(exc)}", file=sys.stderr)
                    raise Failed(address) from exc
                if did_run:
                    ran.append(address)
                if not restored:
                    made.append(address)
        finally:  # a later stage's failure keeps what the earlier ones made (a download, say)
            if made:
                repo.push(targets=made)
                _push_entries(repo)  # the outputs are there: now the entries
    return {"entries": entries, "stage_seconds": seconds, "ran": ran}


def _dvc_message(exc: BaseException) -> str:
    """DVC's error and its causes, as its command line prints them."""
    said = [str(exc)]
    while exc.__cause__ is not None:
        exc = exc.__cause__
        said.append(str(exc))
    return ": ".join(part for part in said if part)


def _push_entries(repo) -> None:
    """The run-cache's entries, as `dvc push --run-cache` sends them before the outputs, but
    after them, and without collecting the outputs again (a second push did: 0.5 s)."""
    from dvc.stage.cache import RunCacheNotSupported

    # as DVC's push does: a remote that keeps no run-cache gets none
    with contextlib.suppress(RunCacheNotSupported):
        repo.stage_cache.push(None)


def _restore_or_run(repo, runs: _RemoteRuns, address: str) -> tuple[dict, float, bool, bool]:
    """The stage's entry, the seconds its restore or run took, whether it ran, and whether
    the remote already had both its entry and its outputs (an earlier sweep or a teammate
    made them)."""
    (stage,) = repo.stage.collect(address)
    known = runs.entry(stage)
    started = time.monotonic()
    if known:
        write_lock_entries({address: known})
        if all(out.use_cache for out in stage.outs):
            # its outputs are in the remote, under the hashes of an entry made from exactly
            # these deps: what `dvc repro` would restore them from; no need to ask it
            repo.pull(targets=[address])
            return lock_entry(address), time.monotonic() - started, False, True
        repo.fetch(targets=[address])  # an output DVC does not cache: `dvc repro` decides
    did_run = bool(repo.reproduce(address, single_item=True))  # the stages it reproduced
    entry, seconds = lock_entry(address), time.monotonic() - started
    # restored, or run again with the same outputs: the remote has them and the entry
    return entry, seconds, did_run, known is not None and entry["outs"] == known["outs"]


class _RemoteRuns:
    """The default remote's run-cache, read one stage's key at a time (DVC's own pull of it
    reads every entry the team ever pushed); its file system made once per task."""

    def __init__(self, repo) -> None:
        self._repo, self._odb = repo, None

    def entry(self, stage) -> dict | None:
        """The newest entry of the stage's run-cache key, or None."""
        from dvc.schema import COMPILED_LOCK_FILE_STAGE_SCHEMA
        from dvc.stage.cache import _can_hash, _get_stage_hash
        from dvc.utils.serialize import parse_yaml

        stage.save_deps()
        if not _can_hash(stage):  # a stage DVC never run-caches (validate's output persists)
            return None
        key = _get_stage_hash(stage)
        if self._odb is None:  # here, where a missing remote fails the stage that asked
            cloud = self._repo.cloud
            self._odb = cloud.get_remote_odb(None, "fetch --run-cache", hash_name="md5-dos2unix")
        fs = self._odb.fs
        try:
            found = fs.ls(fs.join(self._odb.path, "runs", key[:2], key), detail=True)
        except FileNotFoundError:
            return None
        if not found:
            return None
        newest = max(found, key=lambda info: (_modified(info), info["name"]))
        text = fs.cat_file(newest["name"]).decode()
        return COMPILED_LOCK_FILE_STAGE_SCHEMA(parse_yaml(text, newest["name"]))


def _modified(info: dict) -> float:
    stamp = info.get("mtime") or info.get("LastModified") or 0
    return stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)


def main(job_file: Path, result_file: Path) -> int:
    job = json.loads(job_file.read_text())
    try:
        result = run(job["stages"], job["upstream"])
    except Failed as failed:
        result_file.write_text(json.dumps({"failed": failed.address}))
        return 1
    result_file.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    from keras_exercises.runtime import warm_start

    # DVC's imports take half a second: a warm interpreter on the node has them (it returns
    # here where none can take the task)
    warm_start.hand_off_main("dvc")
    # the stages DVC starts from here are not inside a warm interpreter: each hands itself
    # to one of its own kind
    os.environ.pop(warm_start.INSIDE, None)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
