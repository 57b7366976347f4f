"""The real download code against a real HTTP server on 127.0.0.1."""

import hashlib
import socket

import numpy as np
import pytest

from keras_exercises.data import downloads
from keras_exercises.data.downloads import RemoteFile, fetch_file
from keras_exercises.runtime.errors import PipelineError
from tests.support.http_fixtures import FileServer, cifar10_tar_gz, mnist_npz, svhn_mat


@pytest.fixture(autouse=True)
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras" / "datasets"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pin(monkeypatch, dataset: str, files: dict[str, bytes]) -> None:
    """Point the dataset's table at the test files' own checksums (same names, same code)."""
    remotes = [
        RemoteFile(r.name, r.origin, hashlib.sha256(files[r.name]).hexdigest())
        for r in downloads.FILES[dataset]
    ]
    monkeypatch.setitem(downloads.FILES, dataset, remotes)


def test_mnist_npz_round_trip_and_cache(monkeypatch, rng, keras_home, capsys):
    body, arrays = mnist_npz(rng)
    pin(monkeypatch, "mnist", {"mnist.npz": body})
    with FileServer({"mnist.npz": body}) as server:
        got = downloads.download("mnist", server.url, timeout=5, attempts=2)
        again = downloads.download("mnist", server.url, timeout=5, attempts=2)
        assert server.hits["mnist.npz"] == 1  # the second call read the verified cache
    for value, key in zip(got, ("x_train", "y_train", "x_test", "y_test"), strict=True):
        np.testing.assert_array_equal(value, arrays[key])
    np.testing.assert_array_equal(again[0], arrays["x_train"])
    assert sorted(p.name for p in keras_home.iterdir()) == ["mnist.npz"]
    # progress: in a log (not a terminal), a few lines with bytes of the total and the rate
    printed = capsys.readouterr().err.splitlines()
    progress = [line for line in printed if line.startswith("download mnist.npz:")]
    assert 1 <= len(progress) <= 4, printed
    assert progress[-1].startswith("download mnist.npz: 100%") and "B/s]" in progress[-1]
    assert "\r" not in "".join(printed)


