"""Tests of the ``mlp`` command line: end-to-end training, its output files, ``evaluate``,
option checking, output-path checks, ``info`` and ``--help``.

Process-level behaviour (exit status, what reaches stderr, no traceback) is checked on the real
command, ``python -m mlp``, in a subprocess; the rest calls :func:`mlp.cli.main` in-process,
which is the same code without the start-up cost.

Only one test needs the real MNIST files (found through ``MLP_DATA_DIR``; skipped when that is
unset or missing, failed when ``CI`` is set). Everything else trains on a small-model run over a
fake dataset written here: Fashion-MNIST-shaped raw IDX files (60000 + 10000 images), which the
data module checks for structure only, so the real CLI loads them without any test hook.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_support import clean_env, write_fake_fashion

import backends
from mlp import checkpoint, data
from mlp.cli import DEFAULTS, build_parser, main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METRIC_KEYS = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"}
BACKEND_LINES = ("numpy", "array_api_strict", "torch", "cupy", "jax")
#: A small, quick model for the fake dataset: 30 steps per epoch.
SMALL = ("--dataset", "fashion-mnist", "--hidden", "16", "--batch-size", "2000")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def fake_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_fashion(tmp_path_factory.getbasetemp() / "fake-fashion")


@pytest.fixture(scope="session")
def fake_test_labels(fake_data: Path) -> np.ndarray:
    raw = (fake_data / "t10k-labels-idx1-ubyte").read_bytes()
    return np.frombuffer(raw[8:], dtype=np.uint8).astype(np.int64)


def run_mlp(*args: object, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m mlp ARGS`` in ``cwd``; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "mlp", *map(str, args)],
        cwd=cwd, env=env if env is not None else clean_env(cwd),
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check_evaluate_output(text: str, labels: np.ndarray) -> float:
    """The test loss and accuracy lines and a confusion matrix whose rows count the true
    classes; returns the printed accuracy (a fraction)."""
    loss = re.search(r"test loss (\d+\.\d+)", text)
    acc = re.search(r"test accuracy (\d+\.\d+)%", text)
    assert loss and acc, text
    assert "confusion matrix" in text, text
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("confusion matrix"))
    header = lines[start + 1].split()
    assert header == [str(j) for j in range(10)], text
    matrix = np.array([[int(v) for v in line.split()] for line in lines[start + 2:start + 12]])
    assert matrix.shape == (10, 11), text
    assert list(matrix[:, 0]) == list(range(10))
    counts = matrix[:, 1:]
    np.testing.assert_array_equal(counts.sum(axis=1), np.bincount(labels, minlength=10))
    accuracy = float(acc.group(1)) / 100
    assert abs(np.trace(counts) / counts.sum() - accuracy) <= 0.00005 + 1e-12
    return accuracy


# --------------------------------------------------------------------------- real MNIST


def real_mnist_dir() -> Path:
    """The MNIST folder from ``MLP_DATA_DIR``; skip without it, but fail when ``CI`` is set."""
    folder = os.environ.get("MLP_DATA_DIR")
    reason = None
    if not folder:
        reason = "MLP_DATA_DIR is not set; the end-to-end test needs the real MNIST files"
    elif not Path(folder).is_dir():
        reason = f"MLP_DATA_DIR={folder} is not a folder; the end-to-end test needs real MNIST"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
        pytest.skip(reason)
    return Path(folder)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_end_to_end_real_mnist(backend: str, tmp_path: Path) -> None:
    """A short run on real MNIST reaches >= 97 % test accuracy, and ``evaluate`` on its
    checkpoint (always on NumPy: a model trained on a GPU evaluates on the CPU) reports the
    same loss and accuracy with a consistent confusion matrix."""
    if backend != "numpy":
        try:
            backends.get(backend)
        except backends.BackendError as exc:
            pytest.skip(str(exc))
    folder = real_mnist_dir()
    # One hidden layer of 256, 3 epochs, Adam at 2e-3 (cosine): 97.5-97.6 % for seeds 0-4.
    env = clean_env(tmp_path, data_dir=str(folder))
    ckpt, metrics = tmp_path / "mnist.safetensors", tmp_path / "mnist.jsonl"
    run = run_mlp("train", "--backend", backend, "--hidden", "256", "--epochs", "3",
                  "--lr", "2e-3", "--save", ckpt, "--metrics", metrics, "--quiet",
                  cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    history = read_metrics(metrics)
    assert [m["epoch"] for m in history] == [1, 2, 3]
    final = history[-1]
    assert final["test_acc"] >= 0.97, history
    assert f"test accuracy {100 * final['test_acc']:.2f}%" in run.stdout

    evaluated = run_mlp("evaluate", "--checkpoint", ckpt, cwd=tmp_path, env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    labels = data.load("mnist", folder).y_test
    assert check_evaluate_output(evaluated.stdout, labels) == pytest.approx(
        final["test_acc"], abs=5e-5)
    assert f"test loss {final['test_loss']:.4f}" in evaluated.stdout


# --------------------------------------------------------------------------- output files


@pytest.fixture(scope="module")
def trained(fake_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One 2-epoch run with --metrics, --plot and --save, over files that already exist
    (so --overwrite is exercised too)."""
    tmp = tmp_path_factory.mktemp("trained")
    paths = {"metrics": tmp / "run.jsonl", "plot": tmp / "run.png",
             "save": tmp / "run.safetensors"}
    for p in paths.values():
        p.write_bytes(b"an old file that --overwrite may replace")
    run = run_mlp("train", *SMALL, "--data-dir", fake_data, "--epochs", "2",
                  "--metrics", paths["metrics"], "--plot", paths["plot"],
                  "--save", paths["save"], "--overwrite", cwd=tmp)
    return {"run": run, "tmp": tmp, **paths}


