"""Reliability of ``mlp train`` and ``mlp evaluate`` as processes: interrupts (SIGINT, SIGTERM)
leave a checkpoint that resumes bit-identically, a diverging run stops with a clear message and
keeps the last good checkpoint, and broken data files or checkpoints give one error line, a
non-zero exit status and no traceback (unless ``--debug``).

Runs use MNIST written here as raw (decompressed) IDX files, verified by the data module like
any other copy, so the real command loads them with no test hook. A model with 16 hidden units
and batches of 2000 makes an epoch 30 steps.

Two kinds of interrupt are used. An *external* signal is sent once the process has printed its
model line (printed after the signal handlers are installed), to a run of 50 epochs, so it
always lands early in the run. A *self-signal* comes from a launcher script that wraps
the network's eager step to send the signal to its own process after a chosen step and then runs
``python -m mlp`` unchanged (via ``runpy``): the stop lands on an exact step, e.g. inside the
second epoch.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import pickle
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_support import clean_env, idx_bytes, write_real_mnist_raw
from safetensors import safe_open
from safetensors.numpy import save_file

from mlp import checkpoint
from mlp.cli import main
from mlp.fitting import MLP
from mlp.model import Network

STEPS = 30  # steps per epoch: 60000 images in batches of 2000
SMALL = ("--dataset", "mnist", "--hidden", "16", "--batch-size", "2000")
#: Settings of the resume comparisons: float64, dropout (so the model's RNG matters), a seed.
EXACT = (*SMALL, "--dtype", "float64", "--dropout", "0.2", "--seed", "7")
COMPARED_METRICS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr")

LAUNCHER = '''\
"""Run ``python -m mlp ARGS`` but send signal SIGNUM to this process after step STEP.

Usage: python launcher.py STEP SIGNUM ARGS...
"""
import os
import runpy
import sys

from mlp.model import Network

stop_at, signum = int(sys.argv[1]), int(sys.argv[2])
sys.argv = ["mlp", *sys.argv[3:]]
original = Network.eager_step
steps = 0


def eager_step(self, x, y):
    global steps
    result = original(self, x, y)
    steps += 1
    if steps == stop_at:
        os.kill(os.getpid(), signum)
    return result


Network.eager_step = eager_step
runpy.run_module("mlp", run_name="__main__", alter_sys=True)
'''


# --------------------------------------------------------------------------- data helpers


@pytest.fixture(scope="session")
def fake_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_real_mnist_raw(tmp_path_factory.getbasetemp() / "mnist-raw")


# --------------------------------------------------------------------------- process helpers


def mlp_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "mlp", *map(str, args)]


def run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=clean_env(cwd), capture_output=True, text=True,
                          timeout=timeout, check=False)


def run_mlp(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(mlp_command(*args), cwd)


def run_self_signalled(tmp: Path, step: int, signum: int, *args: object
                       ) -> subprocess.CompletedProcess[str]:
    """``python -m mlp ARGS``, stopped by its own signal ``signum`` after training step
    ``step`` (counted over the whole run)."""
    launcher = tmp / "launcher.py"
    launcher.write_text(LAUNCHER)
    return run([sys.executable, str(launcher), str(step), str(int(signum)), *map(str, args)],
               tmp)


class Running:
    """``python -m mlp ARGS`` running in the background; stdout read line by line."""

    def __init__(self, args: tuple[object, ...], cwd: Path) -> None:
        self.stderr_path = cwd / f"stderr-{id(self)}.txt"
        self._stderr = open(self.stderr_path, "w")  # closed in finish()
        self.process = subprocess.Popen(
            mlp_command(*args), cwd=cwd, env=clean_env(cwd), stdout=subprocess.PIPE,
            stderr=self._stderr, text=True,
        )
        self.stdout: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for_line(self, prefix: str, timeout: float = 600) -> str:
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line starting {prefix!r} in {timeout} s") from None
            if line is None:
                raise AssertionError(f"the process ended before printing {prefix!r}: "
                                     f"{self.stdout} {self.stderr_path.read_text()}")
            self.stdout.append(line)
            if line.startswith(prefix):
                return line

    def finish(self, timeout: float = 600) -> tuple[int, str]:
        """Wait for the exit; returns the status and stderr."""
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._reader.join(timeout=10)
            self._stderr.close()
        while not self._lines.empty():
            line = self._lines.get()
            if line is not None:
                self.stdout.append(line)
        return code, self.stderr_path.read_text()


def interrupt_externally(args: tuple[object, ...], cwd: Path, signum: int) -> tuple[int, str]:
    """Start ``mlp ARGS``, send ``signum`` once training is about to start, wait for the exit."""
    proc = Running(args, cwd)
    try:
        proc.wait_for_line("MLP ")  # printed after the signal handlers are installed
        proc.process.send_signal(signum)
    finally:
        code, err = proc.finish()
    return code, err


def resume_command(stderr: str) -> list[str]:
    """The ``mlp ...`` command the interrupt message suggests, as arguments."""
    match = re.search(r"^resume with: mlp (.+)$", stderr, re.MULTILINE)
    assert match, stderr
    return shlex.split(match.group(1))


def assert_stop_message(err: str, signum: int, state: dict, ckpt: Path | str) -> None:
    """The stop message matches the saved position: inside an epoch (``batch`` >= 1), or
    between two (``batch`` 0, after at least one epoch)."""
    name = signal.Signals(signum).name
    assert 0 <= state["batch"] < STEPS, state
    if state["batch"] == 0:
        assert state["epoch"] >= 1, state
        where = f"stopped after epoch {state['epoch']} of "
    else:
        where = f"stopped at epoch {state['epoch'] + 1}, step {state['batch']} of {STEPS}"
    assert f"mlp: {name} received: {where}" in err, err
    assert f"; saved {ckpt}" in err, err


def assert_one_line(err: str, start: str, *parts: str) -> None:
    """stderr is one line starting with ``start`` and holding each of ``parts``; no traceback."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(start), err
    for part in parts:
        assert part in lines[0], err


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_same_run(path: Path, reference: Path) -> None:
    """Bit-identical parameters, optimizer buffers and step count, and model RNG state."""
    got, want = checkpoint.load(path), checkpoint.load(reference)
    assert sorted(got.params) == sorted(want.params)
    for name in want.params:
        np.testing.assert_array_equal(got.params[name], want.params[name], err_msg=name)
        assert got.params[name].dtype == np.float64
    assert sorted(got.optimizer_state) == sorted(want.optimizer_state)
    for name in want.optimizer_state:
        np.testing.assert_array_equal(got.optimizer_state[name], want.optimizer_state[name],
                                      err_msg=name)
    assert got.steps == want.steps
    assert got.rng_state == want.rng_state
    assert got.meta["epoch"] == want.meta["epoch"]


