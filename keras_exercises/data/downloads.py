"""Download the datasets' canonical files and read them the way the standard loaders do.

Why not `keras.datasets.*.load_data()` and `tfds.load` directly: Keras's `get_file` has no
timeout, keeps a file whose checksum failed in its cache, and cannot be pointed at a
mirror; `tfds.load("svhn_cropped")` also downloads the 1.3 GB `extra` split that no
exercise uses. So the files are fetched here (bounded retries, a timeout, SHA-256 checked
before anything lands in the cache) and parsed exactly as those loaders parse them,
including the order tensorflow-datasets gives SVHN (a test checks it against tfds itself).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_exercises.data.datasets import Arrays, check_arrays
from keras_exercises.runtime.atomic import atomic_path
from keras_exercises.runtime.errors import PipelineError
from keras_exercises.runtime.progress import progress


@dataclass(frozen=True)
class RemoteFile:
    name: str
    origin: str  # official folder URL, ending in "/"
    sha256: str


# Hashes as Keras (mnist.py, cifar10.py) and tensorflow-datasets (svhn_cropped
# checksums.tsv) pin them.
FILES = {
    "mnist": [
        RemoteFile(
            "mnist.npz",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
            "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
        )
    ],
    "cifar10": [
        RemoteFile(
            "cifar-10-python.tar.gz",
            "https://www.cs.toronto.edu/~kriz/",
            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        )
    ],
    "svhn_cropped": [
        RemoteFile(
            "train_32x32.mat",
            "http://ufldl.stanford.edu/housenumbers/",
            "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8",
        ),
        RemoteFile(
            "test_32x32.mat",
            "http://ufldl.stanford.edu/housenumbers/",
            "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b",
        ),
    ],
}


def cache_dir() -> Path:
    """Keras's own dataset cache, so a file Keras already downloaded is reused."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_file(
    remote: RemoteFile, base_url: str | None, timeout: float, attempts: int, pause: float = 1.0
) -> Path:
    """The verified file in the cache; downloaded (atomically) only when not there yet."""
    target = cache_dir() / remote.name
    if target.is_file() and sha256_of(target) == remote.sha256:
        return target
    url = (base_url.rstrip("/") + "/" if base_url else remote.origin) + remote.name
    problem = None
    for attempt in range(1, attempts + 1):
        try:
            with atomic_path(target) as tmp:
                with (
                    urllib.request.urlopen(url, timeout=timeout) as response,
                    open(tmp, "wb") as out,
                    progress(f"download {remote.name}", response.length, unit="B") as advance,
                ):
                    while block := response.read(1 << 20):
                        out.write(block)
                        advance(len(block))
                got = sha256_of(tmp)
                if got != remote.sha256:
                    # not retried: the server has the wrong file, asking again won't help
                    raise PipelineError(
                        f"{url} sent a file whose SHA-256 is {got}, not the expected "
                        f"{remote.sha256}; it was discarded. Check data.download_url, or set "
                        "data.mirror to a directory of verified .npz files."
                    )
            return target
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code} {exc.reason}"
            if exc.code < 500:  # a missing file stays missing
                break
        except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out
            problem = str(getattr(exc, "reason", exc)) or type(exc).__name__
        if attempt < attempts:
            time.sleep(pause * attempt)
    raise PipelineError(
        f"could not download {url} ({problem}; {attempts} attempt(s), {timeout:g} s timeout "
        "each). Without internet, put <dataset>.npz files (uint8 x_train, y_train, x_test, "
        "y_test) in a directory and set data.mirror in params.yaml to it; see docs/data.md."
    )


def read_mnist(path: Path) -> tuple:
    with np.load(path, allow_pickle=False) as f:
        return f["x_train"], f["y_train"], f["x_test"], f["y_test"]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR-10's batches are pickles; allow only what rebuilds NumPy arrays."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        return super().find_class(module, name)


def read_cifar10(path: Path) -> tuple:
    """As keras.datasets.cifar10: data_batch_1..5 then test_batch, channels last."""

    def batch(tar: tarfile.TarFile, member: str):
        raw = tar.extractfile(f"cifar-10-batches-py/{member}").read()
        d = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
        images = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return images.transpose(0, 2, 3, 1), np.asarray(d[b"labels"], dtype=np.uint8)

    with tarfile.open(path, "r:gz") as tar:
        train = [batch(tar, f"data_batch_{i}") for i in range(1, 6)]
        x_test, y_test = batch(tar, "test_batch")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test


def tfds_order(split: str, count: int) -> np.ndarray:
    """The order tensorflow-datasets writes a split in: by MD5(split name + example key).

    tfds's Shuffler sorts examples by `hashing.Hasher(salt=split).hash_key(key)`, and the
    svhn_cropped builder keys example i of the .mat file by i.
    """
    salt = hashlib.md5(split.encode())

    def key(i: int) -> int:
        digest = salt.copy()
        digest.update(str(i).encode())
        return int(digest.hexdigest(), 16)

    return np.array(sorted(range(count), key=key), dtype=np.int64)


def read_svhn_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """As tfds svhn_cropped: images (N, 32, 32, 3), label 10 means digit 0, tfds order."""
    from scipy.io import loadmat

    mat = loadmat(path)
    images = np.moveaxis(mat["X"], -1, 0).astype(np.uint8)
    labels = (mat["y"].reshape(-1) % 10).astype(np.uint8)
    order = tfds_order(split, len(labels))
    return images[order], labels[order]


def download(dataset: str, base_url: str | None, timeout: float, attempts: int) -> tuple:
    """(x_train, y_train, x_test, y_test) as the standard loader returns them."""
    paths = [fetch_file(remote, base_url, timeout, attempts) for remote in FILES[dataset]]
    try:
        if dataset == "mnist":
            return read_mnist(paths[0])
        if dataset == "cifar10":
            return read_cifar10(paths[0])
        return (*read_svhn_split(paths[0], "train"), *read_svhn_split(paths[1], "test"))
    except (OSError, ValueError, KeyError, EOFError, tarfile.TarError, pickle.UnpicklingError) as e:
        raise PipelineError(
            f"the downloaded {dataset} files in {cache_dir()} could not be read ({e}); delete "
            "them and rerun to download again."
        ) from None


def download_arrays(dataset: str, base_url: str | None, timeout: float, attempts: int) -> Arrays:
    """The standard loaders' samples, in their order (what "first N" refers to), checked."""
    x_train, y_train, x_test, y_test = download(dataset, base_url, timeout, attempts)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return check_arrays(arrays, dataset, f"the {dataset} download")