def test_train_writes_metrics_jsonl(trained: dict) -> None:
    assert trained["run"].returncode == 0, trained["run"].stderr
    history = read_metrics(trained["metrics"])
    assert [m["epoch"] for m in history] == [1, 2]
    for m in history:
        assert METRIC_KEYS <= set(m), m
        for key in METRIC_KEYS - {"epoch"}:
            assert isinstance(m[key], float) and math.isfinite(m[key]), (key, m)
        assert 0.0 <= m["train_acc"] <= 1.0 and 0.0 <= m["test_acc"] <= 1.0
        assert m["train_loss"] > 0 and m["test_loss"] > 0 and m["seconds"] > 0
    # The per-epoch lines on stdout say the same.
    for m in history:
        assert f"test loss {m['test_loss']:.4f} acc {100 * m['test_acc']:6.2f}%" in (
            trained["run"].stdout)


def test_train_writes_png_plot(trained: dict) -> None:
    assert trained["run"].returncode == 0, trained["run"].stderr
    content = trained["plot"].read_bytes()
    assert content.startswith(PNG_MAGIC)
    assert len(content) > 1000
    assert f"plot written to {trained['plot']}" in trained["run"].stdout


def test_train_saves_loadable_checkpoint(trained: dict) -> None:
    assert trained["run"].returncode == 0, trained["run"].stderr
    ckpt = checkpoint.load(trained["save"])
    assert ckpt.meta["epoch"] == 2
    assert ckpt.meta["dataset"] == "fashion-mnist"
    assert ckpt.config["sizes"] == [784, 16, 10]
    assert all(np.all(np.isfinite(p)) for p in ckpt.params.values())
    assert f"checkpoint written to {trained['save']}" in trained["run"].stdout


