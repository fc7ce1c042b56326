"""``python -m benchmarks [options]``: run the suite and write the report; ``mlp bench`` runs
this in a process of its own. A missing extra is one line; Ctrl-C and SIGTERM stop the suite's
pytest too and end quietly with 130 and 143 (``mlp bench`` says it was stopped)."""

from __future__ import annotations

import signal
import sys


class _Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds like Ctrl-C, so the runner stops the pytest it started."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def _run() -> int:
    try:
        from .run import command
    except ImportError as exc:
        print(f"mlp bench: error: the benchmark suite needs its extra ({exc}): "
              'pip install ".[bench]"', file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return command(sys.argv[1:])
    except KeyboardInterrupt as exc:
        return 143 if isinstance(exc, _Terminated) else 130


raise SystemExit(_run())
