"""Tests of ``mlp.data``: the IDX reader, verification, local folders, the cache and downloads.

Everything runs on small IDX files the tests write themselves, and downloads go to a real HTTP
server on the loopback interface, so no test needs the internet. One test loads the real MNIST
files from the folder in ``MLP_DATA_DIR`` (skipped when it is unset, failed when ``CI`` is set).
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlp import data
from mlp.errors import DataError, MLPError

#: Read before the autouse fixture below clears it for every test.
REAL_DATA_DIR = os.environ.get("MLP_DATA_DIR")

IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FUZZ = settings(
    max_examples=200,
    deadline=2000,  # ms per example: a hang or a huge allocation fails the test
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


# --------------------------------------------------------------------------- helpers


def idx_bytes(a: np.ndarray, *, code: int | None = None, dims: tuple[int, ...] | None = None
              ) -> bytes:
    """Encode ``a`` as an IDX file (optionally with a forged type code or dimensions)."""
    a = np.asarray(a)
    code = IDX_CODES[a.dtype] if code is None else code
    dims = a.shape if dims is None else dims
    header = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def gz(raw: bytes, level: int = 9) -> bytes:
    return gzip.compress(raw, compresslevel=level, mtime=0)


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def md5(b: bytes) -> str:
    return hashlib.md5(b, usedforsecurity=False).hexdigest()


def write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@dataclass
class Small:
    """A tiny MNIST-shaped dataset: its arrays, its IDX files (gzipped) and a spec for them."""

    arrays: dict[str, np.ndarray]
    raw: dict[str, bytes]  # role -> decompressed IDX bytes
    files: dict[str, bytes] = field(default_factory=dict)  # file name -> gzipped bytes
    spec: data.DatasetSpec | None = None

    def write_to(self, folder: Path, *, compressed: bool = True) -> Path:
        for role, fname in FILES.items():
            if compressed:
                write(folder / fname, self.files[fname])
            else:
                write(folder / fname.removesuffix(".gz"), self.raw[role])
        return folder


def make_small(name: str = "tiny", n_train: int = 20, n_test: int = 10, *, seed: int = 0,
               gz_md5: bool = False) -> Small:
    """A :class:`Small` dataset; its spec checks decompressed SHA-256 (or the .gz MD5s)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": np.arange(n_train, dtype=np.uint8) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw = {role: idx_bytes(a) for role, a in arrays.items()}
    files = {FILES[role]: gz(b) for role, b in raw.items()}
    dfiles = {
        role: data.DataFile(
            FILES[role],
            sha256=None if gz_md5 else sha256(raw[role]),
            gz_hash=f"md5:{md5(files[FILES[role]])}" if gz_md5 else None,
        )
        for role in FILES
    }
    spec = data.DatasetSpec(
        name=name, url="http://127.0.0.1:9/unused/", n_train=n_train, n_test=n_test, **dfiles
    )
    return Small(arrays=arrays, raw=raw, files=files, spec=spec)


