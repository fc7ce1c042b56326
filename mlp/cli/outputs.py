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
    if path is not None and Path(path).suffix.lower() not in PLOT_FORMATS:
        raise UsageError(f"--plot {path}: the format comes from the suffix, one of "
                         f"{', '.join(PLOT_FORMATS)}")


def check_distinct(paths: dict[str, str | None]) -> None:
    """Refuse (UsageError) two options naming the same file (after symbolic links), except
    ``--save`` = ``--resume``, which continues a run in place."""
    seen: dict[str, str] = {}
    for option, path in paths.items():
        if path is None:
            continue
        real = os.path.realpath(path)
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


def check_metrics_continues(path: Path, history: list[dict[str, Any]], overwrite: bool) -> bool:
    """On ``--resume``: whether ``path`` is this run's metrics file, to append to (one JSON
    object per finished epoch, the checkpoint's epochs, the first with the same numbers).
    ``False`` for a missing or empty file, or a foreign one with ``overwrite``: it is then
    written anew, starting with the checkpoint's epochs. A foreign file without ``overwrite``
    raises UsageError (nothing is written)."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    why = _metrics_mismatch(path, history)
    if why and not overwrite:
        raise UsageError(f"--metrics {path}: not this run's metrics file ({why}); give a new "
                         "file, or --overwrite to replace it")
    return not why


def _metrics_mismatch(path: Path, history: list[dict[str, Any]]) -> str:
    with naming(path), open(path, "rb") as f:
        head = f.read(1 << 20)
    try:
        lines = [json.loads(line) for line in head.decode().splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "it does not hold JSON lines"
    if not all(isinstance(m, dict) and set(METRIC_KEYS) <= set(m) for m in lines):
        return "its lines are not per-epoch metrics"
    epochs = [m["epoch"] for m in lines]
    if epochs != [m["epoch"] for m in history]:
        return f"it holds {len(epochs)} epochs, the checkpoint {len(history)}"
    if lines and any(lines[0][k] != history[0].get(k) for k in ("train_loss", "train_acc")):
        return "its first epoch differs from the checkpoint's"
    return ""


class MetricsWriter:
    """Appends one JSON line per epoch: one ``write`` call per line, so lines are whole."""

    def __init__(self, path: Path, append: bool) -> None:
        self.path = path
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
        with naming(path):
            self._fd = os.open(path, flags, 0o644)

    def write(self, metrics: dict[str, Any]) -> None:
        data = (json.dumps(metrics) + "\n").encode()
        with naming(self.path):
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "the line was written only in part", str(self.path))

    def close(self) -> None:
        os.close(self._fd)
