"""The benchmark suite of array-api-mlp and its report.

``mlp bench`` runs ``python -m benchmarks`` (:func:`benchmarks.run.command`) in a process of its
own; :func:`benchmarks.run.main` runs :mod:`benchmarks.test_bench` with pytest-benchmark and
turns the JSON into ``REPORT.md`` with plots (:mod:`benchmarks.report`, :mod:`benchmarks.plots`,
both drawn from :mod:`benchmarks.rows`) in a results folder.
"""