def check_loaded(ds: data.Dataset, small: Small) -> None:
    n_train = small.arrays["train_images"].shape[0]
    n_test = small.arrays["test_images"].shape[0]
    assert ds.x_train.shape == (n_train, 784) and ds.x_test.shape == (n_test, 784)
    assert ds.y_train.shape == (n_train,) and ds.y_test.shape == (n_test,)
    for x in (ds.x_train, ds.x_test):
        assert x.dtype == np.uint8 and x.flags.c_contiguous and x.flags.writeable
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train, small.arrays["train_images"].reshape(n_train, -1))
    np.testing.assert_array_equal(ds.y_train, small.arrays["train_labels"])
    np.testing.assert_array_equal(ds.x_test, small.arrays["test_images"].reshape(n_test, -1))
    np.testing.assert_array_equal(ds.y_test, small.arrays["test_labels"])
    assert ds.num_features == 784 and ds.num_classes == 10


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the caller's data settings or proxies (the server is on loopback)."""
    for var in ("MLP_DATA_DIR", "MLP_CACHE_DIR", "MLP_DATA_URL", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    for var in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def small() -> Iterator[Small]:
    """A small dataset registered under the name ``tiny`` (removed afterwards)."""
    s = make_small()
    assert s.spec is not None
    data.register(s.spec)
    try:
        yield s
    finally:
        data.SPECS.pop(s.spec.name, None)


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


# --------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("dtype", list(IDX_CODES), ids=lambda d: d.name)
def test_read_idx_round_trip(tmp_path: Path, dtype: np.dtype, compressed: bool) -> None:
    a = (np.arange(2 * 3 * 4).reshape(2, 3, 4) - 7).astype(dtype)
    raw = idx_bytes(a)
    p = write(tmp_path / "f.idx", gz(raw) if compressed else raw)
    out = data.read_idx(p)
    assert out.dtype == dtype and out.dtype.isnative and out.shape == (2, 3, 4)
    assert out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(out, a)


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path: Path) -> None:
    a = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(data.read_idx(write(tmp_path / "x.idx", gz(idx_bytes(a)))), a)
    np.testing.assert_array_equal(data.read_idx(write(tmp_path / "y.gz", idx_bytes(a))), a)


def test_read_idx_shapes_zero_d_and_empty(tmp_path: Path) -> None:
    out = data.read_idx(write(tmp_path / "s", idx_bytes(np.array(3.5, dtype=np.float64))))
    assert out.shape == () and out == 3.5
    out = data.read_idx(write(tmp_path / "e", gz(idx_bytes(np.zeros((0, 28), np.uint8)))))
    assert out.shape == (0, 28)


def test_read_idx_gzip_members_and_padding(tmp_path: Path) -> None:
    a = np.arange(1000, dtype=np.int32)
    raw = idx_bytes(a)
    two_members = gz(raw[:1001]) + gz(raw[1001:])
    np.testing.assert_array_equal(data.read_idx(write(tmp_path / "m", two_members)), a)
    np.testing.assert_array_equal(data.read_idx(write(tmp_path / "p", gz(raw) + b"\0" * 9)), a)
    with pytest.raises(DataError, match="unexpected bytes after the compressed data"):
        data.read_idx(write(tmp_path / "g", gz(raw) + b"junk"))


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
def test_read_idx_bad_header(
    tmp_path: Path, content: bytes, message: str, compressed: bool
) -> None:
    p = write(tmp_path / "bad.gz", gz(content) if compressed else content)
    with pytest.raises(DataError, match=message) as info:
        data.read_idx(p)
    assert str(p) in str(info.value)


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
def test_read_idx_truncated_data(tmp_path: Path, compressed: bool) -> None:
    raw = idx_bytes(np.ones((3, 28, 28), np.uint8))[:-5]
    p = write(tmp_path / "t", gz(raw) if compressed else raw)
    with pytest.raises(DataError, match=r"truncated IDX data: the header declares shape \(3, 28"):
        data.read_idx(p)


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
def test_read_idx_trailing_bytes(tmp_path: Path, compressed: bool) -> None:
    raw = idx_bytes(np.ones((3, 4), np.int16)) + b"\x01\x02\x03"
    p = write(tmp_path / "t", gz(raw) if compressed else raw)
    with pytest.raises(DataError, match="3 trailing bytes after the IDX data"):
        data.read_idx(p)


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
def test_read_idx_absurd_dims_fail_fast(tmp_path: Path, compressed: bool) -> None:
    raw = bytes([0, 0, 0x0E, 4]) + b"\xff" * 16 + bytes(64)  # 8 * (2**32 - 1)**4 bytes
    p = write(tmp_path / "huge", gz(raw) if compressed else raw)
    start = time.perf_counter()
    with pytest.raises(DataError, match="absurd IDX header" if compressed else "truncated"):
        data.read_idx(p)
    assert time.perf_counter() - start < 1.0


