import sys
from pathlib import Path

import numpy as np
import pytest

from keras_exercises.data.datasets import check_arrays, prepare, save_arrays
from keras_exercises.data.mirror import read_mirror, synthetic_dataset
from keras_exercises.runtime.errors import PipelineError
from tools import make_mirror


def test_mirror_round_trip(tmp_path):
    arrays = synthetic_dataset("cifar10", 12, 6)
    save_arrays(tmp_path / "cifar10.npz", arrays)
    loaded = read_mirror(tmp_path, "cifar10")
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key], value)


def test_cifar_style_column_labels_are_refused_with_the_shape_asked(tmp_path):
    arrays = synthetic_dataset("cifar10", 12, 6)
    arrays["y_train"] = arrays["y_train"].reshape(-1, 1)
    save_arrays(tmp_path / "cifar10.npz", arrays)
    with pytest.raises(PipelineError, match=r"y_train must have shape \(12,\)"):
        read_mirror(tmp_path, "cifar10")


def test_missing_mirror_file_says_how_to_fix(tmp_path):
    with pytest.raises(
        PipelineError, match="svhn_cropped.npz does not exist.*set data.mirror to null"
    ):
        read_mirror(tmp_path, "svhn_cropped")


def test_wrong_keys(tmp_path):
    np.savez(tmp_path / "mnist.npz", images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(PipelineError, match=r"lacks the arrays \['x_train', 'y_train'"):
        read_mirror(tmp_path, "mnist")


def test_pickled_objects_are_refused(tmp_path):
    arrays = synthetic_dataset("mnist", 4, 2)
    arrays["x_train"] = np.array([object()] * 4, dtype=object)
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(PipelineError, match="not a readable .npz of plain arrays"):
        read_mirror(tmp_path, "mnist")


def test_corrupt_file(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(PipelineError, match="not a readable .npz"):
        read_mirror(tmp_path, "mnist")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "must be uint8"),
        (lambda a: a.update(x_test=a["x_test"][:, :20]), r"x_test must have shape \(N, 28, 28\)"),
        (lambda a: a.update(y_test=a["y_test"][:-1]), r"y_test must have shape"),
        (lambda a: a["y_train"].__setitem__(0, 10), "class ids 0-9"),
    ],
)
def test_malformed_arrays(change, message):
    arrays = synthetic_dataset("mnist", 8, 4)
    change(arrays)
    with pytest.raises(PipelineError, match=message):
        check_arrays(arrays, "mnist", "test data")


def test_prepare_takes_the_first_samples_scaled_with_a_channel_axis():
    raw = synthetic_dataset("mnist", 10, 5)
    out = prepare(raw, n_train=6, n_test=3, dataset="mnist")
    assert out["x_train"].shape == (6, 28, 28, 1) and out["x_train"].dtype == np.float32
    np.testing.assert_allclose(out["x_train"][..., 0], raw["x_train"][:6] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(out["y_test"], raw["y_test"][:3])
    assert out["x_test"].min() >= 0.0 and out["x_test"].max() <= 1.0


def test_prepare_refuses_more_samples_than_the_data_holds():
    raw = synthetic_dataset("cifar10", 10, 5)
    with pytest.raises(PipelineError, match="holds 10 train samples but n_train asks for 11"):
        prepare(raw, n_train=11, n_test=5, dataset="cifar10")


@pytest.mark.parametrize(
    "real, says",
    [("shared/dta", "is not a directory"), ("shared", "holds none of mnist.npz, cifar10.npz")],
)
def test_a_mistyped_folder_of_real_data_makes_no_mirror_of_synthetic_data(
    tmp_path, monkeypatch, capsys, real, says
):
    (tmp_path / "shared" / "data").mkdir(parents=True)
    save_arrays(tmp_path / "shared" / "data" / "mnist.npz", synthetic_dataset("mnist", 8, 4))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["make_mirror", "mirror", "--real", real])
    assert make_mirror.main() == 1
    (error,) = capsys.readouterr().err.splitlines()
    assert error.startswith(f"error: the folder of real data {real} "), error
    assert says in error and "or leave --real out for synthetic data alone" in error
    assert not (tmp_path / "mirror").exists()

    monkeypatch.setattr(sys, "argv", ["make_mirror", "mirror", "--real", "shared/data"])
    assert make_mirror.main() == 0
    assert "mirror/mnist.npz: copied from shared/data/mnist.npz" in capsys.readouterr().out


def test_a_copy_cut_off_leaves_the_mirror_file_it_had(tmp_path, monkeypatch):
    from keras_exercises.data import mirror

    real, out = tmp_path / "real", tmp_path / "mirror"
    save_arrays(real / "mnist.npz", synthetic_dataset("mnist", 8, 4))
    save_arrays(out / "mnist.npz", synthetic_dataset("mnist", 4, 2))
    before = (out / "mnist.npz").read_bytes()

    def cut_off(source, target):  # as a full disk, or Ctrl-C, halfway through
        Path(target).write_bytes(Path(source).read_bytes()[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(mirror.shutil, "copyfile", cut_off)
    with pytest.raises(KeyboardInterrupt):
        mirror.build_mirror(out, real, 8, 4)
    assert (out / "mnist.npz").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["mnist.npz"]
