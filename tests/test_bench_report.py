"""The benchmark report: a synthetic pytest-benchmark JSON becomes a Markdown table, the epoch
headline with its targets, and PNG plots; ratios and FLOP counts are checked by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import (
    contest,
    measured,
    phases,
    report,
    results,
    run,
    sklearn_report,
    workloads,
)

SIZE, BATCH, DTYPE = "784-512-512-10", 128, "float32"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _bench(kind: str, backend: str, median: float, device: str = "cpu", size: str = SIZE,
           batch: int = BATCH, dtype: str = DTYPE) -> dict[str, Any]:
    sizes = workloads.SIZES[size]
    return {
        "name": f"test_{kind}[{backend}]",
        "group": None,
        "stats": {"median": median, "min": median * 0.9, "mean": median, "rounds": 5},
        "extra_info": {"kind": kind, "backend": backend, "device": device, "size": size,
                       "batch": batch, "dtype": dtype,
                       "flops": workloads.step_flops(sizes, batch)},
    }


def _synthetic() -> dict[str, Any]:
    ms = 1e-3
    benches = [
        _bench("forward", "numpy", 1 * ms),
        _bench("backward", "numpy", 2 * ms),
        _bench("step", "numpy", 4 * ms),
        _bench("floor", "numpy", 2 * ms),
        _bench("step", "torch", 10 * ms),
        _bench("floor", "torch", 4 * ms),
        _bench("peer", "torch.nn", 8 * ms),
        # a configuration without floor or peer: its ratios are missing, not invented
        _bench("step", "numpy", 1 * ms, size="784-100-10", dtype="float64"),
        _bench("epoch", "numpy", 3.0),
        _bench("epoch-floor", "numpy", 2.5),
        _bench("epoch", "torch", 5.0),
        _bench("epoch-floor", "torch", 2.0),
        _bench("epoch-peer", "torch.nn", 6.0),
    ]
    machine = {"cpu": "Test CPU 9000", "cores": 2, "python": "3.11.0",
               "versions": {"numpy": "2.0.0", "torch": "2.13.0"}, "date": "2030-01-01 00:00 UTC",
               "blas": [{"internal_api": "openblas", "version": "0.3", "num_threads": 2}],
               "gpu": {}}
    return {"machine_info": {"mlp": machine}, "datetime": "2030-01-01T00:00:00",
            "benchmarks": [*benches, _contest_bench(), _phases_bench()]}


#: Seconds per round of each contestant: ours 1.0–1.2 s; floor 0.85 s at best (ours 1.18×);
#: PyTorch as users write it 1.6× slower, JAX 1.45× (must met, target not), the CLI within 5 %.
CONTEST = {
    "ours": [1.1, 1.0, 1.2],
    "cli": [1.12, 1.05, 1.25],
    "floor": [0.9, 0.85, 0.95],
    "floor-in-suite": [1.05, 1.02, 1.1],
    "torch-users": [1.7, 1.6, 1.8],
    "torch-uint8": [2.1, 2.0, 2.2],
    "jax": [1.5, 1.45, 1.55],
}
#: Milliseconds per step of each phase (sum 2.0 ms) and of the whole step.
PHASE_MS = dict(zip(phases.PHASES, (0.1, 0.6, 0.1, 0.05, 0.7, 0.1, 0.3, 0.05), strict=True))


def _contest_bench(seconds: dict[str, list[float]] | None = None,
                   missing: dict[str, str] | None = None) -> dict[str, Any]:
    bench = _bench("epoch-contest", "numpy", 10.0)
    bench["extra_info"]["contest"] = {"samples": 60000, "floor_repeats": 3, "smoke": False,
                                      "in_process": False, "seconds": seconds or CONTEST,
                                      "loss": {}, "missing": missing or {}}
    return bench


def _phases_bench() -> dict[str, Any]:
    bench = _bench("phases", "numpy", 1.0)
    bench["extra_info"]["phases"] = {**{k: v * 1e-3 for k, v in PHASE_MS.items()},
                                     phases.STEP: 2.2e-3}
    return bench


def _with_contest(data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    data["benchmarks"] = [b for b in data["benchmarks"]
                          if b["extra_info"]["kind"] != "epoch-contest"]
    data["benchmarks"].append(_contest_bench(**kwargs))
    return data


def _section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_flop_counts() -> None:
    # 784-100-10, batch 128: forward 2·128·(784·100 + 100·10); backward twice that, less the
    # first layer's dX (2·128·784·100).
    fwd = 2 * 128 * (784 * 100 + 100 * 10)
    assert workloads.forward_flops((784, 100, 10), 128) == fwd
    assert workloads.step_flops((784, 100, 10), 128) == 3 * fwd - 2 * 128 * 784 * 100
    assert workloads.epoch_batches(60_000, 128) == [128] * 468 + [96]


def test_ratios() -> None:
    steps, epochs = report.summarize(_synthetic())
    by_key = {(r.backend, r.size, r.dtype): r for r in steps}
    numpy_row = by_key[("numpy", SIZE, DTYPE)]
    assert numpy_row.x_floor == pytest.approx(2.0)  # step 4 ms / floor 2 ms
    assert numpy_row.x_torch == pytest.approx(2.0)  # peer 8 ms / step 4 ms
    flops = workloads.step_flops(workloads.SIZES[SIZE], BATCH)
    assert numpy_row.gflops == pytest.approx(flops / 4e-3 / 1e9)
    torch_row = by_key[("torch", SIZE, DTYPE)]
    assert torch_row.x_floor == pytest.approx(2.5)
    assert torch_row.x_torch == pytest.approx(0.8)
    lonely = by_key[("numpy", "784-100-10", "float64")]
    assert lonely.x_floor != lonely.x_floor and lonely.x_torch != lonely.x_torch  # NaN
    assert [r.backend for r in steps][:2] == ["numpy", "numpy"]  # sorted by backend, size

    epoch = {r.backend: r for r in epochs}
    assert epoch["numpy"].x_floor == pytest.approx(1.2)
    assert epoch["numpy"].x_torch == pytest.approx(2.0)
    assert epoch["torch"].x_floor == pytest.approx(2.5)
    assert epoch["torch"].x_torch == pytest.approx(1.2)
    assert epoch["numpy"].x_floor_best == pytest.approx(1.2)  # every min is 0.9 × its median


def test_report_files(tmp_path: Path) -> None:
    source = tmp_path / "results.json"
    source.write_text(json.dumps(_synthetic()), encoding="utf-8")
    path = report.build_report(source, tmp_path / "out", note="synthetic")
    text = path.read_text(encoding="utf-8")

    assert path.name == "REPORT.md"
    assert "Test CPU 9000" in text and "openblas 0.3" in text
    header = ("| Backend | Model | Batch | Dtype | Forward ms | Backward ms | Step ms | Floor ms "
              "| PyTorch ms | Step GFLOP/s | × floor | × PyTorch |")
    assert header in text
    row = next(line for line in text.splitlines() if line.startswith("| numpy | 784-512-512-10"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4:9] == ["1.00", "2.00", "4.00", "2.00", "8.00"]
    assert cells[-2:] == ["2.00×", "2.00×"]
    # the headline, on the fastest rounds: ours 1.00 s, floor 0.85 s, PyTorch 1.6 s, JAX 1.45 s
    headline = _section(text, "## Headline")
    assert ("- epoch ≤ 1.2 × the GEMM floor (at worst 1.3 ×): **met** — 1.18× in the fastest "
            "rounds (1.22× median)") in headline
    assert ("- ≥ 1.5 × faster than PyTorch as users write it (float32 set, X[idx]) (at worst "
            "1.4 ×): **met** — 1.60× in the fastest rounds (1.55× median)") in headline
    assert ("faster than JAX, jitted train step (at worst 1.4 ×): **target not met**, at-worst "
            "bound met — 1.45× in the fastest rounds") in headline
    assert "must met" not in text
    row = next(line for line in headline.splitlines() if line.startswith("| PyTorch doing"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] + cells[5:] == ["2.10", "2.00", "3", "1.91×", "2.00×"]
    assert "CLI / benchmark = 1.02× median, 1.05× fastest — they **agree** within 10%" in headline
    assert "1.20× the own-process floor" in headline
    # The mark only where "What is measured" explains it: no figure carries it.
    assert text.count("‡") == measured.WHAT_IS_MEASURED.count("‡") == 1
    assert "Our epoch is below its floor" not in text

    for name in ("epoch", "ratio_floor", "ratio_pytorch", "step_ms"):
        png = tmp_path / "out" / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert f"plots/{name}.png" in text


def test_targets_not_met() -> None:
    seconds = {**CONTEST, "floor": [0.7, 0.7, 0.7], "torch-users": [1.1, 1.2, 1.3],
               "jax": [1.0, 1.0, 1.0]}
    result = report.contest_from(_with_contest(_synthetic(), seconds=seconds))
    lines = report.contest_targets(result)
    assert lines[0].endswith("GEMM floor (at worst 1.3 ×): **not met** — 1.43× in the fastest "
                             "rounds (1.57× median)")
    assert "X[idx]) (at worst 1.4 ×): **not met** — 1.10× in the fastest" in lines[1]
    assert "jitted train step (at worst 1.4 ×): **not met** — 1.00× in the fastest" in lines[2]


def test_missing_headline_is_not_met_silently() -> None:
    text = report.contest_section(None)
    assert text.count("not measured — this run has no epoch contest") == 3


def test_cli_disagreement_is_reported() -> None:
    seconds = {**CONTEST, "cli": [1.3, 1.25, 1.4]}  # 18 % and 25 % slower than the benchmark
    result = report.contest_from(_with_contest(_synthetic(), seconds=seconds))
    assert report.cli_check(result).endswith(
        "CLI / benchmark = 1.18× median, 1.25× fastest — they **do not agree** within 10%.")


def test_an_epoch_below_its_floor_says_why() -> None:
    # fastest: ours 0.8 s under the floor's 0.85 s (6 % gap), the floor's rounds spread by 2 %
    seconds = {**CONTEST, "ours": [0.8, 0.9, 0.95], "floor": [0.85, 0.86, 0.867]}
    lines = report.floor_checks(report.contest_from(_with_contest(_synthetic(),
                                                                  seconds=seconds)))
    assert lines[0] == ("- **Our epoch is below its floor** (fastest: 0.800 s against 0.850 s). "
                        f"Why: {measured.BELOW_FLOOR}")
    assert len(lines) == 2  # the medians (0.90 against 0.86) are not below
    # a floor whose own rounds spread more than the gap: the machine was busy
    seconds["floor"] = [0.85, 1.2, 1.3]
    busy = report.floor_checks(report.contest_from(_with_contest(_synthetic(),
                                                                 seconds=seconds)))
    assert "the floor's own rounds spread by 53%, more than the 6% gap: the machine was busy" \
        in busy[0]


def test_a_step_below_its_floor_is_marked(tmp_path: Path) -> None:
    data = _synthetic()
    data["benchmarks"].append(_bench("floor", "numpy", 1.25e-3, size="784-100-10",
                                     dtype="float64"))
    source = tmp_path / "results.json"
    source.write_text(json.dumps(data), encoding="utf-8")
    text = report.build_report(source, tmp_path / "out").read_text(encoding="utf-8")
    per_step = _section(text, "## Per step")
    row = next(line for line in per_step.splitlines() if "784-100-10" in line)
    assert "0.80× ‡" in row  # step 1 ms against a floor of 1.25 ms
    assert f"‡ below its floor: {measured.BELOW_FLOOR}" in per_step


def test_dropout_steps_against_their_target() -> None:
    data = _synthetic()
    data["benchmarks"] += [_bench("step-dropout", "numpy", 4.4e-3),
                           _bench("step-dropout", "torch", 13e-3)]
    steps, _ = report.summarize(data)
    section = "\n".join(report.dropout_section(steps))
    numpy_row = next(line for line in section.splitlines() if line.startswith("| numpy"))
    torch_row = next(line for line in section.splitlines() if line.startswith("| torch"))
    assert "1.10×" in numpy_row and numpy_row.endswith("| met |")  # 4.4 ms over 4 ms
    assert "1.30×" in torch_row and "**not met**" in torch_row  # 13 ms over 10 ms
    assert report.dropout_section(report.summarize(_synthetic())[0]) == []


def test_jax_rows() -> None:
    data = _synthetic()
    assert "Not measured: JAX is not installed" in report.jax_section(data)
    jax = {"kind": "jax-steps", "backend": "jax", "device": "cpu", "size": SIZE,
           "batch": BATCH, "dtype": DTYPE,
           "jax": {"eager": 0.012, "jit": 0.0029, "peer": 0.0026,
                   "jit_x_peer": 0.0029 / 0.0026, "eager_x_peer": 0.012 / 0.0026}}
    data["benchmarks"].append({"name": "test_jax_steps", "group": None,
                               "stats": {"median": 1.0, "min": 1.0}, "extra_info": jax})
    section = report.jax_section(data)
    assert "| 12.0 | 2.90 | 2.60 | 1.12× | 4.62× |" in section
    assert "Target: compiled ≤ 1.1 × the peer: **not met**." in section
    steps, _ = report.summarize(data)  # the JAX entry is no per-step row
    assert all(r.backend != "jax" for r in steps)


def test_phase_breakdown(tmp_path: Path) -> None:
    source = tmp_path / "results.json"
    source.write_text(json.dumps(_synthetic()), encoding="utf-8")
    text = report.build_report(source, tmp_path / "out").read_text(encoding="utf-8")
    section = _section(text, "## Where a step's time goes")
    rows = {c[0]: c[1:] for c in ([x.strip() for x in line.strip("|").split("|")]
                                  for line in section.splitlines() if line.startswith("| "))}
    assert rows["optimizer update"] == ["0.300", "15%"]
    assert rows["backward GEMMs"] == ["0.700", "35%"]
    assert rows["sum of the phases"] == ["2.00", "100%"]
    assert rows[phases.STEP] == ["2.20", "110%"]
    assert ("The matrix products take 65% of the phased step; the largest other phases are "
            "optimizer update (15%) and batch gather + convert (5%).") in section
    assert "No per-phase breakdown" in report.phases_section(None)


def test_runner_selection() -> None:
    assert run.marker_expression(quick=True, gpu=False, backends=None) == "quick and not gpu"
    assert run.marker_expression(quick=False, gpu=True, backends=None) == "gpu"
    assert run.marker_expression(quick=False, gpu=False, backends="numpy") is None
    args = run.build_parser().parse_args(["--quick", "--backends", "numpy,torch"])
    cmd = run.pytest_command(args, Path("results.json"))
    assert "--benchmark-only" in cmd and "--benchmark-json=results.json" in cmd
    options = cmd[cmd.index("--benchmark-only"):]  # after "python -m pytest DIR"
    assert options[options.index("-m") + 1] == "quick"
    assert cmd[cmd.index("--bench-backends") + 1] == "numpy,torch"


def _without_pytorch(data: dict[str, Any]) -> dict[str, Any]:
    """The same run on a machine without PyTorch: no peers, no torch backend, no version, and
    the contest's PyTorch contestants missing with the reason the contest gives."""
    data["benchmarks"] = [b for b in data["benchmarks"]
                          if b["extra_info"]["backend"] not in ("torch", "torch.nn")]
    data["machine_info"]["mlp"]["versions"].pop("torch", None)
    reason = f"PyTorch is not installed: {workloads.TORCH_CPU_INSTALL}"
    seconds = {k: v for k, v in CONTEST.items() if not k.startswith("torch")}
    return _with_contest(data, seconds=seconds,
                         missing={"torch-users": reason, "torch-uint8": reason})


