"""A real HTTP server on 127.0.0.1 serving small files in the datasets' canonical formats."""

from __future__ import annotations

import io
import pickle
import tarfile
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from scipy.io import savemat


class FileServer:
    """Serves `files` by name; `failures[name]` answers 503 that many times first;
    `delay` seconds of silence before answering. Also works as an HTTP proxy
    (requests for http://any-host/.../name are served by name)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.failures: Counter = Counter()
        self.delay = 0.0
        self.hits: Counter = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = urllib.parse.urlparse(self.path).path.rsplit("/", 1)[-1]
                server.hits[name] += 1
                time.sleep(server.delay)
                if server.failures[name] > 0:
                    server.failures[name] -= 1
                    self.send_error(503)
                    return
                if name not in server.files:
                    self.send_error(404)
                    return
                body = server.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def images(rng, n: int, shape: tuple) -> np.ndarray:
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def mnist_npz(rng) -> tuple[bytes, dict]:
    """Keras's mnist.npz layout."""
    arrays = {
        "x_train": images(rng, 12, (28, 28)),
        "y_train": rng.integers(0, 10, 12).astype(np.uint8),
        "x_test": images(rng, 6, (28, 28)),
        "y_test": rng.integers(0, 10, 6).astype(np.uint8),
    }
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    return out.getvalue(), arrays


def cifar10_tar_gz(rng, per_batch: int = 3) -> tuple[bytes, dict]:
    """cifar-10-python.tar.gz: pickled dicts with bytes keys, rows of 3072 in CHW order."""
    out, batches = io.BytesIO(), {}
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for member in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data = images(rng, per_batch, (3072,))
            labels = [int(v) for v in rng.integers(0, 10, per_batch)]
            batches[member] = (data, labels)
            payload = pickle.dumps(
                {
                    b"batch_label": member.encode(),
                    b"labels": labels,
                    b"data": data,
                    b"filenames": [b"x.png"] * per_batch,
                },
                # The originals are Python 2 protocol-2 pickles whose str payloads load as
                # bytes; Python 3 can only write that as protocol 2 through _codecs.encode,
                # which the NumPy-only unpickler (like Keras's) refuses. Protocol 3 gives the
                # same objects with native bytes.
                protocol=3,
            )
            info = tarfile.TarInfo(f"cifar-10-batches-py/{member}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return out.getvalue(), batches


def svhn_mat(rng, n: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The cropped-digits .mat layout: X (32, 32, 3, N), y (N, 1) with 10 for digit 0."""
    x = images(rng, n, (32, 32, 3))
    y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)
    out = io.BytesIO()
    savemat(out, {"X": np.moveaxis(x, 0, -1), "y": y})
    return out.getvalue(), x, y.reshape(-1)
