"""Tests of the ``mlp`` command line: end-to-end training, its output files, ``evaluate``,
option checking, output-path checks, ``info`` and ``--help``.

Process-level behaviour (exit status, what reaches stderr, no traceback) is checked on the real
command, ``python -m mlp``, in a subprocess; the rest calls :func:`mlp.cli.main` in-process,
which is the same code without the start-up cost.

The end-to-end test trains on the MNIST copy shipped with the package. Everything else trains a
small model on MNIST written here as raw (decompressed) IDX files and given with ``--data-dir``;
the data module verifies them like any other copy, so the real CLI loads them with no test hook.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_support import clean_env, write_real_mnist_raw

import backends
from mlp import checkpoint, data
from mlp.cli import DEFAULTS, build_parser, main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METRIC_KEYS = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"}
BACKEND_LINES = ("numpy", "array_api_strict", "torch", "cupy", "jax")
#: A small, quick model for the fake dataset: 30 steps per epoch.
SMALL = ("--dataset", "mnist", "--hidden", "16", "--batch-size", "2000")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def fake_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_real_mnist_raw(tmp_path_factory.getbasetemp() / "mnist-raw")


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


def assert_usage_error(err: str, prog: str, message: str) -> None:
    """Exactly one stderr line: ``PROG: error: ... MESSAGE ... (see PROG --help)``."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    assert lines[0].endswith(f"(see {prog} --help)"), err
    assert message in lines[0], err


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
    # One hidden layer of 256, 3 epochs, Adam at 2e-3 (cosine): 97.5-97.6 % for seeds 0-4.
    env = clean_env(tmp_path)  # no data option: the MNIST shipped with the package
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
    labels = data.load("mnist", split="test").y_test
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
        assert f"test loss {m['test_loss']:.4f} acc {100 * m['test_acc']:.2f}%" in (
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
    assert ckpt.meta["dataset"] == "mnist"
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
    assert "mnist test set, 10000 images, backend numpy" in run.stdout


def test_evaluate_needs_only_the_test_split(trained: dict, fake_data: Path,
                                            tmp_path: Path) -> None:
    """A folder with only the two t10k files is enough: the training set is never read."""
    folder = tmp_path / "test-only"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / name).symlink_to(fake_data / name)
    run = run_mlp("evaluate", "--checkpoint", trained["save"], "--data-dir", folder,
                  cwd=tmp_path, env=clean_env(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "mnist test set, 10000 images" in run.stdout


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
    target = tmp_path / "precious.svg"
    target.write_bytes(b"precious results")
    with pytest.raises(SystemExit) as exc:
        main(["train", *SMALL, "--data-dir", str(tmp_path / "no-data"), option, str(target)])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert_usage_error(err, "mlp train", f"{option} {target}: the file exists; pass --overwrite")
    assert target.read_bytes() == b"precious results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.svg"]


@pytest.mark.parametrize("option", ["--save", "--metrics", "--plot"])
def test_output_in_missing_folder_fails_before_training(
        option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing" / "out.svg"
    with pytest.raises(SystemExit) as exc:
        main(["train", *SMALL, "--data-dir", str(tmp_path / "no-data"), option, str(target)])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert_usage_error(err, "mlp train", f"{option} {target}: folder {target.parent} does not "
                       "exist")
    assert not target.parent.exists()


def test_output_path_that_is_a_folder(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", *SMALL, "--data-dir", str(tmp_path / "no-data"), "--overwrite",
              "--metrics", str(tmp_path)])
    assert exc.value.code == 2
    assert_usage_error(capsys.readouterr().err, "mlp train", "is a folder, not a file")


def test_existing_output_refused_by_the_real_process(tmp_path: Path) -> None:
    target = tmp_path / "run.safetensors"
    target.write_bytes(b"keep me")
    run = run_mlp("train", *SMALL, "--data-dir", tmp_path / "no-data", "--save", target,
                  cwd=tmp_path)
    assert run.returncode == 2
    assert run.stdout == ""
    assert_usage_error(run.stderr, "mlp train", f"--save {target}: the file exists")
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
    assert_usage_error(err, "mlp train", message)


@pytest.mark.parametrize(
    "args, message",
    [(["train", "--backend", "nope"], "invalid choice: 'nope'"),
     (["train", "--backend", "array_api_strict", "--device", "no_float64", "--dtype",
       "float64"], "has no float64"),
     (["train", "--lr", "-1"], "must be a finite number > 0"),
     ([], "the following arguments are required: COMMAND"),
     (["evaluate"], "the following arguments are required: --checkpoint"),
     (["predikt"], "invalid choice: 'predikt'"),
     (["train", "--epochs"], "argument --epochs: expected one argument"),
     (["train", "--no-such-option"], "unrecognized arguments: --no-such-option")],
    ids=["unknown backend", "no float64", "negative lr", "no command", "evaluate without "
         "checkpoint", "unknown command", "missing value", "unknown option"],
)
def test_bad_options_in_the_real_process(args: list[str], message: str,
                                         tmp_path: Path) -> None:
    run = run_mlp(*args, cwd=tmp_path)
    assert run.returncode == 2
    assert run.stdout == ""
    prog = "mlp" if args[:1] in ([], ["predikt"]) else f"mlp {args[0]}"
    assert_usage_error(run.stderr, prog, message)


def test_no_command_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert_usage_error(capsys.readouterr().err, "mlp", "required: COMMAND")


def test_version(tmp_path: Path) -> None:
    import mlp

    run = run_mlp("--version", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"mlp {mlp.__version__}\n"


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


def _sub_parser(name: str):
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")  # noqa: SLF001
    return subparsers.choices[name]


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_every_option_has_a_description(command: str) -> None:
    for action in _sub_parser(command)._actions:  # noqa: SLF001
        assert action.help and action.help.strip(), action.option_strings


def test_evaluate_help_describes_each_option(capsys: pytest.CaptureFixture[str]) -> None:
    text = " ".join(_help(["evaluate", "--help"], capsys).split())
    for phrase in ("the checkpoint to evaluate", "array library to evaluate on",
                   "test set to use", "folder holding the test split's IDX", "show tracebacks"):
        assert phrase in text, text


def test_choices_come_from_the_registries() -> None:
    from mlp import optimizers
    from mlp.cli.settings import OPTIMIZER_CHOICES
    from mlp.layers.activations import ACTIVATIONS

    train = _sub_parser("train")
    choices = {a.dest: a.choices for a in train._actions if a.choices}  # noqa: SLF001
    assert set(choices["activation"]) == set(ACTIVATIONS)
    assert set(choices["dataset"]) == set(data.DATASETS)
    assert set(choices["backend"]) == set(backends.NAMES)
    assert set(choices["optimizer"]) == {*(n.lower() for n in optimizers.OPTIMIZERS), "momentum"}
    assert all(c.name in optimizers.OPTIMIZERS for c in OPTIMIZER_CHOICES.values())
    import mlp.cli

    assert not hasattr(mlp.cli, "OPTIMIZERS")


def test_output_fits_80_columns_and_names_the_settings(trained: dict) -> None:
    """The header and the epoch lines fit 80 columns; the header names each setting that
    changes the numbers, and counts in words (no "1 steps")."""
    out = trained["run"].stdout
    # Lines naming a file of the user's (the checkpoint written) are as long as its path.
    ours = [line for line in out.splitlines() if str(trained["tmp"]) not in line]
    assert all(len(line) <= 80 for line in ours), out
    header = " ".join(out.split("epoch 1/2")[0].split())
    for phrase in ("MLP 784-16-10", "relu", "float32 on numpy:cpu", "mnist",
                   "2 epochs of 30 steps", "batch 2000", "seed 0", "adam lr 0.002",
                   "weight decay 0", "cosine schedule", "dropout 0", "label smoothing 0"):
        assert phrase in header, (phrase, header)


def test_header_of_the_longest_settings(tmp_path: Path, fake_data: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The best preset with a one-step epoch: warm-up and label smoothing named, "1 step",
    every line within 80 columns."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--preset", "best", "--dataset", "mnist", "--hidden", "8",
                 "--batch-size", "60000", "--epochs", "1", "--data-dir", str(fake_data),
                 "--optimizer", "momentum", "--save", "x.st"]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    text = " ".join(out.split())
    for phrase in ("1 epoch of 1 step,", "label smoothing 0.1", "with 500 warm-up steps",
                   "momentum lr 0.001 momentum 0.9", "dropout 0.2", "weight decay 0.02"):
        assert phrase in text, (phrase, text)


def test_jit_on_a_backend_that_does_not_compile_is_one_usage_line(tmp_path: Path) -> None:
    run = run_mlp("train", "--jit", "--epochs", "1", cwd=tmp_path, env=clean_env(tmp_path))
    assert run.returncode == 2
    assert_usage_error(run.stderr, "mlp train", "--jit: backend 'numpy' does not compile")


def test_jit_and_no_jit_train_the_same_run_on_jax(tmp_path: Path, fake_data: Path) -> None:
    pytest.importorskip("jax", reason="the jax backend needs jax")
    results = []
    for jit in ("--jit", "--no-jit"):
        run = run_mlp("train", "--backend", "jax", jit, "--hidden", "16", "--batch-size",
                      "2000", "--epochs", "1", "--data-dir", fake_data, "--quiet", "--metrics",
                      f"m{jit}.jsonl", cwd=tmp_path, env=clean_env(tmp_path))
        assert run.returncode == 0, run.stderr
        results.append(read_metrics(tmp_path / f"m{jit}.jsonl")[0])
    compiled, eager = results
    assert compiled["test_acc"] > 0.2  # learned something in 30 steps (chance: 0.1)
    assert compiled["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-4)
    assert compiled["test_acc"] == pytest.approx(eager["test_acc"], abs=2e-4)


def test_cuda_graph_where_there_are_none_is_one_usage_line(tmp_path: Path) -> None:
    run = run_mlp("train", "--cuda-graph", "--epochs", "1", cwd=tmp_path, env=clean_env(tmp_path))
    assert run.returncode == 2
    assert_usage_error(run.stderr, "mlp train",
                       "--cuda-graph: backend 'numpy' on cpu has no CUDA graphs")


@pytest.mark.gpu
def test_cuda_graph_trains_the_same_run(tmp_path: Path, fake_data: Path, get_backend) -> None:
    """PyTorch on CUDA, captured and eager: the same metrics (but the times)."""
    get_backend("torch", "cuda")  # or skip, saying why
    results = []
    for flag in ("--cuda-graph", "--no-jit"):
        run = run_mlp("train", "--backend", "torch", "--device", "cuda", flag, "--hidden", "16",
                      "--batch-size", "500", "--epochs", "2", "--data-dir", fake_data,
                      "--metrics", f"m{flag}.jsonl", cwd=tmp_path, env=clean_env(tmp_path))
        assert run.returncode == 0, run.stderr
        results.append([{k: v for k, v in m.items() if k not in ("seconds", "samples_per_s")}
                        for m in read_metrics(tmp_path / f"m{flag}.jsonl")])
        # 2 epochs of 120 steps; the first ran eagerly, the others replayed one graph.
        graph_line = "the step ran as a CUDA graph: 1 graph captured, 239 steps replayed"
        assert (graph_line in run.stdout) is (flag == "--cuda-graph"), run.stdout
    assert results[0] == results[1]
