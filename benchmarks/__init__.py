"""The benchmark suite of array-api-mlp and its report.

``mlp bench`` (or ``python -m benchmarks``) calls :func:`benchmarks.run.main`, which runs
:mod:`benchmarks.test_bench` with pytest-benchmark and turns the JSON into ``REPORT.md`` with
plots (:mod:`benchmarks.report`, :mod:`benchmarks.plots`) in a results folder.
"""
