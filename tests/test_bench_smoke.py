"""The benchmarks run: every workload of the real suite at its smallest size (so a broken one
fails the test suite), and ``mlp bench`` writes into its results folder, replacing a report only
when told to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytest_benchmark", reason="the benchmarks need pytest-benchmark")

import benchmarks  # noqa: E402 - after the skip: the suite's own imports need pytest-benchmark

SUITE = Path(benchmarks.__file__).resolve().parent
#: One tiny per-step benchmark: enough for a real JSON, a report and a plot in a few seconds.
TINY = ["--backends", "numpy", "-k", "test_step and numpy-784-100-10-b128-float32",
        "--min-rounds", "1", "--max-time", "0.001"]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_every_workload_runs(tmp_path: Path) -> None:
    """The whole CPU suite once (no timing): smallest configurations and a short epoch."""
    done = _run(["-m", "pytest", str(SUITE / "test_bench.py"), "--benchmark-disable",
                 "--bench-smoke", "-m", "not gpu", "-p", "no:cacheprovider", "-q",
                 f"--junitxml={tmp_path / 'junit.xml'}"], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    import xml.etree.ElementTree as ET

    suite = next(ET.parse(tmp_path / "junit.xml").getroot().iter("testsuite"))
    ran = int(suite.get("tests", 0)) - int(suite.get("skipped", 0))
    # forward, backward, step and floor of numpy and array_api_strict at both dtypes, the numpy
    # epoch and its floor, the epoch contest (every contestant whose library is installed, the
    # CLI included) and the phase breakdown run everywhere; torch adds its own and the peers.
    assert ran >= 20
    assert int(suite.get("failures", 0)) == int(suite.get("errors", 0)) == 0


def test_bench_writes_its_results_folder_and_keeps_reports(tmp_path: Path) -> None:
    first = _run(["-m", "mlp", "bench", *TINY], tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = tmp_path / "bench-results"
    report = out / "REPORT.md"
    assert "784-100-10" in report.read_text(encoding="utf-8")
    assert (out / "results.json").exists() and (out / "plots" / "step_ms.png").exists()
    assert (out / ".gitignore").read_text(encoding="utf-8").splitlines()[-1] == "*"

    report.write_text("the user's notes", encoding="utf-8")
    again = _run(["-m", "mlp", "bench", *TINY], tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"mlp bench: error: {Path('bench-results') / 'REPORT.md'} exists: pass --overwrite to "
        "replace it, or choose another --out"]
    assert report.read_text(encoding="utf-8") == "the user's notes"

    replaced = _run(["-m", "mlp", "bench", *TINY, "--overwrite"], tmp_path)
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert "784-100-10" in report.read_text(encoding="utf-8")


def test_bench_leaves_the_committed_report_alone(tmp_path: Path) -> None:
    committed = SUITE / "REPORT.md"
    if not committed.exists():
        pytest.skip("no committed report in this installation (a wheel ships only the code)")
    plots = sorted((SUITE / "plots").glob("*.png"))
    before = [committed.read_bytes(), *(p.read_bytes() for p in plots)]
    for args in (["--out", str(SUITE)], ["--out", str(SUITE), "--report-only"]):
        done = _run(["-m", "mlp", "bench", *TINY, *args], tmp_path)
        assert done.returncode == 2
        assert "exists: pass --overwrite" in done.stderr
    assert [committed.read_bytes(), *(p.read_bytes() for p in plots)] == before
    assert sorted((SUITE / "plots").glob("*.png")) == plots


def test_a_contestant_runs_in_its_own_process(tmp_path: Path) -> None:
    """The contest's child protocol: one JSON line with the seconds of one timed epoch."""
    import json

    done = _run(["-m", "benchmarks.contest", "floor", "--samples", "352", "--repeats", "1"],
                SUITE.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["seconds"] > 0
