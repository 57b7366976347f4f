"""model.keras holds the model and nothing of when or in which process it was saved
(keras_exercises/model_file.py): the same weights give the same bytes, so DVC sees a
retrained but identical model as unchanged."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_exercises.model_file import NO_TIME, make_reproducible, save_model
from keras_exercises.models import build_model
from keras_exercises.params import Params

SHARED_ID = re.compile(rb'(?<="shared_object_id": )\d+')


@pytest.fixture(scope="module")
def model(real_params) -> keras.Model:
    """Exercise 1's network: its Dense layers share one dtype policy."""
    keras.utils.set_random_seed(0)
    return build_model(Params.model_validate(real_params).exercises.ex1.model, (28, 28, 1))


def as_saved_by(keras_archive: Path, path: Path, when: tuple[int, ...], offset: int) -> Path:
    """The archive as Keras writes it at `when` in another process: the weights entry's
    time, metadata's date_saved and the shared objects' ids (their memory addresses) are
    what a save stamps."""
    with zipfile.ZipFile(keras_archive) as archive, zipfile.ZipFile(path, "w") as copy:
        for info in archive.infolist():
            data = archive.read(info)
            if info.filename == "metadata.json":
                date_saved = "{:04}-{:02}-{:02}@{:02}:{:02}:{:02}".format(*when)
                data = json.dumps({**json.loads(data), "date_saved": date_saved}).encode()
            elif info.filename == "config.json":
                data = SHARED_ID.sub(lambda m: b"%d" % (int(m[0]) + offset), data)
            elif info.filename.endswith(".h5"):
                info.date_time = when
            copy.writestr(info, data)
    return path


def test_saves_at_other_times_in_other_processes_give_the_same_bytes(model, tmp_path):
    model.save(tmp_path / "keras.keras")
    assert SHARED_ID.search(zipfile.ZipFile(tmp_path / "keras.keras").read("config.json"))
    one = as_saved_by(tmp_path / "keras.keras", tmp_path / "one.keras", (2026, 1, 2, 3, 4, 6), 0)
    other = as_saved_by(
        tmp_path / "keras.keras", tmp_path / "other.keras", (2027, 6, 5, 4, 3, 2), 4096
    )
    assert one.read_bytes() != other.read_bytes()

    make_reproducible(one)
    make_reproducible(other)
    save_model(model, tmp_path / "ours.keras")
    assert one.read_bytes() == other.read_bytes() == (tmp_path / "ours.keras").read_bytes()


def test_the_saved_model_has_no_save_time_and_loads_as_it_was(model, tmp_path):
    path = tmp_path / "model.keras"
    save_model(model, path)
    with zipfile.ZipFile(path) as archive:
        assert {info.date_time for info in archive.infolist()} == {NO_TIME}
        assert json.loads(archive.read("metadata.json")) == {"keras_version": keras.version()}
        assert set(SHARED_ID.findall(archive.read("config.json"))) == {b"1"}  # one policy
        assert archive.testzip() is None

    loaded = keras.saving.load_model(path, safe_mode=True)
    for ours, theirs in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    images = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0)
    )
