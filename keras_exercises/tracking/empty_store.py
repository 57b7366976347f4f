"""A new local store starts as a copy of an empty one that MLflow made once on this machine.

Making a store's schema means running MLflow's fifty-odd alembic migrations: about a second,
paid by the first training stage of every fresh clone, copy and experiment workspace. The
result depends only on MLflow's version, so it is made once per version under the user's
cache folder and copied (a millisecond). MLflow opens the copy as it opens any store: it
checks the schema is its own and adds the default experiment with this project's paths.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """Where the empty stores are kept: $XDG_CACHE_HOME/keras-exercises (~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "keras-exercises"


def template_path() -> Path:
    import mlflow

    return cache_dir() / f"mlflow-{mlflow.__version__}-empty.db"


def seed(db: Path) -> None:
    """Put an empty store at `db` if there is none. Where the cache cannot be written (a
    read-only home), do nothing: MLflow then makes the schema in place, as it always can."""
    if db.exists():
        return
    try:
        template = template_path()
        if not template.exists():
            _make(template)
        _copy_atomically(template, db)
    except OSError:
        return


def _make(template: Path) -> None:
    """MLflow's own schema, made as its SqlAlchemyStore makes it on an empty database but
    without the default experiment, whose artifact path belongs to the project."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    template.parent.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(dir=template.parent, suffix=".db.partial")
    os.close(fd)
    try:
        engine = sqlalchemy.create_engine(f"sqlite:///{scratch}")
        try:
            _initialize_tables(engine)
        finally:
            engine.dispose()
        # two processes making it at once both rename a whole file; either one serves
        os.replace(scratch, template)
    finally:
        Path(scratch).unlink(missing_ok=True)


def _copy_atomically(source: Path, target: Path) -> None:
    """A store is either whole or absent: an interrupted copy leaves no half database."""
    fd, scratch = tempfile.mkstemp(dir=target.parent, suffix=".db.partial")
    os.close(fd)
    try:
        shutil.copyfile(source, scratch)
        os.replace(scratch, target)
    finally:
        Path(scratch).unlink(missing_ok=True)