def assert_same_metrics(path: Path, reference: Path) -> None:
    """The same per-epoch metrics (all but the timings), exactly."""
    got, want = read_metrics(path), read_metrics(reference)
    assert [m["epoch"] for m in got] == [m["epoch"] for m in want]
    for g, w in zip(got, want, strict=True):
        assert {k: g[k] for k in COMPARED_METRICS} == {k: w[k] for k in COMPARED_METRICS}


def train_reference(tmp: Path, fake_data: Path, *args: object) -> dict[str, Path]:
    out = {"save": tmp / "reference.safetensors", "metrics": tmp / "reference.jsonl"}
    result = run_mlp("train", *EXACT, "--data-dir", fake_data, *args, "--save", out["save"],
                     "--metrics", out["metrics"], "--quiet", cwd=tmp)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def reference_constant(fake_data: Path, tmp_path_factory: pytest.TempPathFactory
                       ) -> dict[str, Path]:
    """2 uninterrupted epochs, constant learning rate."""
    return train_reference(tmp_path_factory.mktemp("ref-constant"), fake_data,
                           "--schedule", "constant", "--epochs", "2")


@pytest.fixture(scope="module")
def reference_cosine(fake_data: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> dict[str, Path]:
    """2 uninterrupted epochs, the default cosine schedule over both."""
    return train_reference(tmp_path_factory.mktemp("ref-cosine"), fake_data, "--epochs", "2")


# --------------------------------------------------------------------------- resume


def test_resume_with_more_epochs_is_bit_identical(
        tmp_path: Path, fake_data: Path, reference_constant: dict[str, Path]) -> None:
    """1 epoch saved, then --resume --epochs 2, equals 2 epochs in one go. Only with a
    schedule that does not depend on the length of the run: a cosine schedule spans the
    whole run, and --resume with other --epochs re-spans it, so the first epoch would have
    run on a different schedule."""
    ckpt, metrics = tmp_path / "run.safetensors", tmp_path / "run.jsonl"
    first = run_mlp("train", *EXACT, "--schedule", "constant", "--epochs", "1",
                    "--data-dir", fake_data, "--save", ckpt, "--metrics", metrics, "--quiet",
                    cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert checkpoint.load(ckpt).meta["epoch"] == 1
    second = run_mlp("train", "--resume", ckpt, "--epochs", "2", "--data-dir", fake_data,
                     "--save", ckpt, "--metrics", metrics, "--quiet", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert_same_run(ckpt, reference_constant["save"])
    assert_same_metrics(metrics, reference_constant["metrics"])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_external_signal_then_resume_is_bit_identical(
        signum: signal.Signals, tmp_path: Path, fake_data: Path,
        reference_constant: dict[str, Path]) -> None:
    """A signal during the run: exit 128 + signal number, a message saying where it stopped
    and how to resume, a checkpoint; the suggested command then finishes the run
    bit-identically.

    The run is started with 50 epochs so the signal lands inside it, and resumed with enough
    epochs to cover the stop (allowed with --resume; the constant schedule does not depend
    on it). Where in the run the signal lands depends on the machine: inside an epoch (stopped
    after that step) or at an epoch's end (stopped between epochs); both are checked."""
    ckpt, metrics = tmp_path / "run.safetensors", tmp_path / "run.jsonl"
    code, err = interrupt_externally(
        ("train", *EXACT, "--schedule", "constant", "--epochs", "50", "--data-dir", fake_data,
         "--save", ckpt, "--metrics", metrics), tmp_path, signum)
    assert code == 128 + signum, err
    assert "Traceback" not in err
    state = checkpoint.load(ckpt).meta["train_state"]
    assert_stop_message(err, signum, state, ckpt)
    command = resume_command(err)
    assert command[:5] == ["train", "--resume", str(ckpt), "--save", str(ckpt)]

    # Compare against a reference of as many epochs as needed to cover the stop (2 when the
    # signal landed in the first epoch or at its end).
    epochs = max(2, state["epoch"] + 1)
    reference = reference_constant
    if epochs != 2:
        reference = train_reference(tmp_path / "longer", fake_data, "--schedule", "constant",
                                    "--epochs", epochs)
    resumed = run_mlp(*command, "--epochs", epochs, "--data-dir", fake_data,
                      "--metrics", metrics, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(ckpt, reference["save"])
    assert_same_metrics(metrics, reference["metrics"])


def test_signal_in_second_epoch_then_resume_is_bit_identical(
        tmp_path: Path, fake_data: Path, reference_cosine: dict[str, Path]) -> None:
    """SIGINT at step 7 of epoch 2 of a 2-epoch cosine run; resuming (same --epochs, so the
    same schedule) ends bit-identical to the uninterrupted run, metrics included."""
    ckpt, metrics = tmp_path / "run.safetensors", tmp_path / "run.jsonl"
    stopped = run_self_signalled(tmp_path, STEPS + 7, signal.SIGINT, "train", *EXACT,
                                 "--epochs", "2", "--data-dir", fake_data, "--save", ckpt,
                                 "--metrics", metrics)
    assert stopped.returncode == 130, stopped.stderr
    assert f"mlp: SIGINT received: stopped at epoch 2, step 7 of {STEPS}; saved {ckpt}" in (
        stopped.stderr)
    assert "Traceback" not in stopped.stderr
    saved = checkpoint.load(ckpt)
    assert saved.meta["train_state"]["epoch"] == 1
    assert saved.meta["train_state"]["batch"] == 7
    assert saved.steps == STEPS + 7
    assert [m["epoch"] for m in read_metrics(metrics)] == [1]

    resumed = run_mlp(*resume_command(stopped.stderr), "--data-dir", fake_data,
                      "--metrics", metrics, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(ckpt, reference_cosine["save"])
    assert_same_metrics(metrics, reference_cosine["metrics"])


def test_interrupt_without_save_writes_a_fresh_checkpoint(tmp_path: Path,
                                                         fake_data: Path) -> None:
    """No --save: the interrupt checkpoint goes to mlp-interrupted.safetensors in the working
    folder, and a second interrupt picks a new name rather than overwrite the first."""
    args = ("train", *SMALL, "--epochs", "50", "--data-dir", fake_data)
    first = tmp_path / "mlp-interrupted.safetensors"
    code, err = interrupt_externally(args, tmp_path, signal.SIGINT)
    assert code == 130, err
    assert "saved mlp-interrupted.safetensors" in err
    assert resume_command(err)[:5] == ["train", "--resume", first.name, "--save", first.name]
    assert_stop_message(err, signal.SIGINT, checkpoint.load(first).meta["train_state"],
                        first.name)
    before = first.read_bytes()

    code, err = interrupt_externally(args, tmp_path, signal.SIGTERM)
    assert code == 143, err
    second = tmp_path / "mlp-interrupted-1.safetensors"
    assert_stop_message(err, signal.SIGTERM, checkpoint.load(second).meta["train_state"],
                        second.name)
    assert first.read_bytes() == before
    assert {p.name for p in tmp_path.glob("*.safetensors")} == {first.name, second.name}


def test_printed_resume_command_works_as_printed(tmp_path: Path, fake_data: Path) -> None:
    stopped = run_self_signalled(tmp_path, 1, signal.SIGINT, "train", *SMALL, "--epochs", "1",
                                 "--data-dir", fake_data)
    assert stopped.returncode == 130, stopped.stderr
    resumed = run_mlp(*resume_command(stopped.stderr), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr


def test_resume_refuses_settings_it_would_ignore(tmp_path: Path, fake_data: Path) -> None:
    ckpt = tmp_path / "run.safetensors"
    stopped = run_self_signalled(tmp_path, 1, signal.SIGINT, "train", *SMALL, "--epochs", "1",
                                 "--data-dir", fake_data, "--save", ckpt)
    assert stopped.returncode == 130, stopped.stderr
    before = ckpt.read_bytes()
    resumed = run_mlp("train", "--resume", ckpt, "--lr", "0.5", "--data-dir", fake_data,
                      "--save", ckpt, cwd=tmp_path)
    assert resumed.returncode == 2, resumed.stderr
    assert_one_line(resumed.stderr, "mlp train: error: --lr 0.5 differs from the checkpoint's "
                    "0.002")
    assert ckpt.read_bytes() == before


# --------------------------------------------------------------------------- NaN / Inf


@pytest.fixture(scope="module")
def diverged(fake_data: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> subprocess.CompletedProcess[str]:
    """A real divergence: plain SGD with an absurd learning rate overflows within 2 steps."""
    tmp = tmp_path_factory.mktemp("diverged")
    return run_mlp("train", *SMALL, "--optimizer", "sgd", "--lr", "1e20", "--epochs", "1",
                   "--data-dir", fake_data, "--quiet", cwd=tmp)


def test_divergence_stops_with_step_and_learning_rate(
        diverged: subprocess.CompletedProcess[str]) -> None:
    assert diverged.returncode == 1, diverged.stderr
    last = diverged.stderr.strip().splitlines()[-1]
    assert re.match(r"mlp: error: the loss became (NaN|infinite) at epoch 1, step \d+ .*"
                    r"with learning rate [0-9.]+e\+\d+", last), diverged.stderr
    assert "--lr" in last
    assert "Traceback" not in diverged.stderr
    assert "test accuracy" not in diverged.stdout


def test_divergence_error_is_the_only_stderr_output(
        diverged: subprocess.CompletedProcess[str]) -> None:
    assert diverged.returncode == 1
    assert len(diverged.stderr.strip().splitlines()) == 1, diverged.stderr


def _nan_from_step(monkeypatch: pytest.MonkeyPatch, step: int,
                   on_nan=None) -> None:
    """Make the network's eager step return a NaN loss from overall step ``step`` on."""
    original = Network.eager_step
    count = {"steps": 0}

    def eager_step(self, x, y):
        loss, out = original(self, x, y)
        count["steps"] += 1
        if count["steps"] >= step:
            if on_nan is not None and count["steps"] == step:
                on_nan()
            return loss * float("nan"), out
        return loss, out

    monkeypatch.setattr(Network, "eager_step", eager_step)


def test_nan_in_second_epoch_keeps_first_epoch_checkpoint(
        tmp_path: Path, fake_data: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The loss turns NaN (forced) at step 3 of epoch 2: exit 1, a message with the step and
    learning rate naming the checkpoint kept, which is byte-identical to the one written after
    epoch 1 (in-process so the loss can be forced; real divergence is tested above)."""
    ckpt, metrics = tmp_path / "run.safetensors", tmp_path / "run.jsonl"
    snapshot: dict[str, bytes] = {}
    _nan_from_step(monkeypatch, STEPS + 3,
                   on_nan=lambda: snapshot.setdefault("bytes", ckpt.read_bytes()))
    code = main(["train", *SMALL, "--epochs", "3", "--data-dir", str(fake_data),
                 "--save", str(ckpt), "--metrics", str(metrics), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert re.search(r"^mlp: error: the loss became NaN at epoch 2, step 3 \(.*\) with "
                     r"learning rate [0-9.e+-]+", err, re.MULTILINE), err
    assert f"the last good checkpoint is kept in {ckpt}" in err
    assert ckpt.read_bytes() == snapshot["bytes"]
    kept = checkpoint.load(ckpt)
    assert kept.meta["epoch"] == 1
    assert kept.steps == STEPS
    assert all(np.all(np.isfinite(p)) for p in kept.params.values())
    assert [m["epoch"] for m in read_metrics(metrics)] == [1]


def test_nan_before_first_save_claims_no_checkpoint(
        tmp_path: Path, fake_data: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "run.safetensors"
    ckpt.write_bytes(b"not a checkpoint of this run")
    _nan_from_step(monkeypatch, 2)
    code = main(["train", *SMALL, "--epochs", "1", "--data-dir", str(fake_data),
                 "--save", str(ckpt), "--overwrite", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "the loss became NaN at epoch 1, step 2" in err
    assert ckpt.read_bytes() == b"not a checkpoint of this run"
    assert "last good checkpoint" not in err


# --------------------------------------------------------------------------- data errors


@functools.cache
def gz_idx(n: int = 60000) -> bytes:
    """Training images with MNIST's header (checked before the data is read) and other pixels."""
    images = np.arange(n * 28 * 28, dtype=np.int64).reshape(n, 28, 28) % 251
    return gzip.compress(idx_bytes(images.astype(np.uint8)), mtime=0)


def _mnist_folder(folder: Path, train_images: bytes | None, raw: bool = False) -> Path:
    """The four MNIST file names; the training images (read first) hold ``train_images``
    (absent when ``None``); the other three are small valid gzip IDX files."""
    folder.mkdir()
    small = gz_idx()
    for name in ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes(small)
    name = "train-images-idx3-ubyte" if raw else "train-images-idx3-ubyte.gz"
    if train_images is not None:
        (folder / name).write_bytes(train_images)
    return folder / name


def _fashion_folder(folder: Path, train_images: bytes) -> Path:
    """Raw Fashion-MNIST file names (structure checks only); training images as given."""
    folder.mkdir()
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    (folder / "train-images-idx3-ubyte").write_bytes(train_images)
    return folder / "train-images-idx3-ubyte"


def _crc_corrupted() -> bytes:
    data = bytearray(gz_idx())
    data[-8] ^= 0xFF  # the CRC-32 of the gzip trailer
    return bytes(data)


DATA_CASES = {
    "missing file": ("mnist", lambda d: _mnist_folder(d, None), "not found in"),
    "truncated gzip": ("mnist", lambda d: _mnist_folder(d, gz_idx()[:300]),
                       "truncated gzip file"),
    "gzip CRC error": ("mnist", lambda d: _mnist_folder(d, _crc_corrupted()),
                       "CRC check of the decompressed data failed"),
    "unknown IDX type code": ("mnist", lambda d: _mnist_folder(
        d, b"\x00\x00\x07\x03" + bytes(100), raw=True), "unknown IDX type code 0x07"),
    "labels magic in an images file": (
        "fashion-mnist", lambda d: _fashion_folder(d, idx_bytes(np.zeros(60000, np.uint8))),
        "not an IDX images file: expected uint8 with 3 dimensions (magic 0x00000803 = 2051)"),
    "count mismatch": (
        "fashion-mnist", lambda d: _fashion_folder(d, idx_bytes(np.zeros((100, 28, 28)))),
        "holds 100 images, fashion-mnist has 60000 in this split"),
    "not an IDX file": ("mnist", lambda d: _mnist_folder(
        d, b"<html><body>404 Not Found</body></html>\n"), "not an IDX file"),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_data_error_is_one_line_naming_the_file(case: str, tmp_path: Path) -> None:
    dataset, make, message = DATA_CASES[case]
    bad = make(tmp_path / "data")
    result = run_mlp("train", "--dataset", dataset, "--data-dir", bad.parent, "--hidden", "8",
                     "--epochs", "1", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mlp: error: ")
    assert message in lines[0]
    assert bad.name in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_data_folder(tmp_path: Path) -> None:
    result = run_mlp("train", "--data-dir", tmp_path / "nowhere", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"mlp: error: mnist: data folder {tmp_path / 'nowhere'} "
                                     "(--data-dir) does not exist")


def test_data_error_with_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = _mnist_folder(tmp_path / "data", gz_idx()[:300])
    result = run_mlp("--debug", "train", "--data-dir", bad.parent, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "DataError" in result.stderr and "truncated gzip file" in result.stderr


# --------------------------------------------------------------------------- checkpoint errors


class _Payload:
    """Unpickling this would create a folder: proof that nothing was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _valid_checkpoint(path: Path) -> bytes:
    model = MLP([784, 8, 10], seed=0)
    checkpoint.save(path, model, {"epoch": 0})
    return path.read_bytes()


def _foreign_safetensors(path: Path) -> None:
    import safetensors.numpy

    safetensors.numpy.save_file({"weight": np.zeros((2, 2), np.float32)}, str(path))


CHECKPOINT_CASES = {
    "pickle payload": lambda p: p.write_bytes(pickle.dumps(_Payload(p.parent / "unpickled"))),
    "random bytes": lambda p: p.write_bytes(np.random.default_rng(5).bytes(4096)),
    "empty file": lambda p: p.write_bytes(b""),
    "missing file": lambda p: None,
    "truncated checkpoint": lambda p: p.write_bytes(_valid_checkpoint(p)[:-100]),
    "safetensors of another program": lambda p: _foreign_safetensors(p),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_bad_checkpoint_is_refused(case: str, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    CHECKPOINT_CASES[case](path)
    result = run_mlp("evaluate", "--checkpoint", path, "--data-dir", tmp_path / "no-data",
                     cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mlp: error: invalid checkpoint {path}: "), lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "unpickled").exists()


def test_resume_from_a_bad_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps(_Payload(tmp_path / "unpickled")))
    result = run_mlp("train", "--resume", path, "--data-dir", tmp_path / "no-data",
                     cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"mlp: error: invalid checkpoint {path}: not a safetensors")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "unpickled").exists()


def test_resume_from_a_checkpoint_without_training_state(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    _valid_checkpoint(path)
    result = run_mlp("train", "--resume", path, "--data-dir", tmp_path / "no-data",
                     cwd=tmp_path)
    assert result.returncode == 1
    assert "holds no training state to resume" in result.stderr
    assert "Traceback" not in result.stderr


def test_resume_on_another_backend_takes_that_backends_device(tmp_path: Path,
                                                              fake_data: Path) -> None:
    """A run saved with an explicit device resumes with ``--backend`` alone on a library
    whose devices are named differently (the device falls back to that library's default)."""
    ckpt = tmp_path / "run.safetensors"
    first = run_mlp("train", *SMALL, "--epochs", "1", "--backend", "array_api_strict",
                    "--device", "CPU_DEVICE", "--data-dir", fake_data, "--save", ckpt,
                    "--quiet", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    resumed = run_mlp("train", "--resume", ckpt, "--backend", "numpy", "--epochs", "2",
                      "--data-dir", fake_data, "--save", ckpt, "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint.load(ckpt).meta["epoch"] == 2


# --------------------------------------------------------------------------- a finished run


@pytest.fixture(scope="module")
def one_epoch(fake_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished 1-epoch run: its checkpoint and metrics file (tests copy them)."""
    tmp = tmp_path_factory.mktemp("one-epoch")
    out = {"save": tmp / "run.safetensors", "metrics": tmp / "run.jsonl"}
    result = run_mlp("train", *SMALL, "--epochs", "1", "--data-dir", fake_data, "--save",
                     out["save"], "--metrics", out["metrics"], "--quiet", cwd=tmp)
    assert result.returncode == 0, result.stderr
    return out


def copy_run(one_epoch: dict[str, Path], tmp: Path) -> tuple[Path, Path]:
    ckpt, metrics = tmp / "run.safetensors", tmp / "run.jsonl"
    ckpt.write_bytes(one_epoch["save"].read_bytes())
    metrics.write_bytes(one_epoch["metrics"].read_bytes())
    return ckpt, metrics


def test_resume_accepts_the_checkpoints_own_values(tmp_path: Path, fake_data: Path,
                                                   one_epoch: dict[str, Path]) -> None:
    """The same command again with --resume added (and more epochs) runs."""
    ckpt, metrics = copy_run(one_epoch, tmp_path)
    resumed = run_mlp("train", *SMALL, "--hidden", "16", "--lr", "0.002", "--resume", ckpt,
                      "--epochs", "2", "--data-dir", fake_data, "--save", ckpt, "--metrics",
                      metrics, "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert [m["epoch"] for m in read_metrics(metrics)] == [1, 2]


def test_resume_refuses_a_different_value_naming_both(tmp_path: Path,
                                                      one_epoch: dict[str, Path]) -> None:
    ckpt, _ = copy_run(one_epoch, tmp_path)
    before = ckpt.read_bytes()
    result = run_mlp("train", "--resume", ckpt, "--hidden", "32", "--data-dir",
                     tmp_path / "no-data", "--save", ckpt, cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line(result.stderr, "mlp train: error: --hidden 32 differs from the "
                    "checkpoint's 16", "only --epochs, --backend and --device may differ")
    assert ckpt.read_bytes() == before


def test_resume_of_a_finished_run_writes_the_new_save(tmp_path: Path, fake_data: Path,
                                                      one_epoch: dict[str, Path]) -> None:
    """--resume done --save new on a finished run: nothing to train, said so, and new holds
    the run's checkpoint (not a claim of a file that was never written)."""
    ckpt, _ = copy_run(one_epoch, tmp_path)
    new = tmp_path / "new.safetensors"
    result = run_mlp("train", "--resume", ckpt, "--save", new, "--data-dir", fake_data,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "already finished epoch 1 of 1: nothing to train" in result.stdout
    assert f"checkpoint written to {new}" in result.stdout
    assert_same_tensors(new, ckpt)


def assert_same_tensors(path: Path, reference: Path) -> None:
    got, want = checkpoint.load(path), checkpoint.load(reference)
    for name in want.params:
        np.testing.assert_array_equal(got.params[name], want.params[name])
    assert got.meta["epoch"] == want.meta["epoch"]


# --------------------------------------------------------------------------- metrics on resume


def test_resume_with_metrics_on_the_checkpoint_is_refused(tmp_path: Path,
                                                          one_epoch: dict[str, Path]) -> None:
    ckpt, _ = copy_run(one_epoch, tmp_path)
    before = ckpt.read_bytes()
    result = run_mlp("train", "--resume", ckpt, "--metrics", ckpt, "--epochs", "2",
                     "--data-dir", tmp_path / "no-data", cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line(result.stderr, "mlp train: error: --resume and --metrics name the same file")
    assert ckpt.read_bytes() == before
    checkpoint.load(ckpt)


@pytest.mark.parametrize("content", [b"not json at all\n", b'{"a": 1}\n',
                                     b'{"epoch": 1, "train_loss": 9.0, "train_acc": 0.5, '
                                     b'"seconds": 1.0, "lr": 0.1}\n'],
                         ids=["text", "other JSON", "another run's metrics"])
def test_resume_appends_only_to_this_runs_metrics(content: bytes, tmp_path: Path,
                                                  one_epoch: dict[str, Path]) -> None:
    ckpt, _ = copy_run(one_epoch, tmp_path)
    foreign = tmp_path / "other.jsonl"
    foreign.write_bytes(content)
    result = run_mlp("train", "--resume", ckpt, "--metrics", foreign, "--epochs", "2",
                     "--data-dir", tmp_path / "no-data", cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line(result.stderr, f"mlp train: error: --metrics {foreign}: not this run's "
                    "metrics file")
    assert foreign.read_bytes() == content


def test_resume_with_a_new_metrics_file_starts_with_the_epochs_done(
        tmp_path: Path, fake_data: Path, one_epoch: dict[str, Path]) -> None:
    ckpt, old = copy_run(one_epoch, tmp_path)
    new = tmp_path / "new.jsonl"
    result = run_mlp("train", "--resume", ckpt, "--save", ckpt, "--metrics", new, "--epochs",
                     "2", "--data-dir", fake_data, "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = read_metrics(new)
    assert [m["epoch"] for m in lines] == [1, 2]
    assert lines[0] == read_metrics(old)[0]


# --------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("pair", [("--save", "--plot"), ("--save", "--metrics"),
                                  ("--metrics", "--plot")])
def test_two_outputs_on_one_file_are_refused(pair: tuple[str, str], tmp_path: Path) -> None:
    target = tmp_path / "same.png"
    result = run_mlp("train", *SMALL, pair[0], target, pair[1], target, "--data-dir",
                     tmp_path / "no-data", cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line(result.stderr, f"mlp train: error: {pair[0]} and {pair[1]} name the same "
                    "file")
    assert not target.exists()


def test_outputs_on_one_file_through_a_link_are_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    result = run_mlp("train", *SMALL, "--save", tmp_path / "real" / "x.svg", "--plot",
                     tmp_path / "link" / "x.svg", "--data-dir", tmp_path / "no-data",
                     cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line(result.stderr, "mlp train: error: --save and --plot name the same file")


@pytest.mark.parametrize("option", ["--save", "--metrics", "--plot"])
@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_non_regular_outputs_are_never_replaced(kind: str, option: str, tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    precious = tmp_path / "precious.txt"
    precious.write_bytes(b"keep")
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to(precious)
    result = run_mlp("train", *SMALL, option, target, "--overwrite", "--data-dir",
                     tmp_path / "no-data", cwd=tmp_path)
    assert result.returncode == 2
    what = "a symbolic link" if kind == "symlink" else "not a regular file"
    assert_one_line(result.stderr, f"mlp train: error: {option} {target}: is {what}")
    assert target.is_symlink() if kind == "symlink" else target.is_fifo()
    assert precious.read_bytes() == b"keep"


def test_plot_format_is_checked_before_training(tmp_path: Path) -> None:
    result = run_mlp("train", *SMALL, "--plot", tmp_path / "out.st", "--data-dir",
                     tmp_path / "no-data", cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line(result.stderr, f"mlp train: error: --plot {tmp_path / 'out.st'}: the "
                    "format comes from the suffix")


HOLD_LOCK = """\
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
sys.stdin.read()
"""


def test_an_output_claimed_by_another_run_is_refused(tmp_path: Path) -> None:
    """Another process holds the claim on --save (its lock file, as a running mlp train
    would): this run is refused naming that process, and writes nothing."""
    target = tmp_path / "run.safetensors"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, tmp_path / ".run.safetensors.lock"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        result = run_mlp("train", *SMALL, "--save", target, "--data-dir", tmp_path / "no-data",
                         cwd=tmp_path)
    finally:
        holder.communicate("")
    assert result.returncode == 1
    assert_one_line(result.stderr, f"mlp: error: --save {target}: in use by another mlp run "
                    f"(PID {holder.pid})")
    assert not target.exists()


def test_a_run_leaves_no_lock_files(trained_small: Path) -> None:
    assert sorted(p.name for p in trained_small.iterdir()) == ["m.jsonl", "p.png", "s.st"]


@pytest.fixture(scope="module")
def trained_small(fake_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("small")
    out = tmp / "out"
    out.mkdir()
    result = run_mlp("train", *SMALL, "--epochs", "1", "--data-dir", fake_data, "--save",
                     out / "s.st", "--metrics", out / "m.jsonl", "--plot", out / "p.png",
                     "--quiet", cwd=tmp)
    assert result.returncode == 0, result.stderr
    return out


# --------------------------------------------------------------------------- checkpoints


def _checkpoint_with(path: Path, one_epoch: dict[str, Path], settings: object = None,
                     state: object = None, sizes: list[int] | None = None) -> Path:
    """A checkpoint like ``one_epoch``'s with its settings, training state or layer sizes
    replaced (other sizes: with the hidden widths in its settings that describe them)."""
    good = checkpoint.load(one_epoch["save"])
    meta = json.loads(json.dumps(good.meta))
    if sizes is not None:
        meta["settings"]["hidden"] = ",".join(map(str, sizes[1:-1]))
    if settings is not None:
        meta["settings"] = settings
    if state is not None:
        meta["train_state"] = state
    model = checkpoint.restore(good) if sizes is None else MLP(sizes, seed=0)
    checkpoint.save(path, model, meta)
    return path


def _settings(one_epoch: dict[str, Path], **changes: object) -> dict:
    settings = dict(checkpoint.load(one_epoch["save"]).meta["settings"])
    settings.update(changes)
    return settings


BAD_SETTINGS = {
    "batch size 0": lambda g: _settings(g, batch_size=0),
    "lr a string": lambda g: _settings(g, lr="x"),
    "unknown key": lambda g: _settings(g, colour="blue"),
    "empty": lambda g: {},
    "not an object": lambda g: "x",
    "dataset a list": lambda g: _settings(g, dataset=["mnist"]),
    "activation an object": lambda g: _settings(g, activation={"relu": 1}),
    "init a list": lambda g: _settings(g, init=["he"]),
    "optimizer a list": lambda g: _settings(g, optimizer=["adam"]),
    "schedule a list": lambda g: _settings(g, schedule=["cosine"]),
    "loss a list": lambda g: _settings(g, loss=["softmax-xent"]),
    "dtype other than the model's": lambda g: _settings(g, dtype="float64"),
    "activation other than the model's": lambda g: _settings(g, activation="tanh"),
    "hidden other than the model's": lambda g: _settings(g, hidden="7"),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_resume_validates_the_settings(case: str, tmp_path: Path, fake_data: Path,
                                       one_epoch: dict[str, Path]) -> None:
    path = _checkpoint_with(tmp_path / "bad.st", one_epoch, settings=BAD_SETTINGS[case](one_epoch))
    result = run_mlp("train", "--resume", path, "--epochs", "2", "--data-dir", fake_data,
                     cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert_one_line(result.stderr, f"mlp: error: invalid checkpoint {path}: its training "
                    "settings")


@pytest.mark.parametrize("state", [{"batch": 10**9}, {"epoch": "x"}, {"colour": 1}, {}],
                         ids=["batch past the epoch", "epoch a string", "unknown key", "empty"])
def test_resume_validates_the_training_state(state: dict, tmp_path: Path, fake_data: Path,
                                             one_epoch: dict[str, Path]) -> None:
    saved = checkpoint.load(one_epoch["save"]).meta["train_state"]
    full = {**saved, **state} if state else {}
    # checkpoint.save refuses such a state, so the file's metadata is edited directly.
    path = tmp_path / "bad.st"
    with safe_open(one_epoch["save"], framework="numpy") as f:
        metadata = f.metadata()
        tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    header = json.loads(metadata[checkpoint.METADATA_KEY])
    header["meta"]["train_state"] = full
    save_file(tensors, path, {**metadata, checkpoint.METADATA_KEY: json.dumps(header)})
    result = run_mlp("train", "--resume", path, "--epochs", "2", "--data-dir", fake_data,
                     cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert_one_line(result.stderr, f"mlp: error: invalid checkpoint {path}: train_state")


@pytest.mark.parametrize("sizes", [[100, 8, 10], [784, 8, 3], [784, 8, 300]],
                         ids=["100 inputs", "3 classes", "300 classes"])
@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_checkpoint_must_fit_the_dataset(command: str, sizes: list[int], tmp_path: Path,
                                         fake_data: Path, one_epoch: dict[str, Path]) -> None:
    path = _checkpoint_with(tmp_path / "other.st", one_epoch, sizes=sizes)
    args = (["evaluate", "--checkpoint", path] if command == "evaluate"
            else ["train", "--resume", path, "--epochs", "2"])
    result = run_mlp(*args, "--data-dir", fake_data, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert_one_line(result.stderr, f"mlp: error: checkpoint {path} takes {sizes[0]} inputs "
                    f"and gives {sizes[-1]} classes, but mnist has 784 features and 10 "
                    "classes")
    assert result.stdout == ""


# ------------------------------------------------------------------- operating-system errors


def test_output_name_too_long(tmp_path: Path) -> None:
    target = tmp_path / ("x" * 300 + ".st")
    result = run_mlp("train", *SMALL, "--save", target, "--data-dir", tmp_path / "no-data",
                     cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert_one_line(result.stderr, "mlp: error: ", "File name too long", "xxxxx")


def _file_size_limit(limit: int) -> Callable[[], None]:
    """For ``preexec_fn``: files of this process may not grow past ``limit`` bytes (a full
    disk, as far as the writes are concerned), and the signal that would kill it is ignored."""
    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("option", ["--metrics", "--plot"])
def test_full_disk_on_metrics_or_plot_is_one_line(option: str, tmp_path: Path,
                                                  fake_data: Path) -> None:
    """The kernels compile into a cache of their own, which the same limit keeps from being
    written: one warning line naming that folder, and the run goes on to the write that fails."""
    target = tmp_path / ("out.jsonl" if option == "--metrics" else "out.png")
    cache = tmp_path / "numba-cache"
    env = {**clean_env(tmp_path), "NUMBA_CACHE_DIR": str(cache)}
    result = subprocess.run(mlp_command("train", *SMALL, "--epochs", "1", "--data-dir",
                                        fake_data, option, target, "--quiet"),
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                            check=False, preexec_fn=_file_size_limit(100))
    assert result.returncode == 1, result.stderr
    warning, error = result.stderr.splitlines()
    assert warning.startswith(f"mlp: warning: {cache}") and "without a cache" in warning, warning
    assert_one_line(error, f"mlp: error: {target}: ")


@pytest.fixture
def as_nobody() -> Iterator[tuple[Callable[..., subprocess.CompletedProcess[str]], Path]]:
    """``(run_as, folder)``: ``run_as(*ARGS, cwd=...)`` runs ``mlp ARGS`` as the unprivileged
    user ``nobody`` (65534); ``folder`` is a fresh folder every user can enter. Skipped where
    that cannot be done (not root, or no ``setpriv``): CI runs as root, where permissions
    are not enforced."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run a command as another user")
    probe = subprocess.run([setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups",
                            sys.executable, "-c", "import mlp"], capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:
        pytest.skip(f"this Python cannot run as user 65534: {probe.stderr.strip()[:200]}")
    folder = Path(tempfile.mkdtemp(prefix="mlp-nobody-"))
    folder.chmod(0o755)
    cache = folder / "numba-cache"  # the Numba kernels need a cache folder nobody can write
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)

    def run_as(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
        env = {**clean_env(cwd), "NUMBA_CACHE_DIR": str(cache)}
        command = [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups",
                   *mlp_command(*args)]
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=600, check=False)

    try:
        yield run_as, folder
    finally:
        shutil.rmtree(folder)


def test_unwritable_output_folder_as_a_user(as_nobody) -> None:
    run_as, folder = as_nobody
    locked = folder / "locked"
    locked.mkdir(mode=0o755)  # owned by root: nobody may not write
    result = run_as("train", *SMALL, "--save", locked / "run.st", "--data-dir",
                    folder / "no-data", cwd=folder)
    assert result.returncode == 1, result.stderr
    assert_one_line(result.stderr, f"mlp: error: {locked}/", "Permission denied")
    assert list(locked.iterdir()) == []


def test_unreadable_data_folder_as_a_user(as_nobody) -> None:
    run_as, folder = as_nobody
    (folder / "out").mkdir(mode=0o777)
    (folder / "out").chmod(0o777)
    data = folder / "data"
    data.mkdir(mode=0o700)  # owned by root: nobody may not read
    (data / "train-images-idx3-ubyte.gz").write_bytes(b"x")
    result = run_as("train", *SMALL, "--data-dir", data, "--save", folder / "out" / "run.st",
                    cwd=folder / "out")
    assert result.returncode == 1, result.stderr
    assert_one_line(result.stderr, "mlp: error: ", str(data), "ermission denied")


def test_unwritable_working_folder_without_save_as_a_user(as_nobody) -> None:
    """Without --save an interrupt would save in the working folder: that is checked first."""
    run_as, folder = as_nobody
    result = run_as("train", *SMALL, "--data-dir", folder / "no-data", cwd=folder)
    assert result.returncode == 2, result.stderr
    assert_one_line(result.stderr, "mlp train: error: cannot write in the working folder "
                    f"{folder} (Permission denied)", "pass --save FILE")


# -------------------------------------------------------------------- start-up and resources


STARTUP_LAUNCHER = '''\\
"""Run ``python -m mlp ARGS``, pausing in the import of MODULE until a signal arrives, so a
SIGINT lands during start-up for sure."""
import importlib.abc
import runpy
import sys
import time


class Pause(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "MODULE":
            print("importing", flush=True)
            time.sleep(600)
        return None


sys.meta_path.insert(0, Pause())
sys.argv = ["mlp", *sys.argv[1:]]
runpy.run_module("mlp", run_name="__main__", alter_sys=True)
'''


@pytest.mark.parametrize("module", ["numpy", "mlp.cli.train"])
def test_sigint_during_start_up_is_one_line(module: str, tmp_path: Path) -> None:
    """Whether the array library or the command is loading: one line, exit 130."""
    launcher = tmp_path / "startup.py"
    launcher.write_text(STARTUP_LAUNCHER.replace("MODULE", module))
    proc = subprocess.Popen([sys.executable, str(launcher), "train", "--data-dir",
                             tmp_path / "no-data"], cwd=tmp_path, env=clean_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "importing\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    assert err == "mlp: interrupted\n"


@pytest.mark.parametrize("hidden", ["1000000", str(10**20)])
def test_a_model_too_large_for_memory_is_refused(hidden: str, tmp_path: Path,
                                                 fake_data: Path) -> None:
    result = run_mlp("train", *SMALL, "--hidden", hidden, "--data-dir", fake_data,
                     cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_one_line(result.stderr, f"mlp train: error: the model 784-{hidden}-10 needs about ",
                    "of memory is available")


def _one_core() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
@pytest.mark.parametrize("threads", [1, 64])
def test_threads_are_capped_at_the_usable_cores(threads: int, tmp_path: Path,
                                                fake_data: Path) -> None:
    """On one usable core: --threads 1 as asked; --threads 64 capped at 1 with a warning. The
    header says how many threads run."""
    result = subprocess.run(mlp_command("train", *SMALL, "--epochs", "1", "--threads", threads,
                                        "--data-dir", fake_data),
                            cwd=tmp_path, env=clean_env(tmp_path), capture_output=True,
                            text=True, timeout=600, check=False, preexec_fn=_one_core)
    assert result.returncode == 0, result.stderr
    assert "on numpy:cpu (1 thread)" in result.stdout
    if threads == 1:
        assert result.stderr == ""
    else:
        assert result.stderr == ("mlp: warning: --threads 64: only 1 core usable here; "
                                 "using 1\n")


def test_second_sigint_stops_at_once_keeping_the_last_checkpoint(tmp_path: Path,
                                                                 fake_data: Path) -> None:
    """Two SIGINTs within one step of epoch 2: exit 130 at once, no checkpoint written for
    the stop; the one from epoch 1 stays, whole, and no temporary file is left."""
    ckpt = tmp_path / "run.safetensors"
    launcher = tmp_path / "twice.py"
    launcher.write_text(LAUNCHER.replace("os.kill(os.getpid(), signum)",
                                         "os.kill(os.getpid(), signum)\n"
                                         "        os.kill(os.getpid(), signum)"))
    stopped = run([sys.executable, str(launcher), str(STEPS + 3), str(int(signal.SIGINT)),
                   "train", *SMALL, "--epochs", "2", "--data-dir", fake_data, "--save", ckpt],
                  tmp_path)
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr.splitlines()[-1] == ("mlp: SIGINT received again: stopped at once, "
                                               f"without saving; the last checkpoint is {ckpt}")
    assert "Traceback" not in stopped.stderr
    kept = checkpoint.load(ckpt)
    assert kept.meta["epoch"] == 1 and kept.meta["train_state"]["batch"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.safetensors", "twice.py"]


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_debug_after_the_command_shows_the_traceback(command: str, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"not a checkpoint")
    args = (["train", "--resume", path] if command == "train"
            else ["evaluate", "--checkpoint", path])
    result = run_mlp(*args, "--debug", "--data-dir", tmp_path / "no-data", cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "CheckpointError" in result.stderr
