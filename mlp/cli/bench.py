"""``mlp bench``: the benchmark suite's own command (``python -m benchmarks``), run in a process
of its own with every argument passed on; its exit status is the command's.

The suite sits above the library (it imports ``mlp``; ``mlp`` never imports it), so ``mlp`` only
finds where it is. The child runs with this process's module path: the suite it runs is the
one found here, not a folder named ``benchmarks`` in the current directory. ``--report-only``
rebuilds the report from the results already in ``--out``: the report is made from them, so
replacing it needs no ``--overwrite`` (the suite's command line applies that rule).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

from ..errors import MLPError

SUITE = "benchmarks"
#: The child's program: this process's module path, then ``python -m benchmarks ARGS``.
_ENTRY = ("import json, runpy, sys; sys.path[:] = json.loads(sys.argv.pop(1)); "
          f"runpy.run_module({SUITE!r}, run_name='__main__', alter_sys=True)")


def suite_command(argv: list[str]) -> list[str]:
    """The command line that runs ``python -m benchmarks ARGV`` with this process's module
    path; an :class:`MLPError` when the suite is not installed."""
    if importlib.util.find_spec(SUITE) is None:
        raise MLPError(f"mlp bench needs the benchmark suite and its extra (no module named "
                       f'{SUITE!r}): pip install ".[bench]"')
    return [sys.executable, "-c", _ENTRY, json.dumps([str(p) for p in sys.path]), *argv]


def cmd_bench(argv: list[str]) -> int:
    """Run the suite's command with ``argv``; returns its exit status (128 + N when signal N
    ended it). Stopping ``mlp`` (Ctrl-C, SIGTERM) stops the suite and waits for it."""
    with subprocess.Popen(suite_command(argv)) as child:
        try:
            status = child.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the suite too, a SIGTERM only mlp
            child.terminate()
            child.wait()
            raise
    return status if status >= 0 else 128 - status
