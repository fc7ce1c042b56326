"""The files a training run writes: checked before training, claimed for the run's lifetime.

Every check here runs before any data is read: an output that exists (without ``--overwrite``),
is not a regular file, lies in a missing folder, or names the same file as another output is
refused; each output's folder must be writable (proved by creating the output's lock file).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import MLPError
from .settings import UsageError

#: Where an interrupted run without ``--save`` leaves its checkpoint (in the working folder).
DEFAULT_INTERRUPT_CHECKPOINT = "mlp-interrupted.safetensors"
PLOT_FORMATS = (".png", ".pdf", ".svg")
#: Keys every line of a metrics file has (see :class:`mlp.train.Trainer`).
METRIC_KEYS = ("epoch", "train_loss", "train_acc", "seconds", "lr")
_SUFFIXES = {"--save": ".safetensors", "--metrics": ".jsonl", "--plot": ".png"}


@contextlib.contextmanager
def naming(path: str | os.PathLike[str]) -> Iterator[None]:
    """Give an ``OSError`` raised inside (e.g. a full disk on ``write``) the file's name."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise


def check_output(path: str | None, option: str, overwrite: bool) -> Path | None:
    """Refuse ``path`` (UsageError) when it is a folder or not a regular file (a FIFO, a device,
    a symbolic link: never replaced, even with ``--overwrite``), when it exists without
    ``overwrite``, or when its folder does not exist."""
    if path is None:
        return None
    if path.endswith(("/", os.sep)):  # Path() would drop the slash and write a file there
        raise UsageError(f"{option} {path}: names a folder (it ends with /); give a file name, "
                         f"such as {path}run{_SUFFIXES.get(option, '')}")
    p = Path(path)
    try:
        mode = p.lstat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise UsageError(f"{option} {path}: is a folder, not a file")
    if mode is not None and not stat.S_ISREG(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
        raise UsageError(f"{option} {path}: is {kind}; mlp replaces only regular files")
    if mode is not None and not overwrite:
        raise UsageError(f"{option} {path}: the file exists; pass --overwrite to replace it")
    folder = p.parent
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: folder {folder} does not exist")
    return p


def check_plot_format(path: str | None) -> None:
    if path is not None and not path.endswith(("/", os.sep)) and (
            Path(path).suffix.lower() not in PLOT_FORMATS):  # a folder: see check_output
        raise UsageError(f"--plot {path}: the format comes from the suffix, one of "
                         f"{', '.join(PLOT_FORMATS)}")


def file_identity(path: str | os.PathLike[str]) -> tuple[Any, ...]:
    """What tells files apart: device and inode of an existing file (so a hard link or a
    symbolic link is the file it names), else the resolved path."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.realpath(path))
    return ("inode", st.st_dev, st.st_ino)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return file_identity(a) == file_identity(b)


def check_distinct(paths: dict[str, str | None]) -> None:
    """Refuse (UsageError) two options naming the same file (through symbolic or hard links),
    except ``--save`` = ``--resume``, which continues a run in place."""
    seen: dict[tuple[Any, ...], str] = {}
    for option, path in paths.items():
        if path is None:
            continue
        real = file_identity(path)
        other = seen.get(real)
        if other is not None and {other, option} != {"--save", "--resume"}:
            raise UsageError(f"{other} and {option} name the same file {path}; give each "
                             "its own file")
        seen.setdefault(real, option)


def check_fallback_folder(folder: Path = Path(".")) -> None:
    """Without ``--save`` an interrupt writes :data:`DEFAULT_INTERRUPT_CHECKPOINT` here: make
    sure that can work before training (UsageError otherwise)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".mlp-write-test-"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write in the working folder {folder.resolve()} "
                         f"({exc.strerror}), where an interrupted run saves its checkpoint; "
                         "pass --save FILE") from None


