"""The ``mlp`` command: ``train``, ``evaluate``, ``info`` and ``bench``.

``main`` is the console script's entry point; :data:`~mlp.cli.app.COMMANDS` is the registry of
sub-commands. Modules: ``parser`` (options), ``settings`` (defaults, presets, ``--resume``
rules), ``outputs`` (output files, their checks and locks), ``resources`` (memory, threads),
``report`` (what a run prints), ``train``, ``evaluate``, ``info``, ``bench``.
"""

from .app import COMMANDS, Command, build_parser, main
from .settings import DEFAULTS, PRESETS

__all__ = ["COMMANDS", "DEFAULTS", "PRESETS", "Command", "build_parser", "main"]
