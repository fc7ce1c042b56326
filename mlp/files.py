"""Safe file plumbing: read only regular files (never block on a FIFO or a device), and write
files atomically (temporary file in the same folder, ``fsync``, rename) without ever replacing
anything but a regular file. Every failure is an :class:`OSError` whose message says why."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path
from typing import BinaryIO

# Temporary files of atomic_write(): ".<target name>.mlp-<pid>-<12 hex digits>.tmp".
_TEMP = re.compile(r"\..+\.mlp-(\d+)-[0-9a-f]{12}\.tmp")


class NotRegularFile(OSError):
    """The path is a directory, FIFO, device, socket or (when writing) a symbolic link."""


def kind(mode: int) -> str:
    """What an ``st_mode`` is, in words (``"a FIFO"``)."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a device"


def shown(path: str | os.PathLike[str] | bytes) -> str:
    """``path`` as text that prints under any encoding: the bytes of a file name that are not
    UTF-8 (``b'bad\\xff.png'``) become U+FFFD instead of raising when printed."""
    text = os.fsdecode(path)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file (symbolic links followed).

    The open never blocks (``O_NONBLOCK``), so a FIFO is refused at once instead of waiting for
    a writer. Raises :class:`NotRegularFile`, ``FileNotFoundError`` or another ``OSError``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except ValueError as exc:  # a NUL byte in the name
        raise OSError(str(exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"it is {kind(mode)}, not a regular file")
        return open(fd, "rb")  # noqa: SIM115 - the caller's to close
    except BaseException:
        os.close(fd)
        raise


def atomic_write(path: str | os.PathLike[str], data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` so that it appears whole or not at all.

    The bytes go to a temporary file in the same folder (missing folders are created), which
    is flushed to disk and renamed over ``path``; on any failure, interrupts included, the
    temporary file is removed and the previous file is untouched. Temporary files that killed
    processes left in that folder are removed first.

    Raises:
        NotRegularFile: something other than a regular file is at ``path`` (never replaced).
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        OSError: the folder cannot be created or the file cannot be written.
    """
    target = Path(path)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        mode = os.lstat(target).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"it is {kind(mode)}, not a regular file; refusing to replace it")
        if not overwrite:
            raise FileExistsError(f"{target} exists")
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(folder)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    tmp: str | None = os.path.join(
        folder, f".{target.name[:200]}.mlp-{os.getpid()}-{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, flags, 0o666)
    try:
        try:
            _write_bytes(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, target)
            tmp = None
        else:
            _link_new(tmp, target)
        _fsync_folder(folder)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def remove_stale_temps(folder: str | os.PathLike[str]) -> None:
    """Delete the temporary files of :func:`atomic_write` calls whose process died (e.g. by
    SIGKILL) in ``folder``: only names of its pattern, only regular files, only when the PID
    recorded in the name is no longer running."""
    if os.name != "posix":  # os.kill(pid, 0) probes a process only on POSIX
        return
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            match = _TEMP.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False) and not _alive(int(match[1])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except OSError:  # EPERM: it runs, under another user
        return True
    return True


def _write_bytes(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _link_new(tmp: str, target: Path) -> None:
    """Put ``tmp`` at ``target`` only if nothing is there (atomically where links work)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system: check, then rename (not race-free)
        if os.path.lexists(target):
            raise FileExistsError(f"{target} exists") from None
        os.replace(tmp, target)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX; a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