def free_path(path: Path) -> Path:
    """``path``, or ``stem-1.suffix``, ``stem-2.suffix``... whichever does not exist yet."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


# --- one run per output file -----------------------------------------------------------------


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def claimed(paths: dict[str, Path | None]) -> Iterator[None]:
    """Hold an exclusive claim (``flock`` on a lock file beside each output, holding this
    process's PID) for the duration; another run's claim raises MLPError naming its PID."""
    with contextlib.ExitStack() as stack:
        for option, path in paths.items():
            if path is not None:
                stack.enter_context(_claim(option, path))
        yield


@contextlib.contextmanager
def _claim(option: str, path: Path) -> Iterator[None]:
    lock = lock_path(path)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise MLPError(f"{option} {path}: in use by another mlp run (PID {pid}); wait for "
                           "it to finish or choose another file") from None
        try:  # the file we locked may have been removed by its last holder in the meantime
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


# --- the metrics file -----------------------------------------------------------------------


def is_empty_file(path: str | None) -> bool:
    """Whether ``path`` is an empty regular file (what a run killed before its first metrics
    line leaves): an output that may be written without ``--overwrite``."""
    try:
        st = os.lstat(path) if path is not None else None
    except OSError:
        return False
    return st is not None and stat.S_ISREG(st.st_mode) and st.st_size == 0


def check_metrics_continues(path: Path, history: list[dict[str, Any]], overwrite: bool) -> bool:
    """On ``--resume``: whether to append to ``path`` (``True``), or to write it anew, starting
    with the checkpoint's epochs (``False``).

    This run's metrics file holds the checkpoint's epochs, one whole JSON line each: appended
    to. A missing or empty file, one cut short (a run killed between its checkpoint and its
    metrics line, or a torn last line) or one holding epochs past the checkpoint's (a run
    killed between its metrics line and its checkpoint), its lines otherwise the checkpoint's,
    is written anew; so is a foreign file with ``overwrite``. A foreign file without
    ``overwrite`` raises UsageError (nothing is written)."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    why, exact = _metrics_match(path, history)
    if why and not overwrite:
        raise UsageError(f"--metrics {path}: not this run's metrics file ({why}); give a new "
                         "file, or --overwrite to replace it")
    return exact and not why


def _metrics_match(path: Path, history: list[dict[str, Any]]) -> tuple[str, bool]:
    """Why ``path`` is not this run's metrics file (``""`` when it is), and whether it holds
    exactly the checkpoint's epochs as whole lines."""
    limit = 1 << 20
    with naming(path), open(path, "rb") as f:
        head = f.read(limit + 1)
    parts = head[:limit].split(b"\n")
    torn = parts.pop()  # past the last newline: empty unless the last line was cut short
    try:
        lines = [json.loads(line) for line in parts if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "it does not hold JSON lines", False
    if not all(isinstance(m, dict) and set(METRIC_KEYS) <= set(m) for m in lines):
        return "its lines are not per-epoch metrics", False
    epochs, done = [m["epoch"] for m in lines], [m["epoch"] for m in history]
    common = min(len(epochs), len(done))
    if epochs[:common] != done[:common] or (lines and not common):
        return f"it holds {len(epochs)} epochs, the checkpoint {len(history)}", False
    for got, want in zip(lines[:common], history[:common], strict=True):
        if any(got[k] != want.get(k) for k in ("train_loss", "train_acc")):
            return f"its epoch {got['epoch']} differs from the checkpoint's", False
    return "", not torn and len(head) <= limit and len(epochs) == len(done)


class MetricsWriter:
    """Appends one JSON line per epoch: one ``write`` call per line, and a line the disk has
    no room for is removed again, so the file holds whole lines only."""

    def __init__(self, path: Path, append: bool) -> None:
        self.path = path
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
        with naming(path):
            self._fd = os.open(path, flags, 0o644)

    def write(self, metrics: dict[str, Any]) -> None:
        data = memoryview((json.dumps(metrics) + "\n").encode())
        with naming(self.path):
            start = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                while data:  # a short write (a full disk) ends in an error on the next one
                    data = data[os.write(self._fd, data):]
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)
                raise

    def close(self) -> None:
        os.close(self._fd)