def test_missing_pytorch_says_how_to_install_it(tmp_path: Path) -> None:
    data = _without_pytorch(_synthetic())
    source = tmp_path / "results.json"
    source.write_text(json.dumps(data), encoding="utf-8")
    text = report.build_report(source, tmp_path / "out").read_text(encoding="utf-8")
    hint = "pip install torch --index-url https://download.pytorch.org/whl/cpu"
    headline = _section(text, "## Headline")
    peer_line = next(line for line in headline.splitlines() if "as users write it" in line)
    assert peer_line == ("- ≥ 1.5 × faster than PyTorch as users write it (float32 set, X[idx]) "
                         f"(at worst 1.4 ×): not measured — PyTorch is not installed: {hint}")
    assert "GEMM floor (at worst 1.3 ×): **met**" in headline  # the floor is still judged
    row = next(line for line in headline.splitlines() if line.startswith("| PyTorch doing"))
    assert row.endswith(f"| not measured: PyTorch is not installed: {hint} |")
    per_step = _section(text, "## Per step")
    assert f"No PyTorch column: PyTorch is not installed; install its CPU build with `{hint}`" \
        in per_step
    plots = tmp_path / "out" / "plots"
    assert not (plots / "ratio_pytorch.png").exists()  # nothing to compare with
    assert (plots / "epoch.png").read_bytes()[:8] == PNG_MAGIC