def test_read_idx_corrupted_gzip_crc(tmp_path: Path) -> None:
    blob = bytearray(gz(idx_bytes(np.arange(100, dtype=np.uint8))))
    blob[-8] ^= 0xFF  # the CRC-32 of the trailer
    with pytest.raises(DataError, match="CRC check"):
        data.read_idx(write(tmp_path / "crc.gz", bytes(blob)))


def test_read_idx_corrupted_gzip_stream(tmp_path: Path) -> None:
    blob = bytearray(gz(idx_bytes(np.arange(3000, dtype=np.int32)), level=1))
    for i in range(20, 40):
        blob[i] ^= 0x5A
    with pytest.raises(DataError, match="corrupted gzip file"):
        data.read_idx(write(tmp_path / "bad.gz", bytes(blob)))


@pytest.mark.parametrize("keep", [3, 10, 0.5, -4], ids=["magic", "header", "half", "trailer"])
def test_read_idx_truncated_gzip(tmp_path: Path, keep: float) -> None:
    blob = gz(idx_bytes(np.random.default_rng(1).integers(0, 255, 5000, dtype=np.uint8)))
    cut = blob[: int(len(blob) * keep)] if isinstance(keep, float) else blob[:keep]
    with pytest.raises(DataError, match="truncated gzip file"):
        data.read_idx(write(tmp_path / "cut.gz", cut))


def test_read_idx_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.gz: file not found"):
        data.read_idx(tmp_path / "nope.gz")
    with pytest.raises(DataError, match="is a folder"):
        data.read_idx(tmp_path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads all")
def test_read_idx_unreadable_file(tmp_path: Path) -> None:
    p = write(tmp_path / "locked", idx_bytes(np.zeros(3, np.uint8)))
    p.chmod(0)
    with pytest.raises(DataError, match="cannot open"):
        data.read_idx(p)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
def test_read_idx_refuses_nan_and_inf(tmp_path: Path, dtype: type, compressed: bool) -> None:
    a = np.array([[0.5, np.nan], [np.inf, -1.0], [2.0, -np.inf]], dtype=dtype)
    raw = idx_bytes(a)
    p = write(tmp_path / "nan", gz(raw) if compressed else raw)
    with pytest.raises(DataError, match=r"3 of 6 float\d\d values are NaN or infinite"):
        data.read_idx(p)


def test_data_error_is_an_mlp_error() -> None:
    assert issubclass(DataError, MLPError)


# --------------------------------------------------------------------------- fuzzing


def _check_fuzz(path: Path, content: bytes) -> np.ndarray | None:
    path.write_bytes(content)
    try:
        return data.read_idx(path)
    except DataError as exc:
        assert str(path) in str(exc)
        return None


@FUZZ
@given(blob=st.binary(max_size=600), prefix=st.sampled_from([b"", b"\0\0", b"\x1f\x8b\x08"]))
def test_fuzz_random_bytes(tmp_path: Path, blob: bytes, prefix: bytes) -> None:
    _check_fuzz(tmp_path / "fuzz", prefix + blob)


@st.composite
def valid_idx(draw: st.DrawFn) -> tuple[np.ndarray, bytes]:
    dtype = draw(st.sampled_from(list(IDX_CODES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))
    a = draw(hnp.arrays(dtype, shape))
    return a, idx_bytes(a)


@FUZZ
@given(
    item=valid_idx(),
    compressed=st.booleans(),
    mutate_after_gzip=st.booleans(),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]),
            st.integers(0, 10_000),
            st.integers(0, 255),
        ),
        max_size=4,
    ),
)
def test_fuzz_mutated_idx(
    tmp_path: Path,
    item: tuple[np.ndarray, bytes],
    compressed: bool,
    mutate_after_gzip: bool,
    edits: list[tuple[str, int, int]],
) -> None:
    a, raw = item

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
    out = _check_fuzz(tmp_path / "fuzz", content)
    if not edits and not (a.dtype.kind == "f" and not np.isfinite(a).all()):
        assert out is not None and out.dtype == a.dtype and out.shape == a.shape
        np.testing.assert_array_equal(out, a)


