"""Tests of ``mlp.data``: verification of every file, local folders, the shipped MNIST, the cache,
downloads, per-split loading and bounded memory on hostile files.

Bad files are fed through the public loader: a small dataset ``tiny`` (20 + 10 images) is added
to the table for a test, and downloads go to a real HTTP server on the loopback interface, so no
test needs the internet. The real MNIST comes from the copy shipped inside the package (and from
``MLP_DATA_DIR`` too, when it is set).
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import importlib.resources
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from cli_support import clean_env, write_real_mnist_raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlp import data
from mlp.errors import DataError, MLPError

#: Read before the autouse fixture below clears it for every test.
REAL_DATA_DIR = os.environ.get("MLP_DATA_DIR")

FILES = {role: name + ".gz" for role, name in data.FILES.items()}
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --------------------------------------------------------------------------- helpers


def idx_bytes(a: np.ndarray, *, code: int = 0x08, dims: tuple[int, ...] | None = None) -> bytes:
    """``a`` as an IDX file (optionally with a forged type code or dimensions)."""
    a = np.asarray(a)
    dims = a.shape if dims is None else dims
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + a.tobytes()


def gz(raw: bytes, level: int = 9) -> bytes:
    return gzip.compress(raw, compresslevel=level, mtime=0)


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@dataclass
class Small:
    """A tiny MNIST-shaped dataset: its arrays, its raw IDX bytes and its spec."""

    arrays: dict[str, np.ndarray]
    raw: dict[str, bytes]
    spec: data.DatasetSpec

    @property
    def files(self) -> dict[str, bytes]:
        """File name -> gzipped bytes."""
        return {FILES[role]: gz(b) for role, b in self.raw.items()}

    def write_to(self, folder: Path, *, compressed: bool = True) -> Path:
        for role, b in self.raw.items():
            name = FILES[role] if compressed else data.FILES[role]
            write(folder / name, gz(b) if compressed else b)
        return folder


def make_small(name: str = "tiny", n_train: int = 20, n_test: int = 10, seed: int = 0) -> Small:
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": np.arange(n_train, dtype=np.uint8) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw = {role: idx_bytes(a) for role, a in arrays.items()}
    spec = data.DatasetSpec(name=name, url="http://127.0.0.1:9/unused/", n_train=n_train,
                            n_test=n_test, sha256={r: sha256(b) for r, b in raw.items()})
    return Small(arrays=arrays, raw=raw, spec=spec)


def check_loaded(ds: data.Dataset, small: Small, splits: tuple[str, ...] = ("train", "test")
                 ) -> None:
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        assert x.dtype == np.uint8 and x.flags.c_contiguous and x.flags.writeable
        assert y.dtype == np.int64
        if split not in splits:
            assert x.shape == (0, 784) and y.shape == (0,)
            continue
        images, labels = small.arrays[f"{split}_images"], small.arrays[f"{split}_labels"]
        np.testing.assert_array_equal(x, images.reshape(len(images), 784))
        np.testing.assert_array_equal(y, labels)
    assert ds.num_features == 784 and ds.num_classes == 10


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the caller's data settings or proxies (the server is on loopback)."""
    for var in ("MLP_DATA_DIR", "MLP_CACHE_DIR", "MLP_DATA_URL", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    for var in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> Small:
    """A small dataset in the loader's table under the name ``tiny`` for one test."""
    s = make_small()
    monkeypatch.setitem(data.DATASETS, "tiny", s.spec)
    return s


def load_with(tmp_path: Path, small: Small, role: str, content: bytes, **kwargs: object
              ) -> data.Dataset:
    """Load ``tiny`` from a folder where the file of ``role`` holds ``content`` (as given)."""
    folder = small.write_to(tmp_path / "d")
    (folder / FILES[role]).unlink()
    write(folder / FILES[role], content)
    return data.load("tiny", folder, **kwargs)  # type: ignore[arg-type]


class Server:
    """An HTTP server on 127.0.0.1 serving ``files`` by name; ``requests`` logs each GET."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                server.requests.append(self.path)
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def gets(self, name: str | None = None) -> int:
        return sum(1 for p in self.requests if name is None or p.endswith("/" + name))


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    s.thread.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()
        s.thread.join(5)


def stray_files(folder: Path, expected: set[str]) -> set[str]:
    return {p.name for p in folder.iterdir()} - expected if folder.exists() else set()


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"ends inside the 4-byte magic number \(0 of 4"),
        (b"\0\0", r"ends inside the 4-byte magic number \(2 of 4"),
        (b"hello, world\n", "not an IDX file: it starts with bytes 68 65 6c 6c"),
        (b"PK\x03\x04" + bytes(40), "not an IDX file"),
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]), "unknown IDX type code 0x07"),
        (bytes([0, 0, 0x08, 2, 0, 0, 0, 1]), r"ends inside the dimension sizes \(4 of 8"),
        (bytes([0, 0, 0x08, 200]) + bytes(800), "absurd IDX header: 200 dimensions"),
    ],
    ids=["empty", "short", "text", "zip", "type-code", "short-dims", "ndim"],
)
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
def test_bad_header(tmp_path: Path, small: Small, content: bytes, message: str,
                    compressed: bool) -> None:
    with pytest.raises(DataError, match=message) as info:
        load_with(tmp_path, small, "train_images", gz(content) if compressed else content)
    assert str(tmp_path / "d" / FILES["train_images"]) in str(info.value)


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
def test_truncated_data(tmp_path: Path, small: Small, compressed: bool) -> None:
    raw = small.raw["train_images"][:-5]
    with pytest.raises(DataError, match=r"truncated IDX data: the header declares shape \(20, 28"):
        load_with(tmp_path, small, "train_images", gz(raw) if compressed else raw)


def test_trailing_bytes(tmp_path: Path, small: Small) -> None:
    raw = small.raw["test_labels"] + b"\x01\x02\x03"
    with pytest.raises(DataError, match="3 trailing bytes after the IDX data"):
        load_with(tmp_path, small, "test_labels", raw)
    # Compressed, the tail is not inflated to count it: one byte more tells.
    with pytest.raises(DataError, match="trailing bytes after the IDX data"):
        load_with(tmp_path, small, "test_labels", gz(raw))


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
def test_declared_size_is_checked_before_reading(tmp_path: Path, small: Small,
                                                 compressed: bool) -> None:
    raw = idx_bytes(np.zeros(64, np.uint8), dims=(2**32 - 1, 28, 28))
    with pytest.raises(DataError, match="holds 4294967295 images, tiny has 20 in this split"):
        load_with(tmp_path, small, "train_images", gz(raw) if compressed else raw)


def test_gzip_members_and_padding(tmp_path: Path, small: Small) -> None:
    raw = small.raw["train_images"]
    check_loaded(load_with(tmp_path, small, "train_images", gz(raw[:1001]) + gz(raw[1001:])),
                 small)
    check_loaded(load_with(tmp_path, small, "train_images", gz(raw) + b"\0" * 9), small)
    with pytest.raises(DataError, match="unexpected bytes after the compressed data"):
        load_with(tmp_path, small, "train_images", gz(raw) + b"junk")


def test_corrupted_gzip_crc(tmp_path: Path, small: Small) -> None:
    blob = bytearray(gz(small.raw["test_labels"]))
    blob[-8] ^= 0xFF  # the CRC-32 of the trailer
    with pytest.raises(DataError, match="CRC check of the decompressed data failed"):
        load_with(tmp_path, small, "test_labels", bytes(blob))


def test_corrupted_gzip_stream(tmp_path: Path, small: Small) -> None:
    blob = bytearray(gz(small.raw["train_images"], level=1))
    for i in range(len(blob) // 2, len(blob) // 2 + 20):  # past the header
        blob[i] ^= 0x5A
    with pytest.raises(DataError, match="corrupted gzip file"):
        load_with(tmp_path, small, "train_images", bytes(blob))


@pytest.mark.parametrize("keep", [3, 10, 0.5, -4], ids=["magic", "header", "half", "trailer"])
def test_truncated_gzip(tmp_path: Path, small: Small, keep: float) -> None:
    blob = gz(small.raw["train_images"])
    cut = blob[: int(len(blob) * keep)] if isinstance(keep, float) else blob[:keep]
    with pytest.raises(DataError, match="truncated gzip file"):
        load_with(tmp_path, small, "train_images", cut)


def test_structure_against_the_dataset(tmp_path: Path, small: Small) -> None:
    with pytest.raises(DataError, match=r"not an IDX labels file.*2049.*found uint8 with 3.*2051"):
        load_with(tmp_path, small, "test_labels", small.raw["test_images"])
    with pytest.raises(DataError, match=r"not an IDX images file.*found int32"):
        load_with(tmp_path, small, "test_images",
                  idx_bytes(np.zeros((10, 28, 28), ">i4"), code=0x0C))
    with pytest.raises(DataError, match="images are 27x28, tiny images are 28x28"):
        load_with(tmp_path, small, "test_images", idx_bytes(np.zeros((10, 27, 28), np.uint8)))
    with pytest.raises(DataError, match="holds 19 labels, tiny has 20 in this split"):
        load_with(tmp_path, small, "train_labels", idx_bytes(small.arrays["train_labels"][:-1]))


def test_label_out_of_range(tmp_path: Path, small: Small) -> None:
    labels = small.arrays["test_labels"].copy()
    labels[7] = 10
    with pytest.raises(DataError, match=r"label 10 out of range \(first bad label at index 7\)"):
        load_with(tmp_path, small, "test_labels", idx_bytes(labels), verify=False)


def test_missing_file_folder_fifo(tmp_path: Path, small: Small) -> None:
    folder = small.write_to(tmp_path / "d")
    target = folder / FILES["train_images"]
    target.unlink()
    target.mkdir()
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: is a folder"):
        data.load("tiny", folder)
    target.rmdir()
    os.mkfifo(target)  # nobody writes to it: opening it must not wait for a writer
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: is not a regular file"):
        data.load("tiny", folder)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads all")
def test_unreadable_file(tmp_path: Path, small: Small) -> None:
    folder = small.write_to(tmp_path / "d")
    (folder / FILES["test_images"]).chmod(0)
    with pytest.raises(DataError, match="cannot open"):
        data.load("tiny", folder)


def test_data_error_is_an_mlp_error() -> None:
    assert issubclass(DataError, MLPError)


def _check_fuzz(tmp_path: Path, small: Small, content: bytes) -> data.Dataset | None:
    try:
        return load_with(tmp_path, small, "train_labels", content, verify=False)
    except DataError as exc:
        assert str(tmp_path / "d" / FILES["train_labels"]) in str(exc)
        return None


@FUZZ
@given(blob=st.binary(max_size=600), prefix=st.sampled_from([b"", b"\0\0", b"\x1f\x8b\x08"]))
def test_fuzz_random_bytes(tmp_path: Path, small: Small, blob: bytes, prefix: bytes) -> None:
    _check_fuzz(tmp_path, small, prefix + blob)


@FUZZ
@given(
    compressed=st.booleans(),
    mutate_after_gzip=st.booleans(),
    edits=st.lists(
        st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]),
                  st.integers(0, 10_000), st.integers(0, 255)),
        max_size=4,
    ),
)
def test_fuzz_mutated_file(tmp_path: Path, small: Small, compressed: bool,
                           mutate_after_gzip: bool, edits: list[tuple[str, int, int]]) -> None:
    raw = small.raw["train_labels"]

    def mutate(b: bytes) -> bytes:
        buf = bytearray(b)
        for op, pos, value in edits:
            i = pos % (len(buf) + 1)
            if op == "flip" and i < len(buf):
                buf[i] ^= 1 << (value % 8)
            elif op == "set" and i < len(buf):
                buf[i] = value
            elif op == "insert":
                buf[i:i] = bytes([value])
            elif op == "delete":
                del buf[i : i + 1 + value % 4]
            elif op == "truncate":
                del buf[i:]
            elif op == "append":
                buf += bytes([value]) * (1 + value % 7)
        return bytes(buf)

    if compressed and mutate_after_gzip:
        content = mutate(gz(raw))
    elif compressed:
        content = gz(mutate(raw))
    else:
        content = mutate(raw)
    out = _check_fuzz(tmp_path, small, content)
    if not edits:
        assert out is not None
        check_loaded(out, small)


# --------------------------------------------------------------------------- the table


def test_datasets_table() -> None:
    assert tuple(data.DATASETS) == ("mnist", "fashion-mnist")
    for spec in data.DATASETS.values():
        assert (spec.n_train, spec.n_test, spec.image_shape) == (60000, 10000, (28, 28))
        assert len(spec.class_names) == 10 and set(spec.sha256) == set(data.FILES)
    assert data.DATASETS["fashion-mnist"].class_names[9] == "Ankle boot"
    assert data.DATASETS["mnist"].embedded and not data.DATASETS["fashion-mnist"].embedded


def test_unknown_dataset_and_split() -> None:
    with pytest.raises(DataError, match="unknown dataset 'cifar10'; choose one of: mnist, fash"):
        data.load("cifar10")
    with pytest.raises(DataError, match="unknown split 'valid'"):
        data.load("mnist", split="valid")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- local folders


@pytest.mark.parametrize("compressed", [True, False], ids=["gz", "raw"])
def test_load_from_data_dir(tmp_path: Path, small: Small, compressed: bool) -> None:
    folder = small.write_to(tmp_path / "d", compressed=compressed)
    ds = data.load("tiny", folder)
    check_loaded(ds, small)
    assert ds.name == "tiny"
    assert repr(ds) == "Dataset(name='tiny', train=20, test=10, features=784, classes=10)"


def test_load_from_env_data_dir_and_subfolder(
    tmp_path: Path, small: Small, monkeypatch: pytest.MonkeyPatch
) -> None:
    small.write_to(tmp_path / "root" / "tiny")
    monkeypatch.setenv("MLP_DATA_DIR", str(tmp_path / "root"))
    check_loaded(data.load("tiny"), small)
    check_loaded(data.load("tiny", tmp_path / "root" / "tiny"), small)


def test_split_reads_only_its_files(tmp_path: Path, small: Small) -> None:
    folder = small.write_to(tmp_path / "d")
    (folder / FILES["train_images"]).unlink()
    (folder / FILES["train_labels"]).write_bytes(b"not read")
    ds = data.load("tiny", folder, split="test")
    check_loaded(ds, small, splits=("test",))
    assert repr(ds) == "Dataset(name='tiny', train=0, test=10, features=784, classes=10)"
    small.write_to(folder)
    (folder / FILES["test_images"]).unlink()
    check_loaded(data.load("tiny", folder, split="train"), small, splits=("train",))


def test_data_dir_missing_file_is_an_error_and_nothing_downloads(
    tmp_path: Path, small: Small, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = small.write_to(tmp_path / "d")
    (folder / FILES["test_labels"]).unlink()
    server.files = dict(small.files)
    with pytest.raises(DataError) as info:
        data.load("tiny", folder, base_url=server.url, cache_dir=tmp_path / "cache")
    msg = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz (or t10k-labels-idx1-ubyte) not found" in msg
    assert f"{folder} (--data-dir)" in msg and "leave --data-dir and MLP_DATA_DIR unset" in msg
    assert "data_dir" not in msg.replace(str(folder), "")  # a Python name, not an option
    assert server.requests == [] and not (tmp_path / "cache").exists()
    with pytest.raises(DataError, match=r"nowhere \(--data-dir\) does not exist"):
        data.load("tiny", tmp_path / "nowhere")
    monkeypatch.setenv("MLP_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"nowhere \(MLP_DATA_DIR\) does not exist"):
        data.load("tiny")


def test_local_hash_mismatch_keeps_the_users_file(tmp_path: Path, small: Small) -> None:
    images = small.arrays["train_images"].copy()
    images[3, 4, 5] ^= 1
    with pytest.raises(DataError) as info:
        load_with(tmp_path, small, "train_images", gz(idx_bytes(images)))
    bad = tmp_path / "d" / FILES["train_images"]
    msg = str(info.value)
    assert str(bad) in msg and "hash mismatch" in msg
    assert sha256(idx_bytes(images)) in msg and small.spec.sha256["train_images"] in msg
    assert bad.exists()
    ds = data.load("tiny", tmp_path / "d", verify=False)
    np.testing.assert_array_equal(ds.x_train[3].reshape(28, 28), images[3])


def test_recompressed_and_raw_copies_pass(tmp_path: Path, small: Small) -> None:
    folder = small.write_to(tmp_path / "d")
    write(folder / FILES["train_labels"], gz(small.raw["train_labels"], level=1))
    (folder / FILES["test_images"]).unlink()
    write(folder / data.FILES["test_images"], small.raw["test_images"])
    check_loaded(data.load("tiny", folder), small)


def test_raw_fashion_mnist_files_are_content_checked(tmp_path: Path) -> None:
    """Raw files have no published compressed hash to lean on: their content is hashed too."""
    rng = np.random.default_rng(3)
    for role, name in data.FILES.items():
        n = 60000 if role.startswith("train") else 10000
        shape = (n, 28, 28) if role.endswith("images") else (n,)
        array = rng.integers(0, 10, shape, dtype=np.uint8)
        write(tmp_path / "fashion" / name, idx_bytes(array))
    with pytest.raises(DataError) as info:
        data.load("fashion-mnist", tmp_path / "fashion")
    assert "train-images-idx3-ubyte: hash mismatch" in str(info.value)
    assert data.DATASETS["fashion-mnist"].sha256["train_images"] in str(info.value)


# --------------------------------------------------------------------------- cache & download


def test_download_then_cache_hit(tmp_path: Path, small: Small, server: Server) -> None:
    server.files = dict(small.files)
    cache = tmp_path / "cache"
    check_loaded(data.load("tiny", cache_dir=cache, base_url=server.url), small)
    assert server.gets() == 4
    assert {p.name for p in (cache / "tiny").iterdir()} == set(FILES.values())
    assert data.cache_path("tiny", cache) == cache / "tiny"
    check_loaded(data.load("tiny", cache_dir=cache, base_url=server.url), small)
    check_loaded(data.load("tiny", cache_dir=cache, download=False), small)
    assert server.gets() == 4  # served from the cache, the server not contacted again


def test_download_uses_env_url_and_cache(
    tmp_path: Path, small: Small, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.files = {f"mirror/tiny/{k}": v for k, v in small.files.items()}
    monkeypatch.setenv("MLP_DATA_URL", server.url + "mirror/{name}")
    monkeypatch.setenv("MLP_CACHE_DIR", str(tmp_path / "envcache"))
    check_loaded(data.load("tiny", progress=True, split="test"), small, splits=("test",))
    assert server.gets() == 2 and len(list((tmp_path / "envcache" / "tiny").iterdir())) == 2


def test_download_hash_mismatch_leaves_nothing(
    tmp_path: Path, small: Small, server: Server
) -> None:
    images = small.arrays["test_images"].copy()
    images[0, 0, 0] ^= 0xFF
    served = idx_bytes(images)
    server.files = dict(small.files) | {FILES["test_images"]: gz(served)}
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        data.load("tiny", cache_dir=cache, base_url=server.url)
    msg = str(info.value)
    assert "t10k-images-idx3-ubyte.gz downloaded from" in msg and "hash mismatch" in msg
    assert f"expected {small.spec.sha256['test_images']}" in msg
    assert sha256(served) in msg and "nothing was saved" in msg
    assert not (cache / "tiny" / FILES["test_images"]).exists()
    # The files before it were good and stay; no temporary file is left behind.
    assert stray_files(cache / "tiny", {FILES["train_images"], FILES["train_labels"]}) == set()


def test_download_truncated_gzip_is_discarded(
    tmp_path: Path, small: Small, server: Server
) -> None:
    blob = small.files[FILES["train_images"]]
    server.files = dict(small.files) | {FILES["train_images"]: blob[: len(blob) // 2]}
    with pytest.raises(DataError, match="truncated gzip file"):
        data.load("tiny", cache_dir=tmp_path / "c", base_url=server.url)
    assert not (tmp_path / "c").exists()  # no empty cache folder left behind


def test_download_404_says_what_to_do(tmp_path: Path, small: Small, server: Server) -> None:
    server.files = {k: v for k, v in small.files.items() if "t10k-labels" not in k}
    with pytest.raises(DataError) as info:
        data.load("tiny", cache_dir=tmp_path / "c", base_url=server.url)
    msg = str(info.value)
    assert "could not download t10k-labels-idx1-ubyte.gz" in msg and "404" in msg
    assert server.url + "t10k-labels-idx1-ubyte.gz" in msg
    assert f"put the tiny files in {tmp_path / 'c' / 'tiny'}" in msg
    assert "--data-dir" in msg and "MLP_DATA_DIR" in msg
    assert stray_files(tmp_path / "c" / "tiny", set(FILES.values()) - {FILES["test_labels"]}) \
        == set()


def test_download_connection_refused_leaves_no_folder(tmp_path: Path, small: Small) -> None:
    cache = tmp_path / "new" / "cache"
    # The port stays bound, and never listens, for the whole call: no other process can take
    # it in between, and a connection to it is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(DataError, match="could not download train-images"):
            data.load("tiny", cache_dir=cache, base_url=f"http://127.0.0.1:{port}/")
    assert list(tmp_path.iterdir()) == []


def test_no_download_when_disabled(tmp_path: Path, small: Small, server: Server) -> None:
    server.files = dict(small.files)
    with pytest.raises(DataError) as info:
        data.load("tiny", cache_dir=tmp_path / "c", base_url=server.url, download=False)
    assert "not in the cache" in str(info.value) and "downloading is off" in str(info.value)
    assert "--data-dir or MLP_DATA_DIR" in str(info.value)
    assert server.requests == []


def test_bad_cached_file_is_removed_and_downloaded_again(
    tmp_path: Path, small: Small, server: Server
) -> None:
    server.files = dict(small.files)
    cache = tmp_path / "cache"
    data.load("tiny", cache_dir=cache, base_url=server.url)
    cached = cache / "tiny" / FILES["train_labels"]
    blob = cached.read_bytes()
    cached.write_bytes(blob[:-3])  # damaged on disk
    check_loaded(data.load("tiny", cache_dir=cache, base_url=server.url), small)
    assert server.gets(FILES["train_labels"]) == 2 and server.gets() == 5
    assert cached.read_bytes() == blob
    cached.write_bytes(blob[:-3])
    with pytest.raises(DataError, match="removed it from the cache"):
        data.load("tiny", cache_dir=cache, download=False)
    assert not cached.exists()


def test_cli_download_failure_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    env = clean_env(tmp_path)  # an empty cache and a download URL that cannot work
    result = subprocess.run(
        [sys.executable, "-m", "mlp", "train", "--dataset", "fashion-mnist", "--epochs", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    cache = Path(env["MLP_CACHE_DIR"]) / "fashion-mnist"
    assert "could not download train-images-idx3-ubyte.gz" in lines[0]
    assert f"put the fashion-mnist files in {cache}" in lines[0]
    assert "--data-dir" in lines[0] and "MLP_DATA_DIR" in lines[0]
    assert not Path(env["MLP_CACHE_DIR"]).exists()


# --------------------------------------------------------------------------- the real MNIST


def check_real_mnist(ds: data.Dataset) -> None:
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.flags.c_contiguous
    assert ds.y_train.dtype == np.int64 and ds.y_train.shape == (60000,)
    assert ds.y_train.min() == 0 and ds.y_train.max() == 9 and ds.x_train.max() == 255
    assert ds.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert ds.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(ds.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(ds.y_test).tolist() == MNIST_TEST_COUNTS


def test_shipped_mnist_needs_no_folder_cache_or_network(tmp_path: Path) -> None:
    ds = data.load("mnist", cache_dir=tmp_path / "cache", base_url="http://127.0.0.1:9/")
    check_real_mnist(ds)
    assert not (tmp_path / "cache").exists()
    test_only = data.load("mnist", split="test")
    np.testing.assert_array_equal(test_only.x_test, ds.x_test)
    assert test_only.x_train.shape == (0, 784)


def test_installed_package_ships_mnist_and_its_notice() -> None:
    folder = importlib.resources.files("mlp") / "mnist"
    names = {p.name for p in folder.iterdir()}
    assert {name for name in FILES.values()} | {"NOTICE"} <= names
    notice = (folder / "NOTICE").read_text()
    for words in ("Yann LeCun", "Corinna Cortes", "Christopher J.C. Burges", "CC BY-SA 3.0"):
        assert words in notice
    for role, name in FILES.items():
        content = gzip.decompress((folder / name).read_bytes())
        assert sha256(content) == data.DATASETS["mnist"].sha256[role]
    assert data.embedded_path("mnist") == Path(str(folder))
    assert data.embedded_path("fashion-mnist") is None


def test_real_mnist_raw_from_a_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Decompressed files verify too; and ``MLP_DATA_DIR`` is used when the caller set it."""
    folder = write_real_mnist_raw(tmp_path_factory.getbasetemp() / "mnist-raw")
    check_real_mnist(data.load("mnist", folder))
    if REAL_DATA_DIR:
        check_real_mnist(data.load("mnist", REAL_DATA_DIR))


def test_real_mnist_is_not_fashion_mnist() -> None:
    shipped = data.embedded_path("mnist")
    assert shipped is not None
    with pytest.raises(DataError, match="this is the mnist file, not the fashion-mnist one"):
        data.load("fashion-mnist", shipped)


def test_shipped_copy_damaged_says_reinstall(tmp_path: Path, small: Small,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    small.write_to(tmp_path / "tiny")
    write(tmp_path / "tiny" / FILES["test_labels"], gz(small.raw["test_labels"])[:-4])
    monkeypatch.setitem(data.DATASETS, "tiny", replace(small.spec, embedded=True))
    monkeypatch.setattr(data, "__file__", str(tmp_path / "data.py"))
    with pytest.raises(DataError, match="truncated gzip file.*shipped with the package is "
                                        "damaged: reinstall array-api-mlp"):
        data.load("tiny", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------- bounded memory


MEASURE = """
import json, resource, sys
from mlp import data
from mlp.errors import DataError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    data.load("mnist", sys.argv[1], split="train")
    message = None
except DataError as exc:
    message = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"kib": after - before, "message": message}))
"""


def _gzip_zeros(path: Path, head: bytes, nbytes: int) -> None:
    """A gzip file of ``head`` and ``nbytes`` zero bytes, compressed in a stream."""
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    with open(path, "wb") as f:
        f.write(z.compress(head))
        for _ in range(nbytes >> 20):
            f.write(z.compress(chunk))
        f.write(z.flush())


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Training-image files of about 1 GB of content each, the labels file beside them good."""
    base = tmp_path_factory.mktemp("hostile")
    labels = (data.embedded_path("mnist") / FILES["train_labels"]).read_bytes()  # type: ignore
    folders = {}
    for case in ("huge-header", "huge-tail", "sparse-raw"):
        folder = base / case
        folder.mkdir()
        (folder / FILES["train_labels"]).write_bytes(labels)
        folders[case] = folder
    gib = 1 << 30
    _gzip_zeros(folders["huge-header"] / FILES["train_images"],
                idx_bytes(np.zeros(0, np.uint8), dims=(gib // 784, 28, 28)), gib)
    _gzip_zeros(folders["huge-tail"] / FILES["train_images"],
                idx_bytes(np.zeros(0, np.uint8), dims=(60000, 28, 28)), gib)
    with open(folders["sparse-raw"] / data.FILES["train_images"], "wb") as f:
        f.write(idx_bytes(np.zeros(0, np.uint8), dims=(60000, 28, 28)))
        f.truncate(gib)
    return folders


@pytest.mark.parametrize(("case", "message"), [
    ("huge-header", "holds 1369568 images, mnist has 60000 in this split"),
    ("huge-tail", "trailing bytes after the IDX data"),
    ("sparse-raw", "trailing bytes after the IDX data"),
])
def test_peak_memory_on_hostile_files(hostile: dict[str, Path], case: str, message: str) -> None:
    """Refused with at most 200 MB above the baseline: a 1 GB header is refused before
    anything is inflated, and at most one byte past the expected content is ever read."""
    result = subprocess.run([sys.executable, "-c", MEASURE, str(hostile[case])],
                            capture_output=True, text=True, timeout=120, check=True)
    out = json.loads(result.stdout)
    assert out["message"] is not None and message in out["message"], out
    assert out["kib"] <= 200 * 1024, out
