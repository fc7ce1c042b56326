"""The benchmark report: a synthetic pytest-benchmark JSON becomes a Markdown table, the epoch
headline with its targets, and PNG plots; ratios and FLOP counts are checked by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report, run, workloads

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
            "benchmarks": benches}


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
    # numpy's epoch: 1.2× its floor (target ≤ 1.5: met), 2× PyTorch's speed (≥ 1.5: met)
    assert "1.5 × its GEMM floor: **met** — 1.20× floor" in text
    assert "faster than the PyTorch peer: **met** — 2.00× PyTorch" in text

    for name in ("epoch", "ratio_floor", "ratio_pytorch", "step_ms"):
        png = tmp_path / "out" / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert f"plots/{name}.png" in text


def test_targets_not_met(tmp_path: Path) -> None:
    data = _synthetic()
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if info["kind"] == "epoch-peer":
            bench["stats"]["median"] = 3.3  # only 1.1× faster than PyTorch
        if info["kind"] == "epoch-floor" and info["backend"] == "numpy":
            bench["stats"]["median"] = 1.0  # 3× the floor
    _, epochs = report.summarize(data)
    text = report.epoch_section(epochs, {})
    assert "GEMM floor: **not met** — 3.00× floor" in text
    assert "PyTorch peer: **not met** — 1.10× PyTorch" in text


def test_missing_headline_is_not_met_silently() -> None:
    text = report.epoch_section([], {})
    assert text.count("not measured") == 2


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
    """The same run on a machine without PyTorch: no peers, no torch backend, no version."""
    data["benchmarks"] = [b for b in data["benchmarks"]
                          if b["extra_info"]["backend"] not in ("torch", "torch.nn")]
    data["machine_info"]["mlp"]["versions"].pop("torch", None)
    return data


def test_missing_pytorch_says_how_to_install_it(tmp_path: Path) -> None:
    source = tmp_path / "results.json"
    source.write_text(json.dumps(_without_pytorch(_synthetic())), encoding="utf-8")
    text = report.build_report(source, tmp_path / "out").read_text(encoding="utf-8")
    hint = "pip install torch --index-url https://download.pytorch.org/whl/cpu"
    headline = text[text.index("## Headline"):text.index("## Per step")]
    peer_line = next(line for line in headline.splitlines() if "PyTorch peer" in line)
    assert peer_line == ("- ≥ 1.5 × faster than the PyTorch peer: not measured — PyTorch is not "
                         f"installed; install its CPU build with `{hint}` and rerun `mlp bench`")
    assert "GEMM floor: **met** — 1.20× floor" in headline  # the floor target is still judged
    per_step = text[text.index("## Per step"):]
    assert f"No PyTorch column: PyTorch is not installed; install its CPU build with `{hint}`" \
        in per_step
    plots = tmp_path / "out" / "plots"
    assert not (plots / "ratio_pytorch.png").exists()  # nothing to compare with
    assert (plots / "epoch.png").read_bytes()[:8] == PNG_MAGIC


def test_peer_left_out_with_pytorch_installed_says_so() -> None:
    data = _synthetic()
    data["benchmarks"] = [b for b in data["benchmarks"]
                          if b["extra_info"]["kind"] != "epoch-peer"]
    _, epochs = report.summarize(data)
    text = report.epoch_section(epochs, {}, torch_version="2.13.0")
    assert ("faster than the PyTorch peer: not measured — the PyTorch peer (torch 2.13.0) was not "
            "part of this run") in text


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
