"""``mlp bench``: every argument goes to the benchmark runner (``benchmarks.run``)."""

from __future__ import annotations

from ..errors import MLPError


def cmd_bench(argv: list[str]) -> int:
    try:
        from benchmarks.run import main as bench_main
    except ImportError as exc:
        raise MLPError(f"mlp bench needs the benchmark suite and its extra ({exc}): "
                       'pip install "array-api-mlp[bench]"') from None
    return bench_main(argv)
