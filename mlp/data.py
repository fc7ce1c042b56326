"""MNIST and Fashion-MNIST from their IDX files: local, shipped, cached or downloaded; verified.

:func:`load` takes each IDX file (``train-images-idx3-ubyte`` ..., ``.gz`` or raw) from the first
of: ``data_dir`` / ``MLP_DATA_DIR`` (directly or in ``<dir>/<dataset>/``), the copy shipped in the
package (MNIST), the per-user cache, a download into that cache. Each must be a regular file whose
IDX header is the dataset's (checked before any data is read: a hostile header costs nothing),
then exactly the declared bytes (at most one more is read or inflated), with the published SHA-256
of the decompressed contents and labels that name classes. A bad cached file is deleted.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from .errors import DataError
from .files import NotRegularFile, kind, open_regular

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "cache_path", "embedded_path", "load"]

log = logging.getLogger(__name__)
ENV_DATA_DIR, ENV_CACHE_DIR, ENV_DATA_URL = "MLP_DATA_DIR", "MLP_CACHE_DIR", "MLP_DATA_URL"
#: The raw file name of each role; the gzipped file adds ``.gz``.
FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
_IDX_TYPES = {8: "uint8", 9: "int8", 11: "int16", 12: "int32", 13: "float32", 14: "float64"}
_DIGITS = tuple(str(i) for i in range(10))


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's files: ``sha256`` of each role's decompressed file; ``.gz`` files at ``url``."""

    name: str
    url: str
    sha256: dict[str, str]
    class_names: tuple[str, ...] = _DIGITS
    n_train: int = 60000
    n_test: int = 10000
    image_shape: tuple[int, int] = (28, 28)
    embedded: bool = False  # ships inside the package


#: The datasets :func:`load` knows, by name.
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/", {
        "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    }, embedded=True),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", {
            "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        }, class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                        "Shirt", "Sneaker", "Bag", "Ankle boot")),
}


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Host NumPy arrays: ``x_train`` (N, 784) uint8 C-contiguous writeable pixels 0..255,
    ``y_train`` (N,) int64 classes ``0 .. num_classes - 1``; ``x_test``, ``y_test`` the same.
    A split not loaded has 0 rows."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] = _DIGITS

    @property
    def num_classes(self) -> int:
        """Number of classes: 10."""
        return len(self.class_names)

    @property
    def num_features(self) -> int:
        """Input features per example: 784 = 28*28."""
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={self.x_train.shape[0]}, "
                f"test={self.x_test.shape[0]}, features={self.num_features}, "
                f"classes={self.num_classes})")


def _open_regular(path: Path, label: str) -> IO[bytes]:
    """Open without blocking (a FIFO would wait for a writer); only a regular file is read."""
    try:
        return open_regular(path)
    except FileNotFoundError:
        raise DataError(f"{label}: file not found") from None
    except NotRegularFile:
        what = "is a folder" if path.is_dir() else "is not a regular file"
        raise DataError(f"{label}: {what}, not an IDX file") from None
    except OSError as exc:
        raise DataError(f"{label}: cannot open: {exc.strerror or exc}") from None


def _header(stream: IO[bytes], n: int, label: str, what: str) -> bytes:
    if len(data := stream.read(n)) < n:
        raise DataError(f"{label}: truncated IDX file: it ends inside the {what} "
                        f"({len(data)} of {n} bytes present)")
    return data


