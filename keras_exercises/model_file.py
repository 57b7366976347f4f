"""model.keras whose bytes are the model's alone. Keras writes into each archive when it was
saved (metadata.json's `date_saved`, the weights entry's zip time) and, in config.json, the
memory address of every object two layers share (`shared_object_id`, which differs from
one process to the next): a rerun that trained the very same weights would still give
another file, which `dvc diff` lists as modified and DVC's cache and remote keep a second
copy of."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

# the zip format's earliest time, which Keras already gives the archive's other entries
NO_TIME = (1980, 1, 1, 0, 0, 0)


def save_model(model, path: Path) -> None:
    """`model.save(path)`, then what the process and the clock put in the archive taken out."""
    model.save(path)
    make_reproducible(path)


def make_reproducible(path: Path) -> None:
    """Rewrite the Keras archive at `path` with every entry at NO_TIME, no `date_saved`
    (Keras reads only `keras_version` from its metadata) and the shared objects numbered
    1, 2, ... in the order config.json names them (Keras matches the numbers only with each
    other, when it loads). In place: callers save to a temporary path (runtime/atomic.py)."""
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            elif info.filename == "config.json":
                data = json.dumps(_numbered_shared_objects(json.loads(data), {})).encode()
            entry = zipfile.ZipInfo(info.filename, date_time=NO_TIME)
            entry.compress_type, entry.external_attr = info.compress_type, info.external_attr
            archive.writestr(entry, data)


def _numbered_shared_objects(config: Any, numbers: dict[int, int]) -> Any:
    if isinstance(config, list):
        return [_numbered_shared_objects(item, numbers) for item in config]
    if not isinstance(config, dict):
        return config
    renumbered = {key: _numbered_shared_objects(value, numbers) for key, value in config.items()}
    if "shared_object_id" in config:
        renumbered["shared_object_id"] = numbers.setdefault(
            config["shared_object_id"], len(numbers) + 1
        )
    return renumbered
