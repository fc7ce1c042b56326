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
    # CLI included) and the phase breakdown run everywhere; torch adds its own and the peers,
    # scikit-learn its comparison.
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
    if (SUITE / "results.json").exists():
        pytest.skip("results of a run lie beside the committed report: --report-only uses them")
    # a run stops before replacing it; --report-only finds no results there to rebuild it from
    for args, rc, says in ((["--out", str(SUITE)], 2, "exists: pass --overwrite"),
                           (["--out", str(SUITE), "--report-only"], 1, "no benchmark results")):
        done = _run(["-m", "mlp", "bench", *TINY, *args], tmp_path)
        assert done.returncode == rc, done.stderr
        assert says in done.stderr
    assert [committed.read_bytes(), *(p.read_bytes() for p in plots)] == before
    assert sorted((SUITE / "plots").glob("*.png")) == plots


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="lists processes by /proc")
def test_sigterm_stops_mlp_bench_and_the_suite_it_runs(tmp_path: Path) -> None:
    """SIGTERM reaches only ``mlp``: it stops the suite's process, which stops its pytest; the
    one line and the status are mlp's."""
    import signal
    import time

    out = tmp_path / "long"
    cmd = [sys.executable, "-m", "mlp", "bench", *TINY[:4], "--min-rounds", "100000",
           "--max-time", "300", "--out", str(out)]
    with subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as bench:
        assert bench.stdout is not None
        # The runner's notes (e.g. no PyTorch peer), then the pytest it starts.
        for line in bench.stdout:
            if line.startswith("running:"):
                break
        else:
            pytest.fail("mlp bench ended before it ran the suite")
        time.sleep(2)  # the suite's pytest is under way
        bench.send_signal(signal.SIGTERM)
        _, err = bench.communicate(timeout=120)
    assert bench.returncode == 143
    assert err.splitlines() == ["mlp: terminated (SIGTERM)"]
    time.sleep(1)
    left = [c for c in Path("/proc").glob("[0-9]*/cmdline") if str(out).encode() in _read(c)]
    assert left == [], "the suite's pytest outlived mlp bench"


def _read(path: Path) -> bytes:
    """A file's bytes; nothing for a process that has gone meanwhile."""
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_a_contestant_runs_in_its_own_process(tmp_path: Path) -> None:
    """The contest's child protocol: one JSON line with the seconds of one timed epoch."""
    import json

    done = _run(["-m", "benchmarks.contest", "floor", "--samples", "352", "--repeats", "1"],
                SUITE.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["seconds"] > 0


#: The epoch peers of the contest and the library each needs.
PEERS = {"torch-users": "torch", "torch-uint8": "torch", "jax": "jax"}


@pytest.mark.parametrize("name", list(PEERS))
def test_every_peer_trains_our_network(name: str) -> None:
    """From our initial weights, on our batches in our order, a peer's losses equal ours within
    float32 noise over the first steps: the contest times the same training, not another one.
    (The contest path itself: a warm-up epoch, then the timed one, over 1 and 3 batches.)"""
    from benchmarks import contest

    pytest.importorskip(PEERS[name])
    for samples in (128, 384):
        ours = contest.run_contestant("ours", samples, seed=100, repeats=1)["loss"]
        theirs = contest.run_contestant(name, samples, seed=100, repeats=1)["loss"]
        assert theirs == pytest.approx(ours, rel=1e-4), samples


def test_no_torch_peer_draws_its_permutation_in_the_timed_epoch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The permutation is drawn before the timed epoch (ours is drawn by the trainer before its
    clock starts), never by ``torch.randperm`` inside it."""
    torch = pytest.importorskip("torch")
    from benchmarks import contest

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.randperm called by a peer")

    monkeypatch.setattr(torch, "randperm", refuse)
    for name in ("torch-users", "torch-uint8"):
        assert contest.run_contestant(name, 256, seed=100, repeats=1)["seconds"] > 0


def test_the_jax_peer_gathers_its_batch_inside_the_jitted_step() -> None:
    """As JAX users write it: the whole set and the batch's indices go into the compiled step."""
    pytest.importorskip("jax")
    import jax.numpy as jnp
    import numpy

    from benchmarks import workloads
    from benchmarks.jax_peer import JaxPeer

    peer = JaxPeer(workloads.SIZES["784-100-10"], "float32")
    calls: list[tuple[tuple[int, ...], ...]] = []
    jitted = peer._gather_step

    def recording(*args: object) -> object:
        calls.append(tuple(getattr(a, "shape", ()) for a in args[2:]))
        return jitted(*args)

    peer._gather_step = recording  # type: ignore[method-assign]
    images, labels = workloads.epoch_data(300)
    x, y = jnp.asarray(images, jnp.float32) / 255.0, jnp.asarray(labels, jnp.int32)
    seconds, loss = peer.epoch(x, y, 128, numpy.random.default_rng(0).permutation(300))
    assert calls == [((300, 784), (300,), (128,)), ((300, 784), (300,), (128,)),
                     ((300, 784), (300,), (44,))]
    assert seconds > 0 and numpy.isfinite(loss)


def test_the_sklearn_comparison_fits_the_same_network_in_both_estimators() -> None:
    """At a tiny size, in fresh processes as in the suite: both estimators run every epoch on
    the same network, in the dtype given, and the report has their rows and the target."""
    pytest.importorskip("sklearn")
    from benchmarks import sklearn_report
    from benchmarks.sklearn_contest import SklearnContest

    contest = SklearnContest(datasets=("digits",), dtypes=("float32",), hidden=(16,), epochs=1,
                             samples=300)
    contest.run_round()
    contest.run_round()
    assert contest.missing == {} and contest.rows == {"digits": [300, 150]}
    fits = contest.runs["digits"]["float32"]
    assert set(fits) == {"sklearn", "ours"}
    for fit in fits.values():
        assert fit["shapes"] == [[[64, 16], [16, 10]]] * 2
        assert fit["n_iter"] == [1, 1] and fit["dtype"] == ["float32"] * 2
        assert all(t > 0 for t in fit["per_epoch"]) and all(0 <= a <= 1 for a in fit["accuracy"])
    data = {"benchmarks": [{"extra_info": {"kind": "sklearn-contest",
                                           "sklearn": contest.to_json()}}]}
    section = sklearn_report.sklearn_section(data)
    rows = [line for line in section.splitlines() if line.startswith("| digits | float32 |")]
    assert [row.split(" | ")[2] for row in rows] == ["scikit-learn MLPClassifier",
                                                   "ours: mlp.sklearn, numpy"]
    assert all(row.endswith("| 2 |") for row in rows)
    assert f"- Target: {sklearn_report.TARGET_TEXT}: **" in section
    assert "every fit of every estimator ended with weights of the same shapes (digits " \
           "64-16-10); every fit ran 1 epoch;" in section