def test_evaluate_subprocess_reads_the_checkpoint(trained: dict, fake_data: Path,
                                                  fake_test_labels: np.ndarray) -> None:
    assert trained["run"].returncode == 0, trained["run"].stderr
    run = run_mlp("evaluate", "--checkpoint", trained["save"], "--data-dir", fake_data,
                  cwd=trained["tmp"])
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    final = read_metrics(trained["metrics"])[-1]
    assert check_evaluate_output(run.stdout, fake_test_labels) == pytest.approx(
        final["test_acc"], abs=5e-5)
    assert f"test loss {final['test_loss']:.4f}" in run.stdout
    assert "fashion-mnist test set, 10000 images, backend numpy" in run.stdout


@pytest.mark.parametrize("backend", ["array_api_strict", "torch", "jax"])
def test_evaluate_on_other_backends(backend: str, trained: dict, fake_data: Path,
                                    fake_test_labels: np.ndarray,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip(backend, reason=f"the {backend} backend is not installed",
                        exc_type=ImportError)
    assert trained["run"].returncode == 0, trained["run"].stderr
    rc = main(["evaluate", "--checkpoint", str(trained["save"]), "--backend", backend,
               "--data-dir", str(fake_data)])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"backend {backend}" in out
    final = read_metrics(trained["metrics"])[-1]
    # Another library may round differently; a handful of flipped predictions at most.
    assert check_evaluate_output(out, fake_test_labels) == pytest.approx(
        final["test_acc"], abs=0.002)


# --------------------------------------------------------------------------- output paths


@pytest.mark.parametrize("option", ["--save", "--metrics", "--plot"])
def test_existing_output_file_is_not_overwritten(option: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2 with a usage message, the file unchanged, and before any data is read: the data
    folder does not exist, which would be an exit-1 data error had training begun."""
    target = tmp_path / "precious.out"
    target.write_bytes(b"precious results")
    with pytest.raises(SystemExit) as exc:
        main(["train", *SMALL, "--data-dir", str(tmp_path / "no-data"), option, str(target)])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "usage: mlp train" in err
    assert f"{option} {target}: the file exists; pass --overwrite" in err
    assert target.read_bytes() == b"precious results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.out"]


@pytest.mark.parametrize("option", ["--save", "--metrics", "--plot"])
def test_output_in_missing_folder_fails_before_training(
        option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing" / "out.file"
    with pytest.raises(SystemExit) as exc:
        main(["train", *SMALL, "--data-dir", str(tmp_path / "no-data"), option, str(target)])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "usage: mlp train" in err
    assert f"{option} {target}: folder {target.parent} does not exist" in err
    assert not target.parent.exists()


def test_output_path_that_is_a_folder(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", *SMALL, "--data-dir", str(tmp_path / "no-data"), "--overwrite",
              "--metrics", str(tmp_path)])
    assert exc.value.code == 2
    assert "is a folder, not a file" in capsys.readouterr().err


def test_existing_output_refused_by_the_real_process(tmp_path: Path) -> None:
    target = tmp_path / "run.safetensors"
    target.write_bytes(b"keep me")
    run = run_mlp("train", *SMALL, "--data-dir", tmp_path / "no-data", "--save", target,
                  cwd=tmp_path)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.startswith("usage: mlp train")
    assert run.stderr.strip().splitlines()[-1].startswith("mlp train: error: --save ")
    assert "Traceback" not in run.stderr
    assert target.read_bytes() == b"keep me"


# --------------------------------------------------------------------------- option values


BAD_OPTIONS = {
    "unknown backend": (["--backend", "tensorflow"], "invalid choice: 'tensorflow'"),
    "lr zero": (["--lr", "0"], "--lr: must be a finite number > 0"),
    "lr negative": (["--lr", "-1"], "--lr: must be a finite number > 0"),
    "lr nan": (["--lr", "nan"], "--lr: must be a finite number > 0"),
    "lr not a number": (["--lr", "fast"], "'fast' is not a number"),
    "batch size zero": (["--batch-size", "0"], "--batch-size: must be an integer >= 1"),
    "epochs zero": (["--epochs", "0"], "--epochs: must be an integer >= 1"),
    "hidden not ints": (["--hidden", "a,b"], "--hidden takes comma-separated widths"),
    "hidden zero": (["--hidden", "0"], "--hidden widths must be >= 1"),
    "dropout above one": (["--dropout", "1.5"], "--dropout: must be a finite number in [0, 1)"),
    "dropout one": (["--dropout", "1"], "--dropout: must be a finite number in [0, 1)"),
    "label smoothing negative": (["--label-smoothing", "-0.1"], "must be a finite number in"),
    "warmup negative": (["--warmup", "-5"], "--warmup: must be an integer >= 0"),
    "unknown optimizer": (["--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    "float64 on a device without it": (
        ["--backend", "array_api_strict", "--device", "no_float64", "--dtype", "float64"],
        "has no float64",
    ),
    "numpy on a gpu": (["--device", "cuda:0"], "runs on device 'cpu' only"),
}


@pytest.mark.parametrize("args, message", list(BAD_OPTIONS.values()), ids=list(BAD_OPTIONS))
def test_bad_option_values_exit_2(args: list[str], message: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data-dir", str(tmp_path / "no-data"), *args])
    out, err = capsys.readouterr()
    assert exc.value.code == 2
    assert out == ""
    assert err.startswith("usage: mlp train"), err
    last = err.strip().splitlines()[-1]
    assert last.startswith("mlp train: error: "), err
    assert message in last, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args, message",
    [(["train", "--backend", "nope"], "invalid choice: 'nope'"),
     (["train", "--backend", "array_api_strict", "--device", "no_float64", "--dtype",
       "float64"], "has no float64"),
     (["train", "--lr", "-1"], "must be a finite number > 0"),
     ([], "the following arguments are required: COMMAND")],
    ids=["unknown backend", "no float64", "negative lr", "no command"],
)
def test_bad_options_in_the_real_process(args: list[str], message: str,
                                         tmp_path: Path) -> None:
    run = run_mlp(*args, cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.startswith("usage: mlp"), run.stderr
    assert message in run.stderr.strip().splitlines()[-1]
    assert "Traceback" not in run.stderr


def test_no_command_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "usage: mlp" in capsys.readouterr().err


# --------------------------------------------------------------------------- info and help


def test_info_lists_every_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name in BACKEND_LINES:
        matching = [line for line in lines if re.match(rf"\s+{name}\s", line)]
        assert len(matching) == 1, (name, out)
    numpy_line = next(line for line in lines if re.match(r"\s+numpy\s", line))
    assert np.__version__ in numpy_line and "float64" in numpy_line
    assert "BLAS / OpenMP thread pools:" in out
    assert out.startswith("array-api-mlp ")


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(["--help"], capsys)
    for word in ("train", "evaluate", "info", "bench", "--debug"):
        assert word in text, text


def _train_parser():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")  # noqa: SLF001
    return subparsers.choices["train"]


#: Options whose absence means "do not do it" (no file written, nothing resumed).
NO_DEFAULT = {"--metrics", "--plot", "--save", "--resume"}


def test_train_help_names_every_option_with_its_default(
        capsys: pytest.CaptureFixture[str]) -> None:
    text = " ".join(_help(["train", "--help"], capsys).split())
    train = _train_parser()
    formatter = train._get_formatter()  # noqa: SLF001
    for action in train._actions:  # noqa: SLF001
        if not action.option_strings or action.dest == "help":
            continue
        option = action.option_strings[-1]
        assert option in text, option
        # The help line as printed, with what ArgumentDefaultsHelpFormatter appends.
        shown = " ".join(formatter._expand_help(action).split())  # noqa: SLF001
        assert shown in text, (option, shown)
        if option in NO_DEFAULT:
            continue
        assert "default" in shown, (option, shown)
        if DEFAULTS.get(action.dest) is not None:
            assert f"default {DEFAULTS[action.dest]}" in shown, (option, shown)


def test_train_help_has_no_doubled_percent(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(["train", "--help"], capsys)
    assert "%%" not in text