def _parse(stream: IO[bytes], size: int | None, label: str, spec: DatasetSpec, role: str,
           verify: bool) -> np.ndarray:
    """Header (checked against the dataset's file before any data is read), data, hash and
    labels of one file; ``size`` is the file's size when it is raw."""
    head = _header(stream, 4, label, "4-byte magic number")
    if head[:2] != b"\0\0":
        raise DataError(f"{label}: not an IDX file: it starts with bytes {head.hex(' ')}, an IDX "
                        "file starts with two zero bytes, a type code and the number of dimensions")
    code, ndim = head[2], head[3]
    if code not in _IDX_TYPES:
        raise DataError(f"{label}: unknown IDX type code 0x{code:02X} (known: {_IDX_TYPES})")
    if ndim > 32:
        raise DataError(f"{label}: absurd IDX header: {ndim} dimensions (at most 32)")
    head += _header(stream, 4 * ndim, label, "dimension sizes")
    dims = struct.unpack(f">{ndim}I", head[4:])
    kind, want = ("images", 3) if (images := role.endswith("images")) else ("labels", 1)
    magic = lambda code, ndim: f"magic 0x{(code << 8) | ndim:08X} = {(code << 8) | ndim}"
    if code != 0x08 or ndim != want:
        raise DataError(f"{label}: not an IDX {kind} file: expected uint8 with {want} dimension"
                        f"{'s' if images else ''} ({magic(0x08, want)}), found {_IDX_TYPES[code]} "
                        f"with {ndim} ({magic(code, ndim)})")
    count = spec.n_train if role.startswith("train") else spec.n_test
    if dims[0] != count:
        raise DataError(f"{label}: holds {dims[0]} {kind}, {spec.name} has {count} in this split")
    if images and dims[1:] != spec.image_shape:
        (h, w), (eh, ew) = dims[1:], spec.image_shape
        raise DataError(f"{label}: images are {h}x{w}, {spec.name} images are {eh}x{ew}")
    nbytes = math.prod(dims)
    declared = f"shape {dims} of uint8 ({nbytes} bytes of data)"
    available = nbytes if size is None else size - len(head)
    if available > nbytes:
        raise DataError(f"{label}: {available - nbytes} trailing bytes after the IDX data (the "
                        f"header declares {declared})")
    data = bytearray(nbytes)  # writeable, so the array over it is too
    got = stream.readinto(data)  # type: ignore[attr-defined]
    if got < nbytes:
        where = "decompressed file" if size is None else "file"
        raise DataError(f"{label}: truncated IDX data: the header declares {declared} but the "
                        f"{where} holds only {got} bytes after the header")
    if stream.read(1):  # one byte more at most: a long tail is never inflated
        raise DataError(f"{label}: trailing bytes after the IDX data (the header declares "
                        f"{declared})")
    digest = hashlib.sha256(head)
    digest.update(data)  # no copy of the data
    if verify and (got := digest.hexdigest()) != spec.sha256[role]:
        other = next((f"; this is the {o.name} file, not the {spec.name} one"
                      for o in DATASETS.values() if o.name != spec.name
                      and o.sha256.get(role) == got), "")
        raise DataError(f"{label}: hash mismatch: the SHA-256 of its decompressed contents is "
                        f"{got}, expected {spec.sha256[role]}{other}")
    array = np.frombuffer(data, dtype=np.uint8).reshape(dims)
    if not images and nbytes and (top := int(array.max())) >= len(spec.class_names):
        where = int(np.argmax(array >= len(spec.class_names)))
        raise DataError(f"{label}: label {top} out of range (first bad label at index "
                        f"{where}); {spec.name} has classes 0..{len(spec.class_names) - 1}")
    return array


def _read(path: Path, spec: DatasetSpec, role: str, *, verify: bool, label: str) -> np.ndarray:
    """One verified file, gzipped or raw (told apart by the gzip magic bytes, not the name)."""
    with _open_regular(path, label) as f:
        try:
            gz = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            if not gz:
                return _parse(f, os.fstat(f.fileno()).st_size, label, spec, role, verify)
            with gzip.GzipFile(fileobj=f, mode="rb") as stream:
                return _parse(stream, None, label, spec, role, verify)  # type: ignore[arg-type]
        except EOFError:
            raise DataError(f"{label}: truncated gzip file: it ends before the compressed data "
                            "does (an incomplete download or copy?)") from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            why = ("the CRC check of the decompressed data failed" if "check failed" in str(exc)
                   or "length" in str(exc) else "unexpected bytes after the compressed data"
                   if "Not a gzipped file" in str(exc) else str(exc))
            raise DataError(f"{label}: corrupted gzip file: {why}") from None
        except OSError as exc:
            raise DataError(f"{label}: read error: {exc.strerror or exc}") from None


def _spec(name: str) -> DatasetSpec:
    key = str(name).strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[key]