def test_missing_jax_says_how_to_install_it() -> None:
    seconds = {k: v for k, v in CONTEST.items() if k != "jax"}
    result = report.contest_from(_with_contest(_synthetic(), seconds=seconds))
    line = report.contest_targets(result)[2]
    assert line.endswith("not measured — JAX is not installed; install it with `pip install jax` "
                         "and rerun `mlp bench`")


def test_peer_left_out_with_pytorch_installed_says_so() -> None:
    seconds = {k: v for k, v in CONTEST.items() if not k.startswith("torch")}
    result = report.contest_from(_with_contest(_synthetic(), seconds=seconds))
    text = report.contest_section(result, torch_version="2.13.0")
    assert ("as users write it (float32 set, X[idx]) (at worst 1.4 ×): not measured — the "
            "PyTorch peer (torch 2.13.0) was not part of this run") in text


def test_a_stale_plot_is_removed(tmp_path: Path) -> None:
    source = tmp_path / "results.json"
    source.write_text(json.dumps(_synthetic()), encoding="utf-8")
    report.build_report(source, tmp_path)
    assert (tmp_path / "plots" / "ratio_pytorch.png").exists()
    source.write_text(json.dumps(_without_pytorch(_synthetic())), encoding="utf-8")
    text = report.build_report(source, tmp_path).read_text(encoding="utf-8")
    assert not (tmp_path / "plots" / "ratio_pytorch.png").exists()
    assert "ratio_pytorch.png" not in text