@settings(max_examples=60, deadline=2000,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(item=valid_idx(), compressed=st.booleans())
def test_fuzz_valid_round_trip(
    tmp_path: Path, item: tuple[np.ndarray, bytes], compressed: bool
) -> None:
    a, raw = item
    out = _check_fuzz(tmp_path / "ok", gz(raw) if compressed else raw)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        assert out is None
    else:
        assert out is not None and out.dtype == a.dtype and out.shape == a.shape
        np.testing.assert_array_equal(out, a)


# --------------------------------------------------------------------------- specs


def test_get_spec_names() -> None:
    assert data.DATASETS == ("mnist", "fashion-mnist")
    assert set(data.DATASETS) <= set(data.SPECS)
    assert data.get_spec("MNIST").name == "mnist"
    assert data.get_spec("Fashion_MNIST").name == "fashion-mnist"
    assert data.get_spec(data.SPECS["mnist"]) is data.SPECS["mnist"]
    for name in data.DATASETS:
        spec = data.SPECS[name]
        assert (spec.n_train, spec.n_test, spec.image_shape) == (60000, 10000, (28, 28))
        assert len(spec.class_names) == 10
    mnist_files = {f.name for f in data.SPECS["mnist"].files.values()}
    assert set(data.MNIST_ORIGINAL_GZ_SHA256) == mnist_files


def test_unknown_dataset_name() -> None:
    with pytest.raises(DataError, match="unknown dataset 'cifar10'; choose one of: mnist, fash"):
        data.load("cifar10")


def test_register(small: Small) -> None:
    assert small.spec is not None
    assert data.get_spec("tiny") is small.spec
    with pytest.raises(ValueError, match="already registered"):
        data.register(small.spec)
    assert data.register(small.spec, replace=True) is small.spec
    with pytest.raises(TypeError):
        data.register("tiny")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "a/b"},
        {"name": ".."},
        {"sha256": "abc"},
        {"sha256": "z" * 64},
        {"gz_hash": "md5"},
        {"gz_hash": "crc32:0000"},
        {"gz_hash": "md5:" + "0" * 31},
    ],
)
def test_spec_validation(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        data.DataFile(**({"name": "f.gz"} | kwargs))


def test_spec_normalises_hashes() -> None:
    f = data.DataFile("f.gz", sha256="AB" * 32, gz_hash="MD5:" + "CD" * 16)
    assert f.sha256 == "ab" * 32 and f.gz_hash == "md5:" + "cd" * 16
    assert f.raw_name == "f"


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
    check_loaded(data.load(small.spec, tmp_path / "root" / "tiny"), small)


def test_data_dir_missing_file_is_an_error_and_nothing_downloads(
    tmp_path: Path, small: Small, server: Server
) -> None:
    folder = small.write_to(tmp_path / "d")
    (folder / FILES["test_labels"]).unlink()
    server.files = dict(small.files)
    with pytest.raises(DataError) as info:
        data.load("tiny", folder, base_url=server.url, cache_dir=tmp_path / "cache")
    msg = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz (or t10k-labels-idx1-ubyte) not found" in msg
    assert str(folder) in msg
    assert server.requests == [] and not (tmp_path / "cache").exists()
    with pytest.raises(DataError, match="does not exist"):
        data.load("tiny", tmp_path / "nowhere")


def test_local_hash_mismatch_keeps_the_users_file(tmp_path: Path, small: Small) -> None:
    folder = small.write_to(tmp_path / "d")
    images = small.arrays["train_images"].copy()
    images[3, 4, 5] ^= 1
    bad = write(folder / FILES["train_images"], gz(idx_bytes(images)))
    with pytest.raises(DataError) as info:
        data.load("tiny", folder)
    msg = str(info.value)
    assert str(bad) in msg and "hash mismatch" in msg
    assert sha256(idx_bytes(images)) in msg
    assert small.spec is not None and small.spec.train_images.sha256 in msg
    assert bad.exists()
    ds = data.load("tiny", folder, verify=False)
    np.testing.assert_array_equal(ds.x_train[3].reshape(28, 28), images[3])


def test_local_gz_md5_is_checked_and_raw_copy_passes(tmp_path: Path) -> None:
    small = make_small("tiny-md5", gz_md5=True)
    folder = small.write_to(tmp_path / "d")
    check_loaded(data.load(small.spec, folder), small)
    recompressed = gz(small.raw["train_labels"], level=1)
    assert recompressed != small.files[FILES["train_labels"]]
    write(folder / FILES["train_labels"], recompressed)
    with pytest.raises(DataError, match=f"MD5 of the gzip file is {md5(recompressed)}, expected"):
        data.load(small.spec, folder)
    # The decompressed file has no published hash: only its structure is checked.
    (folder / FILES["train_labels"]).unlink()
    write(folder / "train-labels-idx1-ubyte", small.raw["train_labels"])
    check_loaded(data.load(small.spec, folder), small)


def _load_with(tmp_path: Path, small: Small, role: str, array: np.ndarray, **spec_changes: object
               ) -> None:
    """Write ``small`` with ``array`` in place of ``role`` and load it without hash checks."""
    assert small.spec is not None
    folder = small.write_to(tmp_path / "d")
    write(folder / FILES[role], gz(idx_bytes(array)))
    data.load(replace(small.spec, **spec_changes), folder, verify=False)


def test_count_mismatch(tmp_path: Path, small: Small) -> None:
    labels = small.arrays["train_labels"][:-1]
    with pytest.raises(DataError, match="holds 20 images but .*train-labels.* holds 19 labels"):
        _load_with(tmp_path, small, "train_labels", labels, n_train=None)
    with pytest.raises(DataError, match="holds 19 labels, tiny has 20 in this split"):
        _load_with(tmp_path, small, "train_labels", labels)


def test_wrong_image_size(tmp_path: Path, small: Small) -> None:
    images = np.zeros((10, 27, 28), np.uint8)
    with pytest.raises(DataError, match="images are 27x28, tiny images are 28x28"):
        _load_with(tmp_path, small, "test_images", images)


def test_images_where_labels_belong(tmp_path: Path, small: Small) -> None:
    with pytest.raises(DataError, match=r"not an IDX labels file.*2049.*found uint8 with 3.*2051"):
        _load_with(tmp_path, small, "test_labels", small.arrays["test_images"])
    with pytest.raises(DataError, match=r"not an IDX images file.*found int32"):
        _load_with(tmp_path, small, "test_images", np.zeros((10, 28, 28), np.int32))


def test_label_out_of_range(tmp_path: Path, small: Small) -> None:
    labels = small.arrays["test_labels"].copy()
    labels[7] = 10
    with pytest.raises(DataError, match=r"label 10 out of range \(first bad label at index 7\)"):
        _load_with(tmp_path, small, "test_labels", labels)


# --------------------------------------------------------------------------- cache & download


def test_download_then_cache_hit(tmp_path: Path, small: Small, server: Server) -> None:
    server.files = dict(small.files)
    cache = tmp_path / "cache"
    ds = data.load("tiny", cache_dir=cache, base_url=server.url)
    check_loaded(ds, small)
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
    check_loaded(data.load("tiny", progress=True), small)
    assert server.gets() == 4 and len(list((tmp_path / "envcache" / "tiny").iterdir())) == 4


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
    assert small.spec is not None and f"expected {small.spec.test_images.sha256}" in msg
    assert sha256(served) in msg and "nothing was saved" in msg
    assert not (cache / "tiny" / FILES["test_images"]).exists()
    # The files before it were good and stay; no temporary file is left behind.
    assert stray_files(cache / "tiny", {FILES["train_images"], FILES["train_labels"]}) == set()


def test_download_gz_md5_mismatch(tmp_path: Path, server: Server) -> None:
    small = make_small("tiny-md5", gz_md5=True)
    served = gz(small.raw["train_images"], level=1)
    server.files = dict(small.files) | {FILES["train_images"]: served}
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        data.load(small.spec, cache_dir=cache, base_url=server.url)
    msg = str(info.value)
    assert f"MD5 of the gzip file is {md5(served)}" in msg
    assert f"expected {md5(small.files[FILES['train_images']])}" in msg
    assert stray_files(cache / "tiny-md5", set()) == set()
    server.files = dict(small.files)
    check_loaded(data.load(small.spec, cache_dir=cache, base_url=server.url), small)


def test_download_truncated_gzip_is_discarded(
    tmp_path: Path, small: Small, server: Server
) -> None:
    blob = small.files[FILES["train_images"]]
    server.files = dict(small.files) | {FILES["train_images"]: blob[: len(blob) // 2]}
    with pytest.raises(DataError, match="truncated gzip file"):
        data.load("tiny", cache_dir=tmp_path / "c", base_url=server.url)
    assert stray_files(tmp_path / "c" / "tiny", set()) == set()


def test_download_404(tmp_path: Path, small: Small, server: Server) -> None:
    server.files = {k: v for k, v in small.files.items() if "t10k-labels" not in k}
    with pytest.raises(DataError) as info:
        data.load("tiny", cache_dir=tmp_path / "c", base_url=server.url)
    msg = str(info.value)
    assert "could not download t10k-labels-idx1-ubyte.gz" in msg and "404" in msg
    assert server.url + "t10k-labels-idx1-ubyte.gz" in msg
    assert stray_files(tmp_path / "c" / "tiny", set(FILES.values()) - {FILES["test_labels"]}) \
        == set()


def test_download_connection_refused(tmp_path: Path, small: Small) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DataError, match="could not download train-images"):
        data.load("tiny", cache_dir=tmp_path / "c", base_url=f"http://127.0.0.1:{port}/")


def test_no_download_when_disabled(tmp_path: Path, small: Small, server: Server) -> None:
    server.files = dict(small.files)
    with pytest.raises(DataError, match="not in the cache .* download=False"):
        data.load("tiny", cache_dir=tmp_path / "c", base_url=server.url, download=False)
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


# --------------------------------------------------------------------------- real MNIST


def _real_mnist_dir() -> Path:
    if not REAL_DATA_DIR:
        if os.environ.get("CI"):
            pytest.fail("CI is set but MLP_DATA_DIR is not: point it at the MNIST files")
        pytest.skip("set MLP_DATA_DIR to a folder holding the four MNIST files to run this")
    root = Path(REAL_DATA_DIR)
    return root / "mnist" if (root / "mnist").is_dir() else root


def test_real_mnist() -> None:
    folder = _real_mnist_dir()
    start = time.perf_counter()
    ds = data.load("mnist", folder)
    elapsed = time.perf_counter() - start
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.flags.c_contiguous
    assert ds.y_train.dtype == np.int64 and ds.y_train.shape == (60000,)
    assert ds.y_train.min() == 0 and ds.y_train.max() == 9 and ds.x_train.max() == 255
    assert ds.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert ds.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(ds.y_train).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949,
    ]
    assert np.bincount(ds.y_test).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009,
    ]
    assert elapsed < 10, f"loading MNIST took {elapsed:.1f} s"


def test_real_mnist_is_not_fashion_mnist() -> None:
    folder = _real_mnist_dir()
    with pytest.raises(DataError, match="this is the mnist file, not the fashion-mnist one"):
        data.load("fashion-mnist", folder)


def test_zlib_reports_crc_errors_as_expected() -> None:
    """The CRC message the reader relies on comes from zlib itself."""
    blob = bytearray(gz(b"abc"))
    blob[-8] ^= 1
    with pytest.raises(zlib.error, match="incorrect data check"):
        zlib.decompressobj(31).decompress(bytes(blob))
