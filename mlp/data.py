"""MNIST and Fashion-MNIST from their IDX files: found locally or downloaded, always verified.

A dataset is four IDX files (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``), each gzipped or raw (the same name
without ``.gz``). :func:`load` looks for them, in this order:

1. ``data_dir`` (the argument), else the folder in the environment variable ``MLP_DATA_DIR``.
   Either may hold the files directly or in a sub-folder named after the dataset
   (``<dir>/fashion-mnist/``). A file missing there is an error: nothing is downloaded into a
   folder of yours.
2. The per-user cache, ``<cache root>/<dataset name>/``, where the root is ``cache_dir``, else
   ``MLP_CACHE_DIR``, else ``pooch.os_cache("array-api-mlp")``.
3. A download into that cache (``download=True``) from the dataset's mirror, or from
   ``base_url`` / ``MLP_DATA_URL`` (``{name}`` in it becomes the dataset name). Each file is
   downloaded to a temporary name, parsed and verified, and only then moved into place, so the
   cache never holds a partial or corrupt file.

Verification: every file must parse as IDX (see :func:`read_idx`); images must be uint8 with
three dimensions (magic 2051) and 28x28 images, labels uint8 with one dimension (magic 2049),
labels below the number of classes, and the counts must agree with each other and with the
dataset (60000 train / 10000 test). With ``verify=True`` (the default) hashes are checked too:
for MNIST the SHA-256 of the *decompressed* contents, so re-compressed mirrors and local
copies pass; for Fashion-MNIST the published MD5 of each ``.gz`` file (a raw local file has no
published hash and is checked for structure only). A cached file that fails is deleted (and
downloaded again when allowed); a file of yours that fails is reported and left alone.

Other datasets in the same format are added with :func:`register` and a :class:`DatasetSpec`,
or passed to :func:`load` directly.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import DataError

__all__ = [
    "DATASETS",
    "MNIST_ORIGINAL_GZ_SHA256",
    "SPECS",
    "DataFile",
    "Dataset",
    "DatasetSpec",
    "cache_path",
    "get_spec",
    "load",
    "read_idx",
    "register",
]

log = logging.getLogger(__name__)

#: The datasets this module knows out of the box.
DATASETS = ("mnist", "fashion-mnist")

#: Environment variables read by :func:`load`.
ENV_DATA_DIR = "MLP_DATA_DIR"
ENV_CACHE_DIR = "MLP_CACHE_DIR"
ENV_DATA_URL = "MLP_DATA_URL"

_GZIP_MAGIC = b"\x1f\x8b"
#: IDX type code -> (dtype as stored, big-endian; name).
_IDX_TYPES: dict[int, tuple[np.dtype, str]] = {
    0x08: (np.dtype("u1"), "uint8"),
    0x09: (np.dtype("i1"), "int8"),
    0x0B: (np.dtype(">i2"), "int16"),
    0x0C: (np.dtype(">i4"), "int32"),
    0x0D: (np.dtype(">f4"), "float32"),
    0x0E: (np.dtype(">f8"), "float64"),
}
_MAX_NDIM = 32  # NumPy 1.x's limit; IDX files in practice have 1 to 4
_MAX_DEFLATE_RATIO = 1032  # deflate cannot expand one input byte into more than ~1032 bytes
_IN_CHUNK = 1 << 18  # compressed bytes read at a time
_OUT_CHUNK = 1 << 20  # content bytes produced (and hashed) at a time
_CODE_BY_NAME = {name: code for code, (_, name) in _IDX_TYPES.items()}
_ROLES = ("train_images", "train_labels", "test_images", "test_labels")
_MAGIC_IMAGES = 0x0803  # uint8, 3 dimensions: 2051
_MAGIC_LABELS = 0x0801  # uint8, 1 dimension: 2049


# --------------------------------------------------------------------------- dataset specs


@dataclass(frozen=True)
class DataFile:
    """One IDX file of a dataset and the hashes it must match.

    ``name`` is the canonical file name (usually ending in ``.gz``); the raw file is the same name
    without ``.gz``. ``sha256`` is the hex SHA-256 of the *decompressed* IDX bytes, checked for
    gzipped and raw files alike. ``gz_hash`` (``"md5:<hex>"`` or ``"sha256:<hex>"``) is the hash of
    the published ``.gz`` file: checked on download and on local gzipped files. Either may be
    ``None`` (not checked).
    """

    name: str
    sha256: str | None = None
    gz_hash: str | None = None

    def __post_init__(self) -> None:
        _check_plain_name(self.name, "file name")
        if self.sha256 is not None:
            object.__setattr__(self, "sha256", _check_hex(self.sha256, 64, self.name))
        if self.gz_hash is not None:
            alg, _, digest = self.gz_hash.partition(":")
            alg = alg.lower()
            if not digest or alg not in hashlib.algorithms_guaranteed:
                raise ValueError(
                    f"{self.name}: gz_hash must look like 'md5:<hex>' or 'sha256:<hex>', "
                    f"got {self.gz_hash!r}"
                )
            size = hashlib.new(alg).digest_size * 2
            object.__setattr__(self, "gz_hash", f"{alg}:{_check_hex(digest, size, self.name)}")

    @property
    def raw_name(self) -> str:
        """The name of the decompressed file (``name`` without a trailing ``.gz``)."""
        return self.name[:-3] if self.name.endswith(".gz") else self.name


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset comes from and what its files must look like.

    ``url`` is the folder the four files are downloaded from. ``n_train`` / ``n_test`` are the
    required numbers of examples (``None``: any, as long as images and labels agree).
    ``image_shape`` is the required (height, width) of the images; ``class_names`` gives the
    number of classes (every label must be below it) and their names.
    """

    name: str
    url: str
    train_images: DataFile
    train_labels: DataFile
    test_images: DataFile
    test_labels: DataFile
    n_train: int | None = None
    n_test: int | None = None
    image_shape: tuple[int, int] = (28, 28)
    class_names: tuple[str, ...] = tuple(str(i) for i in range(10))

    def __post_init__(self) -> None:
        _check_plain_name(self.name, "dataset name")
        if not self.class_names or len(self.class_names) > 256:
            raise ValueError(f"{self.name}: class_names must name 1 to 256 classes")

    @property
    def files(self) -> dict[str, DataFile]:
        """The four files by role: ``train_images``, ``train_labels``, ``test_images``, ..."""
        return {role: getattr(self, role) for role in _ROLES}


