"""A new local store is a copy of the empty one MLflow made once on this machine: the same
schema MLflow makes itself, made once, and MLflow making it in place when the cache is
out of reach."""

from __future__ import annotations

import sqlite3

import pytest

from keras_exercises.tracking import empty_store, store


def schema(db) -> tuple[list, list]:
    """Every table, index and trigger, and the migration it is at. A table's clauses are
    compared as a set: MLflow's migrations write its constraints in an order that differs
    from one run to the next."""
    with sqlite3.connect(db) as connection:
        objects = connection.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        version = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    clauses = [
        (kind, name, table, sorted(line.strip(" ,") for line in (sql or "").splitlines()))
        for kind, name, table, sql in objects
    ]
    return clauses, version


def experiments(db) -> list:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT experiment_id, name, artifact_location FROM experiments ORDER BY 1"
        ).fetchall()


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    yield root
    import mlflow

    mlflow.set_tracking_uri(None)


def test_a_store_from_the_cache_is_the_store_mlflow_makes(project, tmp_path):
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    by_mlflow = tmp_path / "by_mlflow.db"
    SqlAlchemyStore(f"sqlite:///{by_mlflow}", (tmp_path / "artifacts").as_uri())

    store.connect()
    seeded = project / "mlruns" / "mlflow.db"
    assert empty_store.template_path().is_file()
    assert schema(seeded) == schema(by_mlflow)
    # the default experiment is made on opening, with this project's paths, not the cache's
    default_id, default_name, default_artifacts = experiments(seeded)[0]
    assert (default_id, default_name) == (0, "Default")
    assert default_artifacts.startswith(str(project / "mlruns"))
    assert [name for _, name, _ in experiments(seeded)] == ["Default", store.EXPERIMENT]
    assert not list(empty_store.cache_dir().glob("*.partial"))
    assert not list(seeded.parent.glob("*.partial"))


def test_the_empty_store_is_made_once_and_copied(project, tmp_path):
    first, second = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    first.parent.mkdir()
    second.parent.mkdir()
    empty_store.seed(first)
    template = empty_store.template_path()
    made = template.stat().st_mtime_ns
    empty_store.seed(second)
    assert template.stat().st_mtime_ns == made
    assert first.read_bytes() == second.read_bytes() == template.read_bytes()

    second.write_bytes(b"a store with runs in it")
    empty_store.seed(second)  # an existing store is never replaced
    assert second.read_bytes() == b"a store with runs in it"


def test_an_unwritable_cache_leaves_making_the_store_to_mlflow(project, monkeypatch):
    blocker = project.parent / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))

    experiment_id = store.connect()
    assert not (blocker / "keras-exercises").exists()
    db = project / "mlruns" / "mlflow.db"
    assert [name for _, name, _ in experiments(db)] == ["Default", store.EXPERIMENT]
    assert store.connect() == experiment_id
