"""The data-parallel scaling report: the ring-allreduce model and its tables, on synthetic
measurements (the measurement itself runs under MPI with ``mlp bench --scaling``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import scaling


def test_a_ring_allreduce_moves_2_p_minus_1_over_p_times_the_gradient() -> None:
    # 1e6 float32 parameters over 8 Gb/s (1 GB/s): 2 * 3/4 * 4 MB / 1 GB/s = 6 ms at P = 4.
    assert scaling.ring_seconds(10**6, 4, 8.0) == pytest.approx(6e-3)
    assert scaling.ring_seconds(10**6, 1, 8.0) == 0.0


def test_efficiency_and_the_batch_from_which_it_stays_above_90_percent() -> None:
    sample_s, n, gbit = 1e-4, 10**6, 10.0
    assert scaling.efficiency(sample_s, 128, n, 2, gbit) == pytest.approx(
        0.0128 / (0.0128 + scaling.ring_seconds(n, 2, gbit)))
    b = scaling.min_batch_90(sample_s, n, gbit)
    for p in (2, 8, 64, 10**6):
        assert scaling.efficiency(sample_s, b, n, p, gbit) >= 0.9
    assert scaling.efficiency(sample_s, math.floor(0.9 * b), n, 10**6, gbit) < 0.9


def _rows() -> list[dict]:
    rows = []
    for sizes in scaling.NETWORKS:
        parameters = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
        for batch in scaling.BATCHES:
            for ranks, threads, overlap in ((1, 1, False), (1, 2, False), (2, 1, False),
                                            (2, 1, True)):
                compute = 0.05 * batch / threads
                reduce = 0.0 if ranks == 1 else 2.0
                rows.append({"sizes": sizes, "parameters": parameters, "batch": batch,
                             "ranks": ranks, "threads": threads, "overlap": overlap,
                             "compute_ms": compute, "allreduce_ms": reduce,
                             "step_ms": compute + reduce})
    return rows


def test_the_report_and_plot_from_measurements(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rows = _rows()
    text = scaling.markdown(rows)
    assert "| 2 ranks x 1 thread, overlapped |" in text
    assert "samples per rank for >= 90 %" in text
    for gbit in scaling.LINKS_GBIT:
        assert f"| {gbit} Gb/s |" in text
    scaling.plot(rows, tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").stat().st_size > 10_000