def _check_plain_name(name: str, what: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"{what} must be a plain name without a folder, got {name!r}")


def _check_hex(digest: str, size: int, where: str) -> str:
    digest = digest.lower()
    if len(digest) != size or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{where}: expected a hash of {size} hex digits, got {digest!r}")
    return digest


_FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

#: SHA-256 of the original MNIST ``.gz`` files, for reference only: :func:`load` checks the
#: decompressed contents instead, so re-compressed copies pass.
MNIST_ORIGINAL_GZ_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: Registered datasets by name; add more with :func:`register`.
SPECS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        train_images=DataFile(
            "train-images-idx3-ubyte.gz",
            sha256="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        train_labels=DataFile(
            "train-labels-idx1-ubyte.gz",
            sha256="65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        test_images=DataFile(
            "t10k-images-idx3-ubyte.gz",
            sha256="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        test_labels=DataFile(
            "t10k-labels-idx1-ubyte.gz",
            sha256="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
        n_train=60000,
        n_test=10000,
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        train_images=DataFile(
            "train-images-idx3-ubyte.gz", gz_hash="md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d"
        ),
        train_labels=DataFile(
            "train-labels-idx1-ubyte.gz", gz_hash="md5:25c81989df183df01b3e8a0aad5dffbe"
        ),
        test_images=DataFile(
            "t10k-images-idx3-ubyte.gz", gz_hash="md5:bef4ecab320f06d8554ea6380940ec79"
        ),
        test_labels=DataFile(
            "t10k-labels-idx1-ubyte.gz", gz_hash="md5:bb300cfdad3c16e7a12a480ee83cd310"
        ),
        n_train=60000,
        n_test=10000,
        class_names=_FASHION_CLASSES,
    ),
}


