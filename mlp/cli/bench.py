"""``mlp bench``: every argument goes to the benchmark runner of a source checkout."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import MLPError


def cmd_bench(argv: list[str]) -> int:
    try:
        from benchmarks.run import main as bench_main
    except ImportError:
        root = Path(__file__).resolve().parents[2]
        if not (root / "benchmarks" / "run.py").exists():
            raise MLPError("mlp bench runs the suite in benchmarks/ of a source checkout; "
                           "clone the repository and install it with pip install -e .[bench]"
                           ) from None
        sys.path.insert(0, str(root))
        from benchmarks.run import main as bench_main
    return bench_main(argv)
