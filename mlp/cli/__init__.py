"""The ``mlp`` command: ``train``, ``evaluate``, ``predict``, ``info`` and ``bench``.

``main`` is the console script's entry point; :data:`~mlp.cli.app.COMMANDS` is the registry of
sub-commands. Modules: ``parser`` (options), ``settings`` (defaults, presets, ``--resume``
rules), ``outputs`` (output files, their checks and locks), ``resources`` (memory, threads),
``report`` (what a run prints), ``train``, ``evaluate``, ``predict``, ``info``, ``bench``.
"""

from typing import Any

from .app import COMMANDS, Command, build_parser, main


def __getattr__(name: str) -> Any:
    if name in ("DEFAULTS", "PRESETS"):  # imported on use: they load the library
        from . import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'mlp.cli' has no attribute {name!r}")

__all__ = ["COMMANDS", "DEFAULTS", "PRESETS", "Command", "build_parser", "main"]