def cache_path(name: str = "mnist", cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder of a dataset: ``<root>/<name>``, with the root ``cache_dir``, else
    ``$MLP_CACHE_DIR``, else ``pooch.os_cache("array-api-mlp")``."""
    root: Any = cache_dir or os.environ.get(ENV_CACHE_DIR)
    if not root:
        import pooch  # here: importing it takes a while

        root = pooch.os_cache("array-api-mlp")
    return Path(root).expanduser() / _spec(name).name


def embedded_path(name: str = "mnist") -> Path | None:
    """The folder of the copy shipped inside the package, or ``None`` when none is shipped."""
    return Path(__file__).with_name(spec.name) if (spec := _spec(name)).embedded else None


def _find(folder: Path, role: str) -> Path | None:
    return next((folder / f for f in (FILES[role] + ".gz", FILES[role])
                 if os.path.lexists(folder / f)), None)


def _what_to_do(spec: DatasetSpec, folder: Path) -> str:
    return (f"put the {spec.name} files in {folder}, or point --data-dir or {ENV_DATA_DIR} at a "
            "folder holding them")


def _from_user_folder(spec: DatasetSpec, base: Path, source: str, roles: list[str],
                      verify: bool) -> dict[str, np.ndarray]:
    if not base.is_dir():
        try:
            what = f"is {kind(os.stat(base).st_mode)}, not a folder"
        except FileNotFoundError:
            what = "does not exist"
        except OSError as exc:
            what = f"cannot be read: {exc.strerror or exc}"
        raise DataError(f"{spec.name}: data folder {base} ({source}) {what}")
    folder = base / spec.name if (base / spec.name).is_dir() else base
    paths = {role: _find(folder, role) for role in roles}
    missing = [f"{FILES[r]}.gz (or {FILES[r]})" for r in roles if paths[r] is None]
    if missing:
        raise DataError(f"{spec.name}: {', '.join(missing)} not found in {folder} ({source}); "
                        f"put the files there, or leave --data-dir and {ENV_DATA_DIR} unset")
    return {r: _read(p, spec, r, verify=verify, label=str(p)) for r, p in paths.items() if p}


def _download(spec: DatasetSpec, role: str, folder: Path, base_url: str, verify: bool,
              progress: bool) -> np.ndarray:
    """One ``.gz`` file into ``folder``, verified before pooch moves it into place."""
    import pooch

    fname = FILES[role] + ".gz"
    url = base_url.replace("{name}", spec.name)
    url += ("" if url.endswith("/") else "/") + fname
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    arrays: list[np.ndarray] = []

    def fetch(url: str, output_file: Any, pooch_: Any, check_only: bool = False) -> None:
        pooch.downloaders.choose_downloader(url, progressbar=progress)(url, output_file, pooch_)
        label = f"{fname} downloaded from {url}"
        arrays.append(_read(Path(output_file), spec, role, verify=verify, label=label))

    logger, level = pooch.get_logger(), pooch.get_logger().level
    logger.setLevel(max(level, logging.WARNING))  # no "Downloading ..." lines from pooch
    try:
        pooch.retrieve(url, known_hash=None, fname=fname, path=folder, downloader=fetch)
        return arrays[0]
    except DataError as exc:  # the verification, before the file was moved into place
        error = f"{exc}; the download was discarded, nothing was saved in {folder}"
    except (OSError, ValueError) as exc:  # requests' errors are OSErrors
        error = f"could not download {fname} from {url}: {exc}; {_what_to_do(spec, folder)}"
    finally:
        logger.setLevel(level)
    with contextlib.suppress(OSError):  # stops at the first folder that is not empty
        for made_folder in made:
            made_folder.rmdir()
    raise DataError(error)


def _shipped_or_cached(spec: DatasetSpec, role: str, *, cache_dir: Any, download: bool,
                       base_url: str, verify: bool, progress: bool) -> np.ndarray:
    shipped = embedded_path(spec.name)
    if shipped is not None and (path := _find(shipped, role)) is not None:
        try:
            return _read(path, spec, role, verify=verify, label=str(path))
        except DataError as exc:
            raise DataError(f"{exc}; the copy shipped with the package is damaged: reinstall "
                            "array-api-mlp") from None
    cache = cache_path(spec.name, cache_dir)
    if (path := _find(cache, role)) is not None:
        try:
            return _read(path, spec, role, verify=verify, label=str(path))
        except DataError as exc:
            path.unlink(missing_ok=True)  # never keep a bad file in the cache
            if not download:
                raise DataError(f"{exc}; removed it from the cache") from None
            log.warning("%s; removed it from the cache, downloading it again", exc)
    if not download:
        raise DataError(f"{spec.name}: {FILES[role]}.gz is not in the cache {cache} and "
                        f"downloading is off; {_what_to_do(spec, cache)}")
    return _download(spec, role, cache, base_url, verify, progress)


def load(
    name: str = "mnist",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    split: Literal["train", "test"] | None = None,
    download: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    progress: bool = False,
    verify: bool = True,
) -> Dataset:
    """Load ``"mnist"`` or ``"fashion-mnist"`` as a :class:`Dataset`; failures: :class:`DataError`.

    ``split="train"`` / ``"test"`` reads only that split (the other has 0 rows). The cache root is
    ``cache_dir``, else ``$MLP_CACHE_DIR``; downloads (if ``download``) come from ``base_url``,
    else ``$MLP_DATA_URL``, else the dataset's mirror (a progress bar if ``progress``).
    ``verify=False`` skips the hash check, never the structure checks.
    """
    spec = _spec(name)
    if split not in (None, "train", "test"):
        raise DataError(f"unknown split {split!r}; choose 'train' or 'test'")
    features = math.prod(spec.image_shape)
    roles = [f"{s}_{kind}" for s in ((split,) if split else ("train", "test"))
             for kind in ("images", "labels")]
    source = "--data-dir"
    if data_dir is None and os.environ.get(ENV_DATA_DIR):
        data_dir, source = os.environ[ENV_DATA_DIR], ENV_DATA_DIR
    if data_dir is not None:
        arrays = _from_user_folder(spec, Path(data_dir).expanduser(), source, roles, verify)
    else:
        url = base_url or os.environ.get(ENV_DATA_URL) or spec.url
        arrays = {r: _shipped_or_cached(spec, r, cache_dir=cache_dir, download=download,
                                        base_url=url, verify=verify, progress=progress)
                  for r in roles}

    def xy(s: str) -> tuple[np.ndarray, np.ndarray]:
        if f"{s}_images" not in arrays:
            return np.zeros((0, features), np.uint8), np.zeros(0, np.int64)
        x = arrays[f"{s}_images"]  # C-ordered: the reshape is a view
        return x.reshape(x.shape[0], features), arrays[f"{s}_labels"].astype(np.int64)

    return Dataset(spec.name, *xy("train"), *xy("test"), class_names=spec.class_names)
