"""Data-parallel training: P ranks train the single-process run.

Three kinds of test:

- plain ones (a fake in-process communicator, or the environment alone);
- ``mpi``-marked ones, run inside an MPI job of two ranks: ``mpiexec -n 2 python -m pytest -m
  mpi tests/test_distributed.py``; outside one they skip, and with ``MLP_REQUIRE_MPI=1`` (the
  ``mpi`` nox session) they fail instead;
- ones that launch ``mpiexec -n 2 mlp train --distributed`` themselves (need the ``mpi`` extra).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backends.collectives import Request, launcher_size
from mlp import MLP, SGD, Adam, checkpoint
from mlp.distributed import Distributed, DriftError
from mlp.train import DeviceData, StopRequested, Trainer, TrainState

sys.path.insert(0, str(Path(__file__).parent))
from cli_support import clean_env, write_real_mnist_raw  # noqa: E402

REQUIRE_MPI = os.environ.get("MLP_REQUIRE_MPI") == "1"
BOUND = 1e-12  # relative 2-norm difference of the parameter vectors


def _unavailable(reason: str) -> None:
    (pytest.fail if REQUIRE_MPI else pytest.skip)(reason)


# --- a fake communicator: one process playing rank `rank` of `size` ----------------------


class FakeComm:
    """Rank ``rank`` of ``size``; sums are this rank's values, gathers repeat them (or
    ``gathered`` when given)."""

    def __init__(self, rank: int = 0, size: int = 1, gathered=None) -> None:
        self.rank, self.size, self.local_rank, self.local_size = rank, size, rank, size
        self.gathered = gathered
        self.allreduces = 0

    def allreduce_(self, x):
        self.allreduces += 1
        return x

    def iallreduce_(self, x):
        self.allreduces += 1
        return Request()

    def reduce_host(self, values, op="sum"):
        return np.asarray(values, dtype=np.float64)

    def gather_host(self, values):
        if self.gathered is not None:
            return np.asarray(self.gathered, dtype=np.int64).reshape(self.size, -1)
        return np.tile(np.asarray(values, dtype=np.int64), (self.size, 1))


def _data(n: int = 965, d: int = 20, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, classes, n)


OPTIMIZERS = {"adam": lambda: Adam(1e-2), "sgd-momentum": lambda: SGD(0.05, momentum=0.9)}


def _model(optimizer: str, fast: bool = True, backend: str = "numpy", dropout: float = 0.0):
    return MLP([20, 32, 16, 3], dtype="float64", seed=0, optimizer=OPTIMIZERS[optimizer](),
               fast=fast, backend=backend, dropout=dropout)


def _trainer(model, dist=None, epochs: int = 3, state=None, should_stop=None) -> Trainer:
    """965 samples in global batches of 99: 10 steps an epoch, the last of 74; 99 rows split
    50/49 over two ranks."""
    x, y = _data()
    return Trainer(model, DeviceData(model, x, y), DeviceData(model, x[:101], y[:101]),
                   batch_size=99, epochs=epochs, seed=1, state=state, distributed=dist,
                   should_stop=should_stop)


def _flat(model) -> np.ndarray:
    return np.concatenate([v.ravel() for v in model.state_dict().values()])


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# --- plain tests -------------------------------------------------------------------------


@pytest.mark.parametrize("n,size", [(0, 2), (1, 2), (99, 2), (74, 2), (10, 3), (7, 8)])
def test_shards_cover_every_row_once_in_order(n, size):
    shards = [Distributed(FakeComm(r, size)).shard(n) for r in range(size)]
    assert shards[0][0] == 0 and shards[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(shards, shards[1:], strict=False))
    lengths = [hi - lo for lo, hi in shards]
    assert max(lengths) - min(lengths) <= 1


def test_launcher_size_reads_the_launchers_variables():
    assert launcher_size({}) == 1
    assert launcher_size({"PMI_SIZE": "4"}) == 4
    assert launcher_size({"OMPI_COMM_WORLD_SIZE": "3"}) == 3
    assert launcher_size({"PMI_SIZE": "1", "MPI_LOCALNRANKS": "2"}) == 2
    assert launcher_size({"PMI_SIZE": "x"}) == 1


@pytest.mark.parametrize("overlap", [False, True])
def test_one_rank_is_the_single_process_run_bit_for_bit(overlap):
    plain = _model("adam")
    _trainer(plain).fit()
    comm = FakeComm()
    dist = _model("adam")
    _trainer(dist, Distributed(comm, overlap=overlap)).fit()
    assert np.array_equal(_flat(dist), _flat(plain))
    per_step = 1 if not overlap else 3  # one sum of the whole buffer, or one per Linear
    assert comm.allreduces == 30 * per_step


def test_a_global_batch_smaller_than_the_ranks_is_refused():
    model = _model("adam")
    x, y = _data()
    with pytest.raises(ValueError, match="global batch size 2 is smaller than the 4 ranks"):
        Trainer(model, DeviceData(model, x, y), None, batch_size=2,
                distributed=Distributed(FakeComm(0, 4)))


def test_drift_between_ranks_is_one_clear_error():
    model = _model("adam")
    trainer = _trainer(model, Distributed(FakeComm(0, 3, gathered=[[5], [5], [6]])))
    with pytest.raises(DriftError, match=r"rank\(s\) 2 differ from rank 0's at the start"):
        trainer.fit()


def test_without_distributed_under_a_launcher_mlp_train_refuses(tmp_path):
    env = {**clean_env(tmp_path), "PMI_SIZE": "2"}
    run = subprocess.run([sys.executable, "-m", "mlp", "train", "--epochs", "1"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "mlp train: error: this process is one of 2 started by an MPI launcher: add "
        "--distributed to train them together (without it each would train alone and write "
        "the same files) (see mlp train --help)"]


def test_distributed_without_mpi4py_names_the_extra(tmp_path):
    fake = tmp_path / "no-mpi" / "mpi4py"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no MPI library here')\n")
    env = {**clean_env(tmp_path), "PYTHONPATH": str(fake.parent)}
    run = subprocess.run([sys.executable, "-m", "mlp", "train", "--distributed"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install ".[mpi]"' in lines[0]


# --- inside an MPI job of two ranks ------------------------------------------------------


@pytest.fixture(scope="module")
def dist() -> Distributed:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        _unavailable('mpi4py is not installed: pip install ".[mpi]"')
    d = Distributed()
    if d.size != 2:
        _unavailable("run inside an MPI job of two ranks: mpiexec -n 2 python -m pytest -m mpi")
    return d


def _same_on_every_rank(dist: Distributed, model) -> bool:
    digest = hashlib.blake2b(_flat(model).tobytes(), digest_size=8).digest()
    hashes = dist.comm.gather_host([int.from_bytes(digest, "little", signed=True)])[:, 0]
    return bool((hashes == hashes[0]).all())


@pytest.mark.mpi
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("path", ["numpy", "numpy-portable", "numpy-overlap",
                                  "array_api_strict", "torch"])
def test_two_ranks_train_the_single_process_run(dist, optimizer, path):
    backend = path if path in ("array_api_strict", "torch") else "numpy"
    if backend == "torch":
        pytest.importorskip("torch", reason="the torch backend needs torch")
    fast = path != "numpy-portable"
    reference = _model(optimizer, fast, backend)
    single = _trainer(reference)
    single.fit()
    model = _model(optimizer, fast, backend)
    two = _trainer(model, Distributed(dist.comm, overlap=path == "numpy-overlap"))
    two.fit()
    assert model.optimizer.steps == 30
    assert _same_on_every_rank(dist, model)  # bit for bit
    assert _rel(_flat(model), _flat(reference)) <= BOUND
    for a, b in zip(two.state.history, single.state.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-12)
        assert a["train_acc"] == b["train_acc"] and a["test_acc"] == b["test_acc"]


def _stopped_at(step: int):
    calls = iter(range(10**6))
    return lambda: next(calls) + 1 >= step


def _save_and_reload(model, trainer, path: Path):
    checkpoint.save(path, model, {"train_state": trainer.state.to_json()})
    ckpt = checkpoint.load(path)
    return checkpoint.restore(ckpt), TrainState.from_json(ckpt.meta["train_state"])


@pytest.mark.mpi
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_resume_from_two_ranks_on_one_and_from_one_on_two(dist, optimizer, tmp_path):
    reference = _model(optimizer)
    _trainer(reference).fit()

    # Two ranks stop mid-epoch (rank 0 alone is asked: they agree), one process finishes.
    model = _model(optimizer)
    first = _trainer(model, dist, should_stop=_stopped_at(13) if dist.is_root else None)
    with pytest.raises(StopRequested):
        first.fit()
    assert first.state.epoch == 1 and first.state.batch == 2  # polled 10 + 1 + 2 times
    restored, state = _save_and_reload(model, first, tmp_path / "two.safetensors")
    _trainer(restored, state=state).fit()
    assert _rel(_flat(restored), _flat(reference)) <= BOUND

    # One process stops, two ranks finish.
    model = _model(optimizer)
    alone = _trainer(model, should_stop=_stopped_at(17))
    with pytest.raises(StopRequested):
        alone.fit()
    restored, state = _save_and_reload(model, alone, tmp_path / "one.safetensors")
    _trainer(restored, dist, state=state).fit()
    assert _same_on_every_rank(dist, restored)
    assert _rel(_flat(restored), _flat(reference)) <= BOUND


@pytest.mark.mpi
def test_dropout_masks_differ_per_rank_and_resume_exactly(dist, tmp_path):
    full = _model("adam", dropout=0.3)
    _trainer(full, dist).fit()
    assert _same_on_every_rank(dist, full)
    model = _model("adam", dropout=0.3)
    first = _trainer(model, dist, should_stop=_stopped_at(7) if dist.is_root else None)
    with pytest.raises(StopRequested):
        first.fit()
    restored, state = _save_and_reload(model, first, tmp_path / "drop.safetensors")
    _trainer(restored, dist, state=state).fit()
    assert np.array_equal(_flat(restored), _flat(full))
    masks = [layer.rng.random(4) for layer in full.layers if hasattr(layer, "rate")][:1]
    draws = dist.comm.gather_host([int(masks[0][0] * 2**40)])[:, 0]
    assert draws[0] != draws[1]


# --- launching mpiexec -------------------------------------------------------------------


def _mpiexec() -> str:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        _unavailable('mpi4py is not installed: pip install ".[mpi]"')
    here = str(Path(sys.executable).parent)  # the environment's bin folder
    found = shutil.which("mpiexec") or shutil.which("mpiexec", path=here)
    if found is None:
        _unavailable("no mpiexec on PATH (the mpich wheel of the mpi extra brings one)")
    return found


def _launcher_env(tmp: Path, data_dir: str | None = None) -> dict[str, str]:
    env = clean_env(tmp, data_dir)
    for key in list(env):  # this process may itself run under a launcher
        if key.startswith(("PMI_", "PMIX_", "OMPI_", "HYDRA_", "MPI_LOCAL")):
            del env[key]
    return env


# Ends a hung job rather than the whole test run; not a bound on how fast anything is.
HANG_GUARD_S = 300

SMALL = ("--dataset", "mnist", "--hidden", "16", "--batch-size", "500", "--threads", "1")


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory) -> str:
    return str(write_real_mnist_raw(tmp_path_factory.getbasetemp() / "mnist-raw"))


def test_sigint_stops_every_rank_with_one_checkpoint_and_status_130(tmp_path, fake_data):
    mpiexec = _mpiexec()
    env = _launcher_env(tmp_path)
    target = tmp_path / "run.safetensors"
    command = [mpiexec, "-n", "2", sys.executable, "-m", "mlp", "train", "--distributed",
               *SMALL, "--data-dir", fake_data, "--epochs", "50", "--save", str(target)]
    proc = subprocess.Popen(command, env={**env, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    # Rank 0 prints each epoch's line as it ends; by the second, the first epoch is saved.
    for line in proc.stdout:
        if line.startswith("epoch  2/50"):
            break
    else:
        pytest.fail(f"the job ended before its second epoch: {proc.communicate()[1]}")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 130, err
    assert err.count("; saved ") == 1 and "resume with: mpiexec -n 2 mlp train" in err
    assert sorted(p.name for p in tmp_path.glob("*.safetensors*")) == ["run.safetensors"]
    epoch = checkpoint.load(target).meta["train_state"]["epoch"]
    assert 1 <= epoch < 50
    resumed = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "mlp", "train",
                              "--distributed", "--resume", str(target), "--save", str(target),
                              "--epochs", str(epoch + 1), "--data-dir", fake_data],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint.load(target).meta["train_state"]["epoch"] == epoch + 1


def test_a_killed_rank_ends_the_job_fast_and_keeps_the_checkpoint(tmp_path, fake_data):
    mpiexec = _mpiexec()
    target = tmp_path / "run.safetensors"
    helper = Path(__file__).parent / "mpi_kill_rank.py"
    run = subprocess.run([mpiexec, "-n", "2", sys.executable, str(helper), "--distributed",
                          *SMALL, "--data-dir", fake_data, "--epochs", "50",
                          "--save", str(target)],
                         env={**_launcher_env(tmp_path), "KILL_RANK_AT_STEP": "150"},
                         cwd=tmp_path, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert run.returncode != 0
    # The surviving rank ends inside the epoch of the kill (step 150 of 120-step epochs): it
    # neither finishes that epoch alone nor waits for the hang guard.
    assert "killing rank 1 at step 150" in run.stdout
    assert "epoch  1/50" in run.stdout and "epoch  2/50" not in run.stdout
    assert checkpoint.load(target).meta["train_state"]["epoch"] == 1


@pytest.mark.slow
def test_two_ranks_reach_the_single_process_accuracy_on_mnist(tmp_path):
    mpiexec = _mpiexec()
    env = _launcher_env(tmp_path)  # the MNIST shipped with the package
    args = ["train", "--epochs", "2", "--quiet"]

    def accuracy(run: subprocess.CompletedProcess) -> float:
        assert run.returncode == 0, run.stderr
        return float(run.stdout.split("test accuracy ")[1].split("%")[0])

    two = accuracy(subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "mlp", *args,
                                   "--distributed"], env=env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=900))
    one = accuracy(subprocess.run([sys.executable, "-m", "mlp", *args], env=env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=900))
    # Percent. Float32 sums in another order diverge like another seed: two epochs from seeds
    # 0-5 reach 98.05-98.17 % (standard deviation 0.04 points); the bound is ten times that.
    assert abs(two - one) <= 0.4, (two, one)


# --- ranks that disagree, and errors before training: one line from rank 0 ---------------


def _settings_digests(settings):
    """What one rank with ``settings`` contributes to the comparison of settings."""
    from mlp.cli import launch

    comm, seen = FakeComm(), []
    gather = comm.gather_host
    comm.gather_host = lambda values: seen.append(list(values)) or gather(values)
    launch.check_same_settings(Distributed(comm), settings)
    return seen[0]


def test_ranks_with_different_settings_are_refused_by_rank_0_naming_them():
    from mlp.cli import launch
    from mlp.cli.settings import DEFAULTS, FIXED, UsageError

    mine = {**DEFAULTS, **FIXED, "lr": 1e-3}
    theirs = {**mine, "batch_size": 256, "epochs": 3, "device": "cuda:1"}
    rows = [_settings_digests(mine), _settings_digests(theirs)]
    with pytest.raises(UsageError, match=r"different options \(--batch-size, --epochs of "
                                         r"rank 1 against rank 0\)"):
        launch.check_same_settings(Distributed(FakeComm(0, 2, gathered=rows)), mine)
    with pytest.raises(SystemExit) as other:
        launch.check_same_settings(Distributed(FakeComm(1, 2, gathered=rows)), theirs)
    assert other.value.code == 2
    same = [rows[0], _settings_digests({**mine, "device": "cuda:1"})]
    launch.check_same_settings(Distributed(FakeComm(0, 2, gathered=same)), mine)


def test_ranks_started_with_different_options_stop_with_one_line(tmp_path, fake_data):
    mpiexec = _mpiexec()
    rank = [sys.executable, "-m", "mlp", "train", "--distributed", "--dataset", "mnist",
            "--hidden", "16", "--threads", "1", "--data-dir", fake_data, "--epochs", "1"]
    run = subprocess.run([mpiexec, "-n", "1", *rank, "--batch-size", "500", ":", "-n", "1",
                          *rank, "--batch-size", "1000"], env=_launcher_env(tmp_path),
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines() == [
        "mlp train: error: the ranks were started with different options (--batch-size of "
        "rank 1 against rank 0): every rank must run the same mlp train command (only "
        "--device may differ) (see mlp train --help)"]
    assert run.stdout == ""


@pytest.mark.parametrize("args", [["--distributed", "--batch-size", "2"], []],
                         ids=["batch smaller than the ranks", "without --distributed"])
def test_an_error_before_training_is_printed_once(args, tmp_path):
    mpiexec = _mpiexec()
    run = subprocess.run([mpiexec, "-n", "3", sys.executable, "-m", "mlp", "train", *args],
                         env=_launcher_env(tmp_path), cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert run.stderr.startswith("mlp train: error: ")
    assert "Traceback" not in run.stderr


def test_the_header_of_a_distributed_run_names_its_ranks(tmp_path, fake_data):
    mpiexec = _mpiexec()
    run = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "mlp", "train",
                          "--distributed", *SMALL, "--data-dir", fake_data, "--epochs", "1"],
                         env=_launcher_env(tmp_path), cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    header = " ".join(run.stdout.split("epoch 1/1")[0].split())
    assert "(1 thread each), data-parallel over 2 ranks" in header


# --- which GPU each rank takes -----------------------------------------------------------


def test_each_rank_takes_its_nodes_gpu_and_too_few_gpus_is_a_clear_error(monkeypatch):
    from types import SimpleNamespace

    import backends
    from mlp.cli.launch import device_for
    from mlp.cli.settings import UsageError

    monkeypatch.setattr(backends, "gpu_count", lambda name: 1 if name == "cupy" else 0)
    first = SimpleNamespace(rank=2, local_rank=0, local_size=2)
    second = SimpleNamespace(rank=3, local_rank=1, local_size=2)
    assert device_for(first, "cupy", None) == 0
    with pytest.raises(UsageError, match=r"rank 3 is rank 1 of 2 on its node, which has 1 "
                       r"GPU\(s\): start at most 1 rank\(s\) per node, or name the GPU with "
                       r"--device \(e.g. --device 0"):
        device_for(second, "cupy", None)
    assert device_for(second, "cupy", "0") == "0"  # --device decides
    assert device_for(second, "torch", None) is None  # torch: its own default device
    assert device_for(None, "cupy", None) is None  # one process: the backend's default
    monkeypatch.setattr(backends, "gpu_count", lambda name: 0)
    assert device_for(second, "cupy", None) == 1  # no GPU at all: the backend says so
