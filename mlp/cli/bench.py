"""``mlp bench``: every argument goes to the benchmark runner (``benchmarks.run``).

``--report-only`` rebuilds the report from the results already in ``--out``: the report is
made from them, so replacing it needs no ``--overwrite``."""

from __future__ import annotations

from ..errors import MLPError


def cmd_bench(argv: list[str]) -> int:
    try:
        from benchmarks.run import build_parser
        from benchmarks.run import main as bench_main
    except ImportError as exc:
        raise MLPError(f"mlp bench needs the benchmark suite and its extra ({exc}): "
                       'pip install ".[bench]"') from None
    args, _ = build_parser().parse_known_args(argv)  # a bad option is the runner's to report
    if args.report_only and not args.overwrite:
        argv = [*argv, "--overwrite"]
    return bench_main(argv)