def test_cifar10_tarball_is_read_as_keras_does(monkeypatch, rng):
    body, batches = cifar10_tar_gz(rng)
    pin(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": body})
    with FileServer({"cifar-10-python.tar.gz": body}) as server:
        x_train, y_train, x_test, y_test = downloads.download("cifar10", server.url, 5, 2)
    assert x_train.shape == (15, 32, 32, 3) and x_test.shape == (3, 32, 32, 3)
    first_row = batches["data_batch_1"][0][0]
    np.testing.assert_array_equal(x_train[0], first_row.reshape(3, 32, 32).transpose(1, 2, 0))
    assert list(y_train[3:6]) == batches["data_batch_2"][1]
    assert list(y_test) == batches["test_batch"][1]


def test_svhn_mat_files_give_tfds_order_and_digit_zero(monkeypatch, rng):
    train, x, y = svhn_mat(rng, 20)
    test, _, _ = svhn_mat(rng, 8)
    files = {"train_32x32.mat": train, "test_32x32.mat": test}
    pin(monkeypatch, "svhn_cropped", files)
    with FileServer(files) as server:
        x_train, y_train, x_test, _ = downloads.download("svhn_cropped", server.url, 5, 2)
    order = downloads.tfds_order("train", 20)
    assert sorted(order) == list(range(20)) and list(order) != list(range(20))
    np.testing.assert_array_equal(x_train, x[order])
    np.testing.assert_array_equal(y_train, y[order] % 10)
    assert x_test.shape == (8, 32, 32, 3) and y_train.max() <= 9


def test_wrong_checksum_is_refused_and_not_cached(rng, keras_home):
    body, _ = mnist_npz(rng)
    remote = RemoteFile("mnist.npz", "unused/", "0" * 64)
    with FileServer({"mnist.npz": body}) as server, pytest.raises(PipelineError) as caught:
        fetch_file(remote, server.url, timeout=5, attempts=3)
    assert "SHA-256" in str(caught.value) and "discarded" in str(caught.value)
    assert server.hits["mnist.npz"] == 1  # a wrong file is not fetched again
    assert not keras_home.exists() or list(keras_home.iterdir()) == []


def test_server_errors_are_retried_then_succeed(rng):
    body, _ = mnist_npz(rng)
    remote = RemoteFile("mnist.npz", "unused/", hashlib.sha256(body).hexdigest())
    with FileServer({"mnist.npz": body}) as server:
        server.failures["mnist.npz"] = 2
        path = fetch_file(remote, server.url, timeout=5, attempts=3, pause=0.01)
        assert server.hits["mnist.npz"] == 3
    assert path.read_bytes() == body


def test_persistent_server_errors_stop_after_the_attempts(rng, keras_home):
    remote = RemoteFile("mnist.npz", "unused/", "0" * 64)
    with FileServer({}) as server, pytest.raises(PipelineError) as caught:
        server.failures["mnist.npz"] = 99
        fetch_file(remote, server.url, timeout=5, attempts=3, pause=0.01)
    assert server.hits["mnist.npz"] == 3
    assert "HTTP 503" in str(caught.value) and "3 attempt(s)" in str(caught.value)
    assert not keras_home.exists() or list(keras_home.iterdir()) == []


def test_missing_file_is_not_retried():
    remote = RemoteFile("mnist.npz", "unused/", "0" * 64)
    with FileServer({}) as server, pytest.raises(PipelineError, match="HTTP 404"):
        fetch_file(remote, server.url, timeout=5, attempts=3, pause=0.01)
    assert server.hits["mnist.npz"] == 1


def test_timeout_is_retried_a_bounded_number_of_times(rng, keras_home):
    body, _ = mnist_npz(rng)
    remote = RemoteFile("mnist.npz", "unused/", hashlib.sha256(body).hexdigest())
    with FileServer({"mnist.npz": body}) as server, pytest.raises(PipelineError) as caught:
        server.delay = 1.0
        fetch_file(remote, server.url, timeout=0.2, attempts=2, pause=0.01)
    assert "timed out" in str(caught.value) and "2 attempt(s)" in str(caught.value)
    assert not keras_home.exists() or list(keras_home.iterdir()) == []


def test_dead_server_tells_the_user_about_the_mirror(keras_home):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    remote = RemoteFile("mnist.npz", "unused/", "0" * 64)
    with pytest.raises(PipelineError) as caught:
        fetch_file(remote, f"http://127.0.0.1:{port}", timeout=2, attempts=2, pause=0.01)
    message = str(caught.value)
    assert "Connection refused" in message and "set data.mirror" in message
    assert not keras_home.exists() or list(keras_home.iterdir()) == []


def test_corrupt_cached_file_is_downloaded_again(rng, keras_home):
    body, _ = mnist_npz(rng)
    remote = RemoteFile("mnist.npz", "unused/", hashlib.sha256(body).hexdigest())
    keras_home.mkdir(parents=True)
    (keras_home / "mnist.npz").write_bytes(body[:100])  # a download cut short by a kill
    with FileServer({"mnist.npz": body}) as server:
        fetch_file(remote, server.url, timeout=5, attempts=1)
        assert server.hits["mnist.npz"] == 1
    assert (keras_home / "mnist.npz").read_bytes() == body


@pytest.mark.slow
def test_svhn_order_matches_tensorflow_datasets_itself(rng, tmp_path):
    """Run tfds's own svhn_cropped builder (its example generator, shuffler and writer) on
    the same small .mat files, fetched from the local server, and compare the order."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.datasets.svhn_cropped import svhn_cropped_dataset_builder as svhn

    train, _, _ = svhn_mat(rng, 40)
    test, _, _ = svhn_mat(rng, 9)
    files = {"train_32x32.mat": train, "test_32x32.mat": test}
    (tmp_path / "mats").mkdir()
    for name, body in files.items():
        (tmp_path / "mats" / name).write_bytes(body)

    with FileServer(files) as server:

        class LocalSvhn(svhn.Builder, skip_registration=True):
            # Only the URLs differ from svhn_cropped (and no 1.3 GB `extra` split): local,
            # unregistered URLs are not checked against svhn_cropped's real checksums.
            def _info(self):
                return tfds.core.DatasetInfo(
                    builder=self,
                    features=tfds.features.FeaturesDict(
                        {
                            "image": tfds.features.Image(shape=(32, 32, 3)),
                            "label": tfds.features.ClassLabel(num_classes=10),
                            "id": tfds.features.Text(),
                        }
                    ),
                    supervised_keys=("image", "label"),
                )

            def _split_generators(self, dl_manager):
                paths = dl_manager.download(
                    {split: f"{server.url}/{split}_32x32.mat" for split in ("train", "test")}
                )
                return [
                    tfds.core.SplitGenerator(
                        name=split, gen_kwargs={"split_prefix": f"{split}_", "filepath": path}
                    )
                    for split, path in paths.items()
                ]

        builder = LocalSvhn(data_dir=str(tmp_path / "tfds"))
        builder.download_and_prepare(download_dir=str(tmp_path / "downloads"))
    for split in ("train", "test"):
        images, labels = tfds.as_numpy(
            builder.as_dataset(split=split, batch_size=-1, as_supervised=True)
        )
        ours_images, ours_labels = downloads.read_svhn_split(
            tmp_path / "mats" / f"{split}_32x32.mat", split
        )
        np.testing.assert_array_equal(images, ours_images)
        np.testing.assert_array_equal(labels, ours_labels)
