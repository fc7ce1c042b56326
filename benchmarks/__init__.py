"""The benchmark suite of array-api-mlp and its report.

``mlp bench`` (or ``python -m benchmarks``) runs :mod:`benchmarks.test_bench` with
pytest-benchmark and turns the JSON into ``benchmarks/REPORT.md`` with plots
(:mod:`benchmarks.report`). See :mod:`benchmarks.run` for the options.
"""