def register(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add ``spec`` to :data:`SPECS` so that ``load(spec.name)`` finds it; returns ``spec``.

    Registering a name that exists raises ``ValueError`` unless ``replace=True``.
    """
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"register() takes a DatasetSpec, got {type(spec).__name__}")
    if spec.name in SPECS and not replace:
        raise ValueError(f"dataset {spec.name!r} is already registered (pass replace=True)")
    SPECS[spec.name] = spec
    return spec


def get_spec(name: str | DatasetSpec) -> DatasetSpec:
    """The registered :class:`DatasetSpec` called ``name`` (case and ``_``/``-`` ignored).

    A spec passed in is returned as is. An unknown name raises :class:`DataError` listing the
    known ones.
    """
    if isinstance(name, DatasetSpec):
        return name
    key = str(name).strip().lower().replace("_", "-")
    if key not in SPECS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(SPECS)}")
    return SPECS[key]


# --------------------------------------------------------------------------- the dataset


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A loaded dataset: host NumPy arrays, ready to hand to a backend.

    ``x_train``: (N_train, H*W) uint8, C-contiguous, writeable, pixel values 0..255.
    ``y_train``: (N_train,) int64 class indices in ``0 .. num_classes - 1``.
    ``x_test`` / ``y_test``: the same for the test split. ``class_names`` names the classes.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] = tuple(str(i) for i in range(10))

    @property
    def num_classes(self) -> int:
        """Number of classes (10 for MNIST and Fashion-MNIST)."""
        return len(self.class_names)

    @property
    def num_features(self) -> int:
        """Number of input features per example (784 = 28*28 for MNIST)."""
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={self.x_train.shape[0]}, "
            f"test={self.x_test.shape[0]}, features={self.num_features}, "
            f"classes={self.num_classes})"
        )


# --------------------------------------------------------------------------- IDX reading


class _Stream:
    """The content of a raw or gzipped file, read once, in chunks, hashing as it goes.

    ``file_hash`` (optional) sees the bytes as stored (the compressed ones for a gzip file);
    ``content_hash`` (optional) sees the decompressed content.
    """

    def __init__(self, f: IO[bytes], label: str, file_hash: Any, content_hash: Any) -> None:
        self._f = f
        self._label = label
        self._file_hash = file_hash
        self.content_hash = content_hash
        self.size = os.fstat(f.fileno()).st_size
        self._inbuf = self._read_file(2)
        self.gz = self._inbuf == _GZIP_MAGIC
        self._inflater: Any = zlib.decompressobj(31) if self.gz else None
        self.consumed = 0  # content bytes handed out so far

    def _read_file(self, n: int) -> bytes:
        data = self._f.read(n)
        if self._file_hash is not None and data:
            self._file_hash.update(data)
        return data

    def _error(self, what: str) -> DataError:
        return DataError(f"{self._label}: {what}")

    def _next_member(self) -> bool:
        """After a gzip member: start the next one, or accept only zero padding up to the end."""
        head = self._inbuf
        while len(head) < 2:
            more = self._read_file(_IN_CHUNK)
            if not more:
                break
            head += more
        self._inbuf = b""
        if head[:2] == _GZIP_MAGIC:
            self._inflater = zlib.decompressobj(31)
            self._inbuf = head
            return True
        while head:  # gzip allows zero bytes after the last member; anything else is garbage
            if head.strip(b"\0"):
                raise self._error("corrupted gzip file: unexpected bytes after the compressed data")
            head = self._read_file(_IN_CHUNK)
        return False

    def _inflate(self, max_out: int) -> bytes:
        """Up to ``max_out`` decompressed bytes; ``b""`` only at the verified end of the file."""
        while True:
            if self._inflater is None:
                if not self._next_member():
                    return b""
                continue
            data_in = self._inbuf or self._read_file(_IN_CHUNK)
            self._inbuf = b""
            if not data_in:
                raise self._error(
                    "truncated gzip file: it ends before the compressed data does "
                    "(an incomplete download or copy?)"
                )
            try:
                out = self._inflater.decompress(data_in, max_out)
            except zlib.error as exc:
                if "incorrect data check" in str(exc) or "incorrect length check" in str(exc):
                    raise self._error(
                        "corrupted gzip file: the CRC check of the decompressed data failed"
                    ) from None
                raise self._error(f"corrupted gzip file ({exc})") from None
            if self._inflater.eof:
                self._inbuf = self._inflater.unused_data
                self._inflater = None
            else:
                self._inbuf = self._inflater.unconsumed_tail
            if out:
                return out

    def readinto(self, out: memoryview) -> int:
        """Fill ``out`` (a byte view) with content; returns the count, short only at the end."""
        n, pos = len(out), 0
        while pos < n:
            stop = min(n, pos + _OUT_CHUNK)
            if self.gz:
                data = self._inflate(stop - pos)
                k = len(data)
                out[pos : pos + k] = data
            elif self._inbuf:
                k = min(len(self._inbuf), stop - pos)
                out[pos : pos + k] = self._inbuf[:k]
                self._inbuf = self._inbuf[k:]
            else:
                k = self._f.readinto(out[pos:stop]) or 0
                if k and self._file_hash is not None:
                    self._file_hash.update(out[pos : pos + k])
            if not k:
                break
            if self.content_hash is not None:
                self.content_hash.update(out[pos : pos + k])
            pos += k
        self.consumed += pos
        return pos

    def read_exact(self, n: int, what: str) -> bytes:
        buf = bytearray(n)
        got = self.readinto(memoryview(buf))
        if got < n:
            raise self._error(
                f"truncated IDX file: it ends inside the {what} ({got} of {n} bytes present)"
            )
        return bytes(buf)

    def trailing(self, limit: int = 1 << 24) -> int:
        """Content bytes left after what was read (counted up to about ``limit``)."""
        if not self.gz:
            return len(self._inbuf) + max(0, self.size - self._f.tell())
        extra = 0
        while extra < limit:
            data = self._inflate(_OUT_CHUNK)
            if not data:
                break
            extra += len(data)
        return extra


@dataclass(frozen=True)
class _Parsed:
    array: np.ndarray
    gz: bool
    content_sha256: str | None
    file_digest: str | None


def _magic_text(magic: int) -> str:
    return f"magic 0x{magic:08X} = {magic}"


def _parse(f: IO[bytes], label: str, content_hash: Any, file_hash: Any) -> _Parsed:
    s = _Stream(f, label, file_hash, content_hash)
    head = s.read_exact(4, "4-byte magic number")
    if head[0] or head[1]:
        raise DataError(
            f"{label}: not an IDX file: it starts with bytes {head.hex(' ')}, "
            "an IDX file starts with two zero bytes, a type code and the number of dimensions"
        )
    code, ndim = head[2], head[3]
    if code not in _IDX_TYPES:
        known = ", ".join(f"0x{c:02X} {n}" for c, (_, n) in _IDX_TYPES.items())
        raise DataError(f"{label}: unknown IDX type code 0x{code:02X} (known: {known})")
    dtype, type_name = _IDX_TYPES[code]
    if ndim > _MAX_NDIM:
        raise DataError(f"{label}: absurd IDX header: {ndim} dimensions (at most {_MAX_NDIM})")
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", s.read_exact(4 * ndim, "dimension sizes"))
    count = math.prod(dims)
    nbytes = count * dtype.itemsize
    declared = f"shape {dims} of {type_name} ({nbytes} bytes of data)"
    # Check the declared size against what the file can hold *before* allocating.
    if s.gz:
        if nbytes > _MAX_DEFLATE_RATIO * s.size:
            raise DataError(
                f"{label}: absurd IDX header: it declares {declared}, more than a "
                f"{s.size}-byte gzip file can hold"
            )
    else:
        available = s.size - header
        if nbytes > available:
            raise DataError(
                f"{label}: truncated IDX data: the header declares {declared} "
                f"but the file holds only {available} bytes after the header"
            )
        if nbytes < available:
            raise DataError(
                f"{label}: {available - nbytes} trailing bytes after the IDX data "
                f"(the header declares {declared})"
            )
    try:
        flat = np.empty(count, dtype=dtype)
    except (MemoryError, ValueError, OverflowError):
        raise DataError(f"{label}: cannot allocate memory for {declared}") from None
    got = s.readinto(memoryview(flat.view(np.uint8)))
    if got < nbytes:
        raise DataError(
            f"{label}: truncated IDX data: the header declares {declared} "
            f"but the decompressed file holds only {got} bytes after the header"
        )
    extra = s.trailing()
    if extra:
        raise DataError(
            f"{label}: {'at least ' if extra >= 1 << 24 else ''}{extra} trailing bytes after "
            f"the IDX data (the header declares {declared})"
        )
    if not flat.dtype.isnative:  # big-endian on disk: swap in place, no copy
        flat.byteswap(inplace=True)
        flat = flat.view(flat.dtype.newbyteorder("="))
    array = flat.reshape(dims)
    if array.dtype.kind == "f":
        bad = count - int(np.count_nonzero(np.isfinite(array)))
        if bad:
            raise DataError(f"{label}: {bad} of {count} {type_name} values are NaN or infinite")
    return _Parsed(
        array=array,
        gz=s.gz,
        content_sha256=content_hash.hexdigest() if content_hash is not None else None,
        file_digest=file_hash.hexdigest() if file_hash is not None else None,
    )


def _read(
    path: str | os.PathLike[str],
    *,
    label: str | None = None,
    content_sha256: bool = False,
    file_hash_alg: str | None = None,
) -> _Parsed:
    label = label or os.fspath(path)
    try:
        f = open(path, "rb")  # closed by the with-block below
    except FileNotFoundError:
        raise DataError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{label}: is a folder, not an IDX file") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{label}: cannot open: {getattr(exc, 'strerror', None) or exc}") from None
    with f:
        try:
            return _parse(
                f,
                label,
                hashlib.sha256() if content_sha256 else None,
                hashlib.new(file_hash_alg, usedforsecurity=False) if file_hash_alg else None,
            )
        except OSError as exc:
            raise DataError(f"{label}: read error: {exc.strerror or exc}") from None


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzipped or raw (told apart by the gzip magic bytes, not the name).

    The format: two zero bytes; a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64, all big-endian); the number of dimensions; that many big-endian
    uint32 sizes; then exactly their product of items. Returns an array of that shape and type
    in native byte order, C-contiguous and writeable (e.g. (60000, 28, 28) uint8 for MNIST
    training images, (60000,) uint8 for its labels).

    Every failure raises :class:`DataError` naming the file and what is wrong: missing or
    unreadable file, truncated or corrupted gzip data (bad CRC), not an IDX file, unknown type
    code, absurd dimensions, truncated data, trailing bytes, NaN or infinite float values.
    The declared size is checked against the file before anything is allocated.
    """
    return _read(path).array


# --------------------------------------------------------------------------- verification


def _read_verified(
    path: str | os.PathLike[str],
    spec: DatasetSpec,
    role: str,
    *,
    verify: bool,
    label: str,
) -> np.ndarray:
    """Read one of ``spec``'s files from ``path`` and check it: hashes, then structure."""
    dfile: DataFile = getattr(spec, role)
    alg = expected_file = None
    if verify and dfile.gz_hash is not None:
        alg, _, expected_file = dfile.gz_hash.partition(":")
    parsed = _read(
        path,
        label=label,
        content_sha256=verify,  # also names a file that belongs to another dataset
        file_hash_alg=alg,
    )
    if verify and dfile.sha256 is not None and parsed.content_sha256 != dfile.sha256:
        raise DataError(
            f"{label}: hash mismatch: the SHA-256 of its decompressed contents is "
            f"{parsed.content_sha256}, expected {dfile.sha256}{_wrong_dataset(spec, role, parsed)}"
        )
    if alg is not None and parsed.gz and parsed.file_digest != expected_file:
        why = _wrong_dataset(spec, role, parsed) or (
            " (a re-compressed copy differs: decompress it, and the raw file is checked for "
            "structure only)"
        )
        raise DataError(
            f"{label}: hash mismatch: the {alg.upper()} of the gzip file is "
            f"{parsed.file_digest}, expected {expected_file}{why}"
        )
    _check_structure(parsed.array, spec, role, label)
    return parsed.array


def _wrong_dataset(spec: DatasetSpec, role: str, parsed: _Parsed) -> str:
    """A hint when the file is, in fact, the same file of another registered dataset."""
    for other in SPECS.values():
        if other.name == spec.name:
            continue
        f: DataFile = getattr(other, role)
        if f.sha256 is not None and f.sha256 == parsed.content_sha256:
            return f"; this is the {other.name} file, not the {spec.name} one"
        if f.gz_hash is not None and f.gz_hash.partition(":")[2] == parsed.file_digest:
            return f"; this is the {other.name} file, not the {spec.name} one"
    return ""


def _check_structure(array: np.ndarray, spec: DatasetSpec, role: str, label: str) -> None:
    images = role.endswith("images")
    if array.dtype != np.uint8 or array.ndim != (3 if images else 1):
        want = _MAGIC_IMAGES if images else _MAGIC_LABELS
        code = _CODE_BY_NAME.get(array.dtype.name, 0)
        raise DataError(
            f"{label}: not an IDX {'images' if images else 'labels'} file: expected uint8 with "
            f"{3 if images else 1} dimension{'s' if images else ''} ({_magic_text(want)}), "
            f"found {array.dtype} with {array.ndim} ({_magic_text((code << 8) | array.ndim)})"
        )
    n = array.shape[0]
    expected = spec.n_train if role.startswith("train") else spec.n_test
    if expected is not None and n != expected:
        raise DataError(
            f"{label}: holds {n} {'images' if images else 'labels'}, "
            f"{spec.name} has {expected} in this split"
        )
    if images:
        if array.shape[1:] != tuple(spec.image_shape):
            h, w = array.shape[1:]
            eh, ew = spec.image_shape
            raise DataError(f"{label}: images are {h}x{w}, {spec.name} images are {eh}x{ew}")
    elif n:
        top = int(array.max())
        if top >= len(spec.class_names):
            where = int(np.argmax(array >= len(spec.class_names)))
            raise DataError(
                f"{label}: label {top} out of range (first bad label at index {where}); "
                f"{spec.name} has classes 0..{len(spec.class_names) - 1}"
            )


def _assemble(spec: DatasetSpec, arrays: dict[str, np.ndarray], labels: dict[str, str]) -> Dataset:
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.shape[0] != y.shape[0]:
            raise DataError(
                f"{spec.name}: {labels[f'{split}_images']} holds {x.shape[0]} images but "
                f"{labels[f'{split}_labels']} holds {y.shape[0]} labels"
            )

    def flat(x: np.ndarray) -> np.ndarray:
        # A view, no copy: x is freshly read and C-ordered.
        return np.ascontiguousarray(x.reshape(x.shape[0], math.prod(x.shape[1:])))

    return Dataset(
        name=spec.name,
        x_train=flat(arrays["train_images"]),
        y_train=arrays["train_labels"].astype(np.int64),
        x_test=flat(arrays["test_images"]),
        y_test=arrays["test_labels"].astype(np.int64),
        class_names=tuple(spec.class_names),
    )


# --------------------------------------------------------------------------- finding files


def cache_path(name: str | DatasetSpec = "mnist", cache_dir: str | os.PathLike[str] | None = None
               ) -> Path:
    """The cache folder of a dataset: ``<root>/<name>``, with the root ``cache_dir``, else
    ``$MLP_CACHE_DIR``, else ``pooch.os_cache("array-api-mlp")``."""
    spec = get_spec(name)
    root: Any = cache_dir or os.environ.get(ENV_CACHE_DIR)
    if not root:
        import pooch

        root = pooch.os_cache("array-api-mlp")
    return Path(root).expanduser() / spec.name


def _find(folder: Path, dfile: DataFile) -> Path | None:
    for fname in dict.fromkeys((dfile.name, dfile.raw_name)):
        candidate = folder / fname
        if candidate.is_file():
            return candidate
    return None


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove the bad cached file %s: %s", path, exc)


def _load_user_folder(spec: DatasetSpec, data_dir: Path, source: str, verify: bool) -> Dataset:
    base = data_dir.expanduser()
    if not base.is_dir():
        raise DataError(f"{spec.name}: data folder {base} ({source}) does not exist")
    folder = base / spec.name if (base / spec.name).is_dir() else base
    paths = {role: _find(folder, dfile) for role, dfile in spec.files.items()}
    missing = [
        dfile.name if dfile.name == dfile.raw_name else f"{dfile.name} (or {dfile.raw_name})"
        for role, dfile in spec.files.items()
        if paths[role] is None
    ]
    if missing:
        raise DataError(
            f"{spec.name}: {', '.join(missing)} not found in {folder} ({source}); put the files "
            f"there, or leave {ENV_DATA_DIR} and data_dir unset to download into the cache"
        )
    arrays = {
        role: _read_verified(path, spec, role, verify=verify, label=str(path))
        for role, path in paths.items()
        if path is not None
    }
    return _assemble(spec, arrays, {role: str(p) for role, p in paths.items()})


@contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Silence pooch's INFO chatter (we log our own line); keep its warnings."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


class _VerifyingDownloader:
    """Wraps a pooch downloader: parses and verifies the temporary file before pooch moves it
    into the cache, and keeps the parsed array so the file is not read again."""

    def __init__(self, inner: Any, check: Any) -> None:
        self.inner = inner
        self.check = check
        self.array: np.ndarray | None = None

    def __call__(self, url: str, output_file: Any, pooch: Any, check_only: bool = False) -> Any:
        result = self.inner(url, output_file, pooch)
        self.array = self.check(output_file)
        return result


def _download(
    spec: DatasetSpec, role: str, folder: Path, base_url: str, verify: bool, progress: bool
) -> np.ndarray:
    import pooch
    import requests

    dfile: DataFile = getattr(spec, role)
    url = base_url.replace("{name}", spec.name)
    url = url + ("" if url.endswith("/") else "/") + dfile.name
    label = f"{dfile.name} downloaded from {url}"
    if url.startswith(("http://", "https://")):
        inner = pooch.HTTPDownloader(progressbar=progress, chunk_size=1 << 16, timeout=60)
    else:
        try:
            inner = pooch.downloaders.choose_downloader(url, progressbar=progress)
        except ValueError as exc:
            raise DataError(f"cannot download {url}: {exc}") from None
    downloader = _VerifyingDownloader(
        inner,
        lambda tmp: _read_verified(tmp, spec, role, verify=verify, label=label),
    )
    log.info("downloading %s into %s", url, folder)
    try:
        with _quiet_pooch():
            pooch.retrieve(
                url,
                known_hash=dfile.gz_hash if verify else None,
                fname=dfile.name,
                path=folder,
                downloader=downloader,
                progressbar=progress,
            )
    except DataError as exc:  # from the verification, before pooch moved the file into place
        raise DataError(
            f"{exc}; the download was discarded, nothing was saved in {folder}"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise DataError(f"could not download {dfile.name} from {url}: {exc}") from None
    except (OSError, ValueError) as exc:  # pooch reports a hash mismatch as ValueError
        raise DataError(
            f"could not download {dfile.name} from {url} into {folder}: {exc}"
        ) from None
    if downloader.array is None:  # pragma: no cover - pooch always calls the downloader
        raise DataError(f"{label}: the downloader produced no data")
    return downloader.array


def _load_cache(
    spec: DatasetSpec,
    folder: Path,
    *,
    download: bool,
    base_url: str,
    verify: bool,
    progress: bool,
) -> Dataset:
    arrays: dict[str, np.ndarray] = {}
    labels: dict[str, str] = {}
    for role, dfile in spec.files.items():
        path = _find(folder, dfile)
        if path is not None:
            labels[role] = str(path)
            try:
                arrays[role] = _read_verified(path, spec, role, verify=verify, label=str(path))
                continue
            except DataError as exc:
                _remove(path)  # never keep a bad file in the cache
                if not download:
                    raise DataError(f"{exc}; removed it from the cache") from None
                log.warning("%s; removed it from the cache, downloading it again", exc)
        if not download:
            raise DataError(
                f"{spec.name}: {dfile.name} is not in the cache {folder} and download=False; "
                f"allow the download, or point {ENV_DATA_DIR} (or data_dir) at a folder "
                "holding the files"
            )
        arrays[role] = _download(spec, role, folder, base_url, verify, progress)
        labels[role] = str(folder / dfile.name)
    return _assemble(spec, arrays, labels)


def load(
    name: str | DatasetSpec = "mnist",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    progress: bool = False,
    verify: bool = True,
) -> Dataset:
    """Load a dataset (``"mnist"``, ``"fashion-mnist"``, a registered name or a spec), verified.

    Files come from ``data_dir`` (else ``$MLP_DATA_DIR``), else from the cache (``cache_dir``,
    else ``$MLP_CACHE_DIR``, else the per-user cache), else are downloaded into the cache when
    ``download`` is true, from ``base_url`` (else ``$MLP_DATA_URL``, else the dataset's mirror)
    with a progress bar when ``progress`` is true. ``verify=False`` skips the hash checks (the
    structure is always checked). See the module docstring for the details.

    Returns a :class:`Dataset`: ``x_train`` (N, 784) uint8 C-contiguous, ``y_train`` (N,) int64,
    ``x_test`` / ``y_test`` likewise. Every failure raises :class:`DataError`.
    """
    spec = get_spec(name)
    source = "data_dir"
    if data_dir is None and os.environ.get(ENV_DATA_DIR):
        data_dir, source = os.environ[ENV_DATA_DIR], f"${ENV_DATA_DIR}"
    if data_dir is not None:
        return _load_user_folder(spec, Path(data_dir), source, verify)
    return _load_cache(
        spec,
        cache_path(spec, cache_dir),
        download=download,
        base_url=base_url or os.environ.get(ENV_DATA_URL) or spec.url,
        verify=verify,
        progress=progress,
    )
