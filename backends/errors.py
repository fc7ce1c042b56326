"""Errors raised at the backend edge."""

from __future__ import annotations


class BackendError(RuntimeError):
    """A backend cannot be used as asked: library missing, no device, dtype unsupported.

    The message always says what to install or choose instead.
    """