def test_runner_refuses_to_replace_a_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "REPORT.md").write_text("mine", encoding="utf-8")
    assert run.main(["--out", str(tmp_path), "--report-only"]) == 2
    err = capsys.readouterr().err
    assert err == (f"mlp bench: error: {tmp_path / 'REPORT.md'} exists: pass --overwrite to "
                   "replace it, or choose another --out\n")
    assert (tmp_path / "REPORT.md").read_text(encoding="utf-8") == "mine"
    assert run.existing_results(tmp_path / "new", tmp_path / "new" / "results.json", False) == []


def test_bench_report_only_rebuilds_without_overwrite(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report is made from the results in --out: rebuilding it replaces only what it made."""
    seen: list[list[str]] = []
    monkeypatch.setattr(run, "main", lambda argv: seen.append(argv) or 0)
    assert run.command(["--report-only", "--out", "somewhere"]) == 0
    assert run.command(["--quick", "--out", "somewhere"]) == 0
    assert run.command(["--report", "--out", "somewhere"]) == 0  # an option's prefix, as argparse
    assert "--overwrite" in seen[0] and "--overwrite" not in seen[1] and "--overwrite" in seen[2]


def _mlp(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_mlp_bench_runs_the_suites_command_in_its_own_process(tmp_path: Path) -> None:
    """``mlp bench`` imports nothing of the suite: it runs ``python -m benchmarks`` with every
    argument, and the child's exit status is its own."""
    source = tmp_path / "results.json"
    source.write_text(json.dumps(_synthetic()), encoding="utf-8")
    out = tmp_path / "out"
    for _ in range(2):  # --report-only replaces the report it made
        done = _mlp("-m", "mlp", "bench", "--report-only", "--json", str(source), "--out",
                    str(out), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert f"report: {out / 'REPORT.md'}" in done.stdout
    probe = ("import sys; from mlp.cli import main; rc = main(sys.argv[1:]); "
             "assert 'benchmarks' not in sys.modules, 'mlp imported the suite'; "
             "raise SystemExit(rc)")
    failed = _mlp("-c", probe, "bench", "--report-only", "--out", str(tmp_path / "none"),
                  cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.splitlines() == [
        f"no benchmark results at {tmp_path / 'none' / 'results.json'}: nothing to report"]


def test_mlp_bench_without_the_suite_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    from mlp.cli import bench, main

    monkeypatch.setattr(bench, "SUITE", "no_such_benchmark_suite")
    assert main(["bench", "--quick"]) == 1
    assert capsys.readouterr().err == (
        "mlp: error: mlp bench needs the benchmark suite and its extra (no module named "
        "'no_such_benchmark_suite'): pip install \".[bench]\"\n")


def test_the_suites_command_without_its_extra_is_one_line(tmp_path: Path) -> None:
    broken = ("import runpy, sys; sys.modules['benchmarks.run'] = None; "
              "runpy.run_module('benchmarks', run_name='__main__', alter_sys=True)")
    done = _mlp("-c", broken, "--quick", cwd=tmp_path)
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("mlp bench: error: the benchmark suite needs its extra (")
    assert line.endswith('): pip install ".[bench]"')


def test_the_cli_contestant_trains_on_the_contest_data(tmp_path: Path) -> None:
    """Every contestant trains on the start of the shipped MNIST, which ``mlp train`` loads."""
    from mlp import data

    images, labels = workloads.epoch_data(1000)
    mnist = data.load("mnist", split="train")
    assert (mnist.x_train[:1000] == images).all() and (mnist.y_train[:1000] == labels).all()
    cmd = contest.cli_command(tmp_path / "m.jsonl", seed=7, smoke=False)
    assert "--data-dir" not in cmd and cmd[cmd.index("--dataset") + 1] == "mnist"
    assert [cmd[cmd.index(flag) + 1] for flag in ("--hidden", "--batch-size", "--epochs")] == [
        "512,512", "128", "2"]


def _gpu_run(tf32: bool) -> dict[str, Any]:
    ms = 1e-3
    benches = [_bench(kind, "torch-cuda", t * ms, device="cuda", dtype=dtype)
               for dtype in ("float32", "float64")
               for kind, t in (("step", 0.8), ("floor", 0.2), ("step-graph", 0.25))]
    benches += [_bench("peer", "torch.nn", 1.8 * ms, device="cuda", dtype=d)
                for d in ("float32", "float64")]
    machine = {**_synthetic()["machine_info"]["mlp"],
               "gpu": {"torch": ["NVIDIA Test GPU"], "torch_cuda": "13.0", "driver": "580.1",
                       "cupy": ["NVIDIA Test GPU"], "cuda_runtime": 13020, "cuda_driver": 13000,
                       "tf32": tf32}}
    return {"machine_info": {"mlp": machine}, "datetime": "2030-01-01T00:00:00",
            "benchmarks": benches}


@pytest.mark.parametrize("tf32", [False, True])
def test_a_gpu_report_names_the_gpu_software_tf32_and_the_graph_step(tf32: bool) -> None:
    data = _gpu_run(tf32)
    steps, epochs = report.summarize(data)
    text = report.render(data, steps, epochs, plots={})
    state = "on" if tf32 else "off"
    assert ("driver 580.1, CUDA runtime 13.2 (CuPy), driver API 13.0, PyTorch built for CUDA "
            f"13.0, TF32 {state}") in text
    per_step = _section(text, "## Per step")
    assert f"| float32, TF32 {state} |" in per_step and "| float64 |" in per_step
    graph = _section(text, "### The step as a CUDA graph")
    # 0.25 ms captured against 0.8 ms eager and 1.8 ms of PyTorch eager
    assert "| 0.250 | 0.800 | 3.20× | 7.20× |" in graph
    # The CPU headline, breakdown and JAX sections belong to CPU runs.
    assert "## Headline" not in text and "## Our step on JAX" not in text


# --- the epoch losses, the rounds' order, the CLI's clock --------------------------------


#: Mean loss of each contestant's timed epoch per round: the peers within float32 noise of ours,
#: the CLI its own run's second epoch.
LOSS = {"ours": [0.1795, 0.1790, 0.1801], "cli": [0.09, 0.091, 0.089],
        "floor": [float("nan")] * 3, "floor-in-suite": [float("nan")] * 3,
        "torch-users": [0.1792, 0.1791, 0.1800], "torch-uint8": [0.1792, 0.1791, 0.1800],
        "jax": [0.1796, 0.1789, 0.1802]}


def _with_losses(loss: dict[str, list[float]]) -> report.ContestResult:
    data = _with_contest(_synthetic())
    data["benchmarks"][-1]["extra_info"]["contest"]["loss"] = loss
    result = report.contest_from(json.loads(json.dumps(data)))  # through JSON, NaN included
    assert result is not None
    return result


def test_the_report_compares_the_contestants_epoch_losses() -> None:
    result = _with_losses(LOSS)
    text = report.contest_section(result)
    assert "| Epoch loss (median) |" in text
    row = next(line for line in text.splitlines() if line.startswith("| JAX"))
    assert [c.strip() for c in row.strip("|").split("|")][4] == "0.1796"
    floor = next(line for line in text.splitlines() if line.startswith("| GEMM floor, own"))
    assert [c.strip() for c in floor.strip("|").split("|")][4] == "—"
    assert report.loss_check(result) == (
        "- Loss check: the peers started from our initial weights and trained on our batches in "
        "our order; their epoch losses differ from ours by at most 0.167% in a round (PyTorch as "
        "users write it (float32 set, X[idx])): every peer **trains the same network** (within "
        "1%). The CLI's loss is its own run's second epoch.")
    wrong = _with_losses({**LOSS, "jax": [0.25, 0.24, 0.26]})  # another network, or lr
    assert "**JAX, jitted train step did not train the same network** (more than 1% from " \
        "ours)" in report.loss_check(wrong)
    assert report.loss_check(_with_losses({})).startswith("- Loss check: not measured")


def test_the_order_of_the_contestants_rotates_from_round_to_round(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []

    def fake(name: str) -> dict[str, float]:
        ran.append(name)
        return {"seconds": 1.0, "loss": 0.5}

    bench = contest.Contest(samples=352, in_process=True)
    monkeypatch.setattr(bench, "_child", lambda name, seed: fake(name))
    monkeypatch.setattr(bench, "_cli", lambda seed: fake("cli"))
    monkeypatch.setattr(bench, "_in_suite_floor", lambda: fake("floor-in-suite"))
    try:
        for _ in range(3):
            bench.run_round()
    finally:
        bench.close()
    n = len(contest.CONTESTANTS)
    rounds = [ran[i * n:(i + 1) * n] for i in range(3)]
    names = [c.name for c in contest.CONTESTANTS]
    assert all(sorted(r) == sorted(names) for r in rounds)  # everyone once a round
    assert [r[0] for r in rounds] == names[:3]  # a different contestant opens each round
    assert rounds[1] == rounds[0][1:] + rounds[0][:1]


def test_the_cli_is_timed_from_outside_its_process(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    """The CLI's time is the wall-clock time of ``--epochs 2`` less that of ``--epochs 1``,
    never the ``seconds`` the CLI reports about itself."""
    import subprocess
    import time

    clock = iter([10.0, 13.0, 20.0, 24.5])  # --epochs 1 takes 3 s, --epochs 2 takes 4.5 s
    commands: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        commands.append(cmd)
        epochs = int(cmd[cmd.index("--epochs") + 1])
        lines = [json.dumps({"epoch": e + 1, "seconds": 99.0, "train_loss": 0.3 / (e + 1)})
                 for e in range(epochs)]
        Path(cmd[cmd.index("--metrics") + 1]).write_text("\n".join(lines) + "\n",
                                                         encoding="utf-8")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    bench = contest.Contest(samples=352)
    monkeypatch.setattr(contest.subprocess, "run", fake_run)
    monkeypatch.setattr(contest.time, "perf_counter", lambda: next(clock))
    try:
        result = bench._cli(seed=7)
    finally:
        monkeypatch.setattr(contest.time, "perf_counter", time.perf_counter)
        bench.close()
    assert result == {"seconds": 1.5, "loss": 0.15}
    assert [c[c.index("--epochs") + 1] for c in commands] == ["1", "2"]


# --- implausible timings ---------------------------------------------------------------


def _busy_run() -> dict[str, Any]:
    """The synthetic run on a busy machine: the PyTorch step's rounds disagree (q3/q1 = 2), a
    step came out below its floor, the contest's JAX rounds spread by 1.8×."""
    data = _synthetic()
    peer = next(b for b in data["benchmarks"] if b["extra_info"]["kind"] == "peer")
    peer["stats"].update(rounds=200, q1=6e-3, q3=12e-3, max=0.3)
    data["benchmarks"].append(_bench("floor", "numpy", 1.25e-3, size="784-100-10",
                                     dtype="float64"))
    return _with_contest(data, seconds={**CONTEST, "jax": [1.0, 1.5, 1.8]})


def test_busy_rounds_are_marked_in_the_tables_and_warned_about(tmp_path: Path) -> None:
    data = _busy_run()
    steps, _ = report.summarize(data)
    numpy_row = next(r for r in steps if (r.backend, r.size) == ("numpy", SIZE))
    assert numpy_row.mark("x_torch") == " †" and numpy_row.mark("x_floor") == ""
    source = tmp_path / "results.json"
    source.write_text(json.dumps(data), encoding="utf-8")
    text = report.build_report(source, tmp_path / "out").read_text(encoding="utf-8")
    per_step = _section(text, "## Per step")
    row = next(line for line in per_step.splitlines() if line.startswith("| numpy | " + SIZE))
    assert row.endswith("| 2.00× | 2.00× † |")
    assert report.BUSY_NOTE in per_step
    headline = _section(text, "## Headline")
    assert "faster than JAX, jitted train step (at worst 1.4 ×): **not met** — 1.00× † in" \
        in headline
    jax_row = next(line for line in headline.splitlines() if line.startswith("| JAX"))
    assert "| 1.50 † | 1.00 † |" in jax_row
    # a quiet run has no marks and no warning
    assert report.busy_warning(_synthetic()) is None
    warning = report.busy_warning(data)
    assert warning == (
        "the machine was busy during this run: the rounds of 2 times disagree by more than "
        "1.5× (†) and 1 time came out below its floor (‡); rerun on a quiet machine before "
        "quoting these figures")
    assert text.startswith(f"# array-api-mlp benchmark report\n\n**Warning: {warning}**")


def test_mlp_bench_warns_that_the_machine_was_busy(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    source = tmp_path / "results.json"
    source.write_text(json.dumps(_busy_run()), encoding="utf-8")
    assert run.main(["--out", str(tmp_path / "out"), "--json", str(source),
                     "--report-only"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("mlp bench: warning: the machine was busy during this run: ")
    source.write_text(json.dumps(_synthetic()), encoding="utf-8")
    assert run.main(["--out", str(tmp_path / "quiet"), "--json", str(source),
                     "--report-only"]) == 0
    assert "warning" not in capsys.readouterr().err


def _drawn(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Keep the figures the plots draw instead of saving them."""
    from benchmarks import plots

    figures: list[Any] = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    return figures


def _texts(fig: Any) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [
        t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts] + [
        t.get_text() for legend in fig.legends for t in legend.texts]


def _hatched(fig: Any) -> int:
    return sum(1 for ax in fig.axes for p in ax.patches if p.get_hatch())


def test_the_plots_mark_implausible_figures_as_the_tables_do(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from benchmarks import plots

    figures = _drawn(monkeypatch)
    steps, epochs = report.summarize(_busy_run())
    plots.make_plots(steps, epochs, tmp_path, 1.2, 1.5)
    by_title = {fig.axes[0].get_title().splitlines()[0] if fig.axes[0].get_title()
                else fig._suptitle.get_text(): fig for fig in figures}
    ratio_torch = by_title["Speed relative to PyTorch, higher is better"]
    # the busy peer is in both rows of its configuration: numpy's and torch's
    assert {" 2.00× †", " 0.80× †"} <= set(_texts(ratio_torch)) and _hatched(ratio_torch) == 2
    assert any(t.startswith("† rounds disagree") for t in _texts(ratio_torch))
    ratio_floor = by_title["Step time over its GEMM floor, lower is better"]
    assert " 0.80× ‡" in _texts(ratio_floor) and _hatched(ratio_floor) == 1
    assert any(t.startswith("‡ below its floor") for t in _texts(ratio_floor))
    step_ms = next(fig for fig in figures if fig._suptitle is not None)
    assert " †" in _texts(step_ms) and " ‡" in _texts(step_ms) and _hatched(step_ms) == 3
    # a quiet run draws no marks
    figures.clear()
    plots.make_plots(*report.summarize(_synthetic()), tmp_path, 1.2, 1.5)
    assert all(_hatched(fig) == 0 for fig in figures)
    assert not any("†" in t or "‡" in t for fig in figures for t in _texts(fig))


def test_the_description_names_pytorchs_cpu_adam_as_it_is() -> None:
    """On the CPU ``torch.optim.Adam``'s default is the per-parameter for-loop, not foreach."""
    text = measured.WHAT_IS_MEASURED
    assert "(foreach)" not in text and "(foreach default)" not in text
    assert "per-parameter for-loop" in text
    torch = pytest.importorskip("torch")
    import sys

    choose = getattr(sys.modules.get("torch.optim.optimizer"), "_default_to_fused_or_foreach",
                     None)
    if choose is not None:  # PyTorch's own rule, where this version has it
        assert choose([torch.zeros(2)], False) == (False, False)


def _bad_results(tmp_path: Path, kind: str) -> Path:
    source = tmp_path / "results.json"
    good = _synthetic()
    if kind == "garbage":
        source.write_bytes(b"\x89PNG\r\n\x1a\n not json at all \xff")
    elif kind == "fifo":
        os.mkfifo(source)
    elif kind == "device":
        return Path("/dev/zero")
    elif kind == "too large":
        with open(source, "wb") as f:
            f.truncate(results.MAX_BYTES + 1)
    elif kind == "a list":
        source.write_text("[1, 2, 3]", encoding="utf-8")
    elif kind == "no benchmarks":
        source.write_text("{}", encoding="utf-8")
    elif kind == "a median that is text":
        good["benchmarks"][0]["stats"]["median"] = "fast"
        source.write_text(json.dumps(good), encoding="utf-8")
    elif kind == "a step without its batch":
        step = next(b for b in good["benchmarks"] if b["extra_info"].get("kind") == "step")
        del step["extra_info"]["batch"]
        source.write_text(json.dumps(good), encoding="utf-8")
    return source


@pytest.mark.parametrize("kind", ["garbage", "fifo", "device", "too large", "a list",
                                  "no benchmarks", "a median that is text",
                                  "a step without its batch"])
def test_report_only_on_results_that_are_not_is_one_line(kind: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """A results file that is not one is refused before a report is written: at once for a
    FIFO or a device (no wait, no read), without reading a file too large to be one."""
    source = _bad_results(tmp_path, kind)
    out = tmp_path / "out"
    assert run.main(["--out", str(out), "--json", str(source), "--report-only"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mlp bench: error: {source}: ") and err.count("\n") == 1, err
    assert not (out / "REPORT.md").exists() and not (out / "plots").exists()


# --- scikit-learn's MLPClassifier against ours ----------------------------------------------


#: Per data set: ours' seconds per epoch in three rounds, the test rows, and each estimator's
#: test accuracy (within noise: 0.2 points on MNIST against 0.55, 1 on digits against 3.29).
SK_OURS = {"mnist": [1.0, 1.1, 0.9], "digits": [0.01, 0.011, 0.009]}
SK_ROWS = {"mnist": [60000, 10000], "digits": [1347, 450]}
SK_ACCURACY = {("mnist", "sklearn"): 0.960, ("mnist", "ours"): 0.962,
               ("digits", "sklearn"): 0.93, ("digits", "ours"): 0.94}
#: scikit-learn's seconds per epoch over ours, per dtype (the target is 5).
SK_SPEEDUP = {"float64": 6.0, "float32": 5.5}


def _sklearn_bench(speedup: dict[tuple[str, str], float] | None = None,
                   accuracy: dict[tuple[str, str, str], float] | None = None,
                   cupy: bool = False) -> dict[str, Any]:
    names = ["sklearn", "ours", *(["ours-cupy"] if cupy else [])]
    runs: dict[str, Any] = {}
    for data, ours in SK_OURS.items():
        inputs = 784 if data == "mnist" else 64
        for dtype, factor in SK_SPEEDUP.items():
            factor = (speedup or {}).get((data, dtype), factor)
            by_name = runs.setdefault(data, {}).setdefault(dtype, {})
            for name in names:
                scale = {"sklearn": factor, "ours": 1.0, "ours-cupy": 0.1}[name]
                acc = (accuracy or {}).get((data, dtype, name),
                                           SK_ACCURACY[(data, name.removesuffix("-cupy"))])
                by_name[name] = {"per_epoch": [t * scale for t in ours], "accuracy": [acc] * 3,
                                 "n_iter": [2] * 3, "dtype": [dtype] * 3,
                                 "shapes": [[[inputs, 512], [512, 512], [512, 10]]] * 3}
    bench = _bench("sklearn-contest", "cupy" if cupy else "numpy", 10.0)
    bench["extra_info"]["sklearn"] = {"names": names, "hidden": [512, 512], "batch": 200,
                                      "epochs": 2, "rounds": 3, "in_process": False,
                                      "rows": SK_ROWS, "runs": runs, "missing": {}}
    return bench


def _sklearn_section(**kwargs: Any) -> str:
    data = _synthetic()
    data["benchmarks"].append(_sklearn_bench(**kwargs))
    return sklearn_report.sklearn_section(json.loads(json.dumps(data)))


def test_the_sklearn_comparison_is_a_section_of_the_report(tmp_path: Path) -> None:
    data = _synthetic()
    data["benchmarks"].append(_sklearn_bench())
    source = tmp_path / "results.json"
    source.write_text(json.dumps(data), encoding="utf-8")
    text = report.build_report(source, tmp_path / "out").read_text(encoding="utf-8")
    section = _section(text, "## scikit-learn's MLPClassifier against ours")
    assert ("- Target: ≥ 5 × faster per epoch than scikit-learn's MLPClassifier on the CPU "
            "(float64 and float32), at test accuracy within noise: **met** — scikit-learn ÷ "
            "ours, median seconds per epoch: MNIST float64 6.00×, MNIST float32 5.50×, digits "
            "float64 6.00×, digits float32 5.50×.") in section
    assert "| MNIST | float64 | ours: mlp.sklearn, numpy | 1.00 | 0.900 | 96.20 % | 6.00× | 3 |" \
        in section
    assert "| digits | float32 | scikit-learn MLPClassifier | 0.055 | 0.049 | 93.00 % | 1.00× |" \
        in section
    assert ("weights of the same shapes (MNIST 784-512-512-10; digits 64-512-512-10); every fit "
            "ran 2 epochs; each kept the dtype it was given.") in section
    assert "MNIST float64 0.20 against 0.55, " in section and "digits float32 1.00 against 3.29" \
        in section
    assert sklearn_report.WHY in section and "same BLAS" in sklearn_report.WHY
    assert "### scikit-learn's MLPClassifier against ours" in measured.WHAT_IS_MEASURED
    assert report.busy_warning(data) is None  # its pytest-benchmark time is no figure
    # ... and no per-step row (compared as text: the rows hold NaN, and NaN == NaN is false)
    assert repr(report.summarize(data)) == repr(report.summarize(_synthetic()))


def test_the_sklearn_target_not_met_says_where() -> None:
    section = _sklearn_section(speedup={("digits", "float32"): 4.0},
                               accuracy={("mnist", "float64", "ours"): 0.95})
    assert ("at test accuracy within noise: **not met** (below 5 × on digits float32; accuracy "
            "beyond noise on MNIST float64) — scikit-learn ÷ ours") in section
    assert "digits float32 4.00×." in section


def test_the_sklearn_comparison_missing_says_why() -> None:
    data = _synthetic()  # its machine has no scikit-learn
    assert ("not measured — scikit-learn is not installed; it is an optional extra: "
            '`pip install ".[sklearn]"`, then rerun `mlp bench`.') in \
        sklearn_report.sklearn_section(data)
    data["machine_info"]["mlp"]["versions"]["scikit-learn"] = "1.9.0"
    assert ("not measured — the comparison was not part of this run (`mlp bench` includes it; "
            "`mlp bench -k sklearn` runs it alone).") in sklearn_report.sklearn_section(data)


def test_a_gpu_report_has_the_cupy_row_beside_scikit_learn() -> None:
    data = _gpu_run(tf32=False)
    data["benchmarks"].append(_sklearn_bench(cupy=True))
    steps, epochs = report.summarize(data)
    text = report.render(data, steps, epochs, plots={})
    section = _section(text, "## scikit-learn's MLPClassifier against ours")
    assert "### GPU run (CuPy row)" in section
    assert "| MNIST | float64 | ours: mlp.sklearn, cupy | 0.100 | 0.090 | 96.20 % | 60.00× | 3 |" \
        in section
