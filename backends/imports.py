"""Importing an optional library (Numba, PyTorch, JAX, CuPy, array-api-strict) so that a broken
install is one clear error naming it, never a traceback from deep inside or a hang.

The import runs in a daemon thread given :data:`TIMEOUT` seconds; one that does not finish
(a library stuck in its start-up) is abandoned and never tried again in this process, since a
second import of it would wait for the first. Each outcome is remembered.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType

#: Seconds an optional library's import may take (a cold first import of PyTorch takes
#: several on a slow disk).
TIMEOUT = 60.0

_failed: dict[str, ImportError] = {}


class BrokenImport(ImportError):
    """An installed library that raises while importing, or does not finish importing."""


def load(name: str) -> ModuleType:
    """The module ``name``, imported with a deadline.

    Raises:
        ModuleNotFoundError: ``name`` is not installed.
        BrokenImport: importing it raised (the message names the library and the error) or
            did not finish within :data:`TIMEOUT` seconds.
    """
    if name in _failed:
        raise _failed[name]
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["module"] = importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - SystemExit from a library counts too
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"import {name}", daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    error: ImportError
    if thread.is_alive():
        error = BrokenImport(f"importing {name} did not finish within {TIMEOUT:g} s")
    elif "module" in outcome:
        return outcome["module"]  # type: ignore[return-value]
    else:
        exc = outcome["error"]
        if isinstance(exc, ModuleNotFoundError) and exc.name == name:
            error = exc
        else:
            detail = " ".join(str(exc).split()) or "no message"
            error = BrokenImport(f"{name} is installed but fails to import "
                                 f"({type(exc).__name__}: {detail[:300]})")
    _failed[name] = error
    raise error
