"""pytest configuration of the benchmark suite: markers, backend selection, machine description.

Options (besides pytest-benchmark's own):

* ``--bench-backends numpy,torch``: run only these backends (and the PyTorch peer only on the
  devices they use).
* ``--bench-epoch-rounds N``: rounds of each epoch benchmark (default 3).
* ``--bench-sklearn-epochs N``: epochs (``max_iter``) of each fit in the comparison with
  scikit-learn's ``MLPClassifier`` (default 2).
* ``--bench-smoke``: only the smallest model at the smallest batch, and epochs of
  :data:`~benchmarks.workloads.SMOKE_EPOCH_SAMPLES` samples: with ``--benchmark-disable`` a quick
  check that every workload runs (the test suite's ``tests/test_bench_smoke.py``), not a timing.
"""

from __future__ import annotations

from typing import Any

import pytest

from .workloads import BACKEND_IDS, CPU_BATCHES, SMALLEST, SPECS

MARKERS = (
    "quick: the small selection of 'mlp bench --quick' (784-512-512-10, batch 128, float32, "
    "and the epoch benchmark)",
    "epoch: a full training epoch (the headline benchmark)",
    "bench_target(backend=None, device=None): the backend id or the PyTorch peer's device a "
    "benchmark times (used by --bench-backends)",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("array-api-mlp benchmarks")
    group.addoption("--bench-backends", default=None, metavar="IDS",
                    help=f"comma-separated backends to run, of: {', '.join(BACKEND_IDS)}")
    group.addoption("--bench-epoch-rounds", type=int, default=3, metavar="N",
                    help="rounds of each epoch benchmark (default 3)")
    group.addoption("--bench-sklearn-epochs", type=int, default=2, metavar="N",
                    help="epochs of each fit in the comparison with scikit-learn (default 2)")
    group.addoption("--bench-smoke", action="store_true",
                    help="smallest configurations and a short epoch: checks that the workloads "
                         "run (use with --benchmark-disable)")


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)


def selected_backends(config: pytest.Config) -> set[str] | None:
    """The backend ids chosen with ``--bench-backends``, or ``None`` for all."""
    text = config.getoption("--bench-backends")
    if not text:
        return None
    wanted = {name.strip() for name in text.split(",") if name.strip()}
    unknown = wanted - set(BACKEND_IDS)
    if unknown:
        raise pytest.UsageError(
            f"unknown benchmark backend(s) {', '.join(sorted(unknown))}: "
            f"choose from {', '.join(BACKEND_IDS)}"
        )
    return wanted


def _smallest(item: pytest.Item) -> bool:
    """Whether a per-step benchmark is at the smallest size and batch (epochs always are kept)."""
    params = getattr(item, "callspec", None)
    for value in (params.params.values() if params is not None else ()):
        if hasattr(value, "size") and hasattr(value, "batch"):
            return value.size == SMALLEST and value.batch == CPU_BATCHES[0]
    return True


def _chosen(item: pytest.Item, wanted: set[str], devices: set[str]) -> bool:
    """Whether a benchmark times one of the ``wanted`` backends, or a peer on their devices."""
    bench = item.get_closest_marker("bench_target")
    target = bench.kwargs if bench is not None else {}
    if "backend" in target:
        return target["backend"] in wanted
    if "device" in target:
        return target["device"] in devices
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the backends not chosen with ``--bench-backends`` (peers follow the devices) and,
    with ``--bench-smoke``, every configuration but the smallest."""
    wanted = selected_backends(config)
    smoke = config.getoption("--bench-smoke")
    devices = set() if wanted is None else {SPECS[name].device_kind for name in wanted}
    keep, drop = [], []
    for item in items:
        ok = (not smoke or _smallest(item)) and (wanted is None or _chosen(item, wanted, devices))
        (keep if ok else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_benchmark_update_machine_info(
    config: pytest.Config, machine_info: dict[str, Any]
) -> None:
    """Store the machine description (CPU, BLAS threads, GPU, versions) in the JSON."""
    from .machine import collect

    machine_info["mlp"] = collect()
