"""The JAX backend and the compiled training step.

The backend also runs every backend-parametrised test of the suite (see ``conftest``); here
are what only JAX has: its devices, its 64-bit mode, and the step compiled by ``jax.jit``,
which must give the eager step's numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_support import clean_env, write_real_mnist_raw
from optimizer_support import SoftSign

import backends
from backends import BackendError
from mlp import MLP, SGD, Adam, AdamW, Cosine, Optimizer, SoftmaxCrossEntropy
from mlp.checkpoint import restore, save
from mlp.steps import CompiledStep, choose

jax = pytest.importorskip("jax", reason="backend 'jax' needs the 'jax' package",
                          exc_type=ImportError)

SIZES = [12, 16, 10, 4]


@pytest.fixture(scope="module")
def jx():
    from conftest import load_backend

    return load_backend("jax")


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env}, check=False)


# --------------------------------------------------------------------------- the backend


def test_cpu_by_default_and_listed_by_available(jx):
    assert jx.device.platform == "cpu" and jx.is_host
    assert backends.get("jax", "cpu").device == jx.device
    entry = next(e for e in backends.available() if e["name"] == "jax")
    assert entry["ok"] and entry["version"] == jax.__version__
    assert entry["dtypes"] == ["float32", "float64"]  # the tests run in 64-bit mode


def test_devices_jax_does_not_have_are_clear_errors():
    with pytest.raises(BackendError, match="is not one of cpu, gpu"):
        backends.get("jax", "quantum:0")
    with pytest.raises(BackendError, match="device 7 does not exist"):
        backends.get("jax", "cpu:7")
    if not any(d.platform == "gpu" for d in jax.devices()):
        with pytest.raises(BackendError, match=r"no 'gpu' device.*jax\[cuda12\]"):
            backends.get("jax", "gpu")


def test_arrays_are_on_the_backend_device_and_come_back_to_the_host(jx):
    x = jx.asarray(np.arange(6.0).reshape(2, 3), "float64")
    assert x.device == jx.device and x.dtype == jx.xp.float64
    host = jx.to_host_copy(x)
    host[0, 0] = 5.0  # the caller's own copy
    np.testing.assert_array_equal(jx.to_numpy(x), np.arange(6.0).reshape(2, 3))


def test_without_64_bit_mode_float32_trains_and_float64_says_how_to_enable_it():
    """A user's default: no JAX_ENABLE_X64. Training in float32 works (compiled, without a
    warning), and float64 is one clear error naming the switch."""
    code = """
import numpy as np
import backends
from mlp import MLP
b = backends.get("jax")
assert b.dtypes == ("float32",), b.dtypes
model = MLP([6, 8, 3], backend="jax", dropout=0.2)
r = np.random.default_rng(0)
model.fit(r.integers(0, 256, (64, 6), dtype=np.uint8), r.integers(0, 3, 64), epochs=2,
          batch_size=16, validation=(r.normal(size=(10, 6)), r.integers(0, 3, 10)))
from mlp.steps import CompiledStep
assert isinstance(model.step, CompiledStep)
try:
    b.dtype("float64")
except backends.BackendError as exc:
    print(exc)
"""
    run = _run_python(code, JAX_ENABLE_X64="0")
    assert run.returncode == 0, run.stderr
    assert "JAX_ENABLE_X64=1" in run.stdout and "--dtype float32" in run.stdout


def test_the_cli_refuses_float64_without_64_bit_mode(tmp_path: Path) -> None:
    env = {**clean_env(tmp_path), "JAX_ENABLE_X64": "0"}
    run = subprocess.run([sys.executable, "-m", "mlp", "train", "--backend", "jax", "--dtype",
                          "float64", "--epochs", "1"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "JAX_ENABLE_X64=1" in errors[0], run.stderr


# --------------------------------------------------------------------------- compiled step


def _batches(b, dtype, steps=20, n=24, seed=0):
    r = np.random.default_rng(seed)
    return [(b.asarray(r.normal(size=(n, SIZES[0])), dtype), b.asarray(r.integers(0, 4, n)))
            for _ in range(steps)]


def _run(b, jit, optimizer, dropout, dtype, batches):
    model = MLP(SIZES, backend=b, dtype=dtype, seed=3, dropout=dropout, optimizer=optimizer)
    assert isinstance(choose(model, jit=jit), CompiledStep) == jit
    to_numpy = b.to_numpy
    losses, outputs = [], []
    for x, y in batches:
        loss, out = model.step(x, y)
        losses.append(float(to_numpy(loss)))
        outputs.append(np.array(to_numpy(out)))
    state = {k: np.array(to_numpy(v)) for k, v in model.optimizer.state().items()}
    return model, np.array(losses), np.array(outputs), to_numpy(model.store.flat), state


OPTIMIZERS = {
    "adam": lambda: Adam(1e-2, weight_decay=1e-3),
    "adamw-cosine": lambda: AdamW(1e-2, weight_decay=1e-2, schedule=Cosine(20)),
    "sgd-momentum": lambda: SGD(0.1, momentum=0.9),
    "sgd-nesterov-decay": lambda: SGD(0.05, momentum=0.8, nesterov=True, weight_decay=1e-3),
}


@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_step_gives_the_eager_numbers(jx, opt, dropout, dtype):
    """20 steps compiled and 20 eager from the same start: the same losses, outputs,
    parameters and optimizer state (float64 within 1e-12; float32 within a few units in the
    last place, as the compiler fuses the arithmetic)."""
    batches = _batches(jx, dtype)
    eager = _run(jx, False, OPTIMIZERS[opt](), dropout, dtype, batches)
    compiled = _run(jx, True, OPTIMIZERS[opt](), dropout, dtype, batches)
    assert eager[1][-1] < eager[1][0]  # it learns
    tol = 1e-12 if dtype == "float64" else 1e-5
    for a, b in zip(eager[1:4], compiled[1:4], strict=True):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)
    assert eager[4].keys() == compiled[4].keys()
    for name in eager[4]:
        np.testing.assert_allclose(compiled[4][name], eager[4][name], rtol=tol, atol=tol)
    assert eager[0].optimizer.steps == compiled[0].optimizer.steps == 20
    # The dropout generators were drawn the same way: the next mask is the same.
    assert eager[0].rng.random() == compiled[0].rng.random()


def test_one_trace_serves_every_step_of_a_shape(jx, monkeypatch):
    """The learning rate, Adam's step count and the dropout masks change every step without a
    new trace; a new batch shape traces once more."""
    traces = []
    original = SoftmaxCrossEntropy.forward

    def counting(self, output, target):
        traces.append(tuple(output.shape))
        return original(self, output, target)

    monkeypatch.setattr(SoftmaxCrossEntropy, "forward", counting)
    model = MLP(SIZES, backend=jx, dtype="float32", dropout=0.3,
                optimizer=AdamW(1e-2, schedule=Cosine(30)))
    choose(model, jit=True)
    for x, y in _batches(jx, "float32", steps=10) + _batches(jx, "float32", steps=3, n=5):
        model.train_step(x, y)
    assert traces == [(24, 4), (5, 4)]


def test_jit_is_the_default_on_jax_only_where_it_applies(jx, numpy_backend):
    assert isinstance(choose(MLP(SIZES, backend=jx)), CompiledStep)
    model = MLP(SIZES, backend=jx)
    assert choose(model, jit=False) == model.eager_step
    model = MLP(SIZES, backend=numpy_backend)
    assert choose(model) == model.eager_step
    with pytest.raises(ValueError, match="backend 'numpy' does not compile"):
        choose(MLP(SIZES, backend=numpy_backend), jit=True)
    # A model runs the eager step until a step is chosen; fit chooses the default one.
    model = MLP(SIZES, backend=jx)
    assert model.step is None
    r = np.random.default_rng(0)
    model.fit(r.normal(size=(8, SIZES[0])), r.integers(0, SIZES[-1], 8), batch_size=4)
    assert isinstance(model.step, CompiledStep)

    class OwnStep(SGD):  # written the old way: its own step(), no update rule to compile
        update = Optimizer.update

        def step(self) -> None:
            self.steps += 1

    model = MLP(SIZES, backend=jx, optimizer=OwnStep())
    assert choose(model) == model.eager_step
    with pytest.raises(ValueError, match="needs an optimizer with an update rule .*OwnStep"):
        choose(MLP(SIZES, backend=jx, optimizer=OwnStep()), jit=True)
    assert isinstance(choose(MLP(SIZES, backend=jx, optimizer=SoftSign(1e-2))), CompiledStep)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_users_optimizer_trains_the_same_eager_and_compiled(jx, dtype):
    """An optimizer of the user's own, following the update protocol, runs in the compiled
    step with the eager step's numbers; its schedule's learning rate reaches it per step."""
    def make(jit: bool):
        opt = SoftSign(1e-2)
        opt.schedule = Cosine(20)
        model = MLP(SIZES, backend=jx, dtype=dtype, seed=3, optimizer=opt)
        choose(model, jit=jit)
        return model

    eager, compiled = make(False), make(True)
    assert isinstance(compiled.step, CompiledStep) and not isinstance(eager.step, CompiledStep)
    losses = {id(eager): [], id(compiled): []}
    for x, y in _batches(jx, dtype):
        for model in (eager, compiled):
            losses[id(model)].append(float(jx.to_numpy(model.train_step(x, y))))
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(losses[id(compiled)], losses[id(eager)], rtol=tol, atol=tol)
    assert losses[id(eager)][-1] < losses[id(eager)][0]
    np.testing.assert_allclose(jx.to_numpy(compiled.store.flat), jx.to_numpy(eager.store.flat),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(jx.to_numpy(compiled.optimizer.v), jx.to_numpy(eager.optimizer.v),
                               rtol=tol, atol=tol)
    assert compiled.optimizer.steps == eager.optimizer.steps == len(_batches(jx, dtype))


def test_a_compiled_model_checkpoints_and_resumes_on_numpy(jx, tmp_path):
    """Saved after compiled steps, restored on NumPy and trained on: the same numbers as
    NumPy all along (float64, 1e-12)."""
    batches = _batches(jx, "float64", steps=6)
    model = MLP(SIZES, backend=jx, dtype="float64", seed=2, dropout=0.2)
    choose(model, jit=True)
    reference = MLP(SIZES, backend="numpy", dtype="float64", seed=2, dropout=0.2)
    for x, y in batches[:3]:
        model.train_step(x, y)
        reference.train_step(np.asarray(x), np.asarray(y))
    moved = restore(save(tmp_path / "m.safetensors", model), "numpy")
    for x, y in batches[3:]:
        moved.train_step(np.asarray(x), np.asarray(y))
        reference.train_step(np.asarray(x), np.asarray(y))
    np.testing.assert_allclose(moved.store.flat, reference.store.flat, rtol=1e-12, atol=1e-14)


def test_parts_join_the_same_compiled_or_not(jx):
    """The compiled gradient vector is assembled by in-place writes instead of ``concat``:
    the same vector."""
    parts = [jx.asarray(np.arange(n, dtype=np.float64) + 10 * n, "float64") for n in (3, 1, 5)]
    expected = np.concatenate([jx.to_numpy(p) for p in parts])
    np.testing.assert_array_equal(jx.to_numpy(jx.ops.concat_flat(parts)), expected)
    compiled = jx.jit(lambda *p: jx.ops.concat_flat(list(p)))
    np.testing.assert_array_equal(jx.to_numpy(compiled(*parts)), expected)


def test_parameters_taken_before_a_compiled_step_stay_readable(jx):
    """The step donates the old parameter vector; what the user was given is its own."""
    model = MLP(SIZES, backend=jx, dtype="float64")
    choose(model, jit=True)
    before = {k: np.array(jx.to_numpy(v)) for k, v in model.parameters().items()}
    kept = model.parameters()
    for x, y in _batches(jx, "float64", steps=2):
        model.train_step(x, y)
    for name, value in kept.items():
        np.testing.assert_array_equal(jx.to_numpy(value), before[name])
    after = model.parameters()
    assert not np.array_equal(jx.to_numpy(after["0.W"]), before["0.W"])
    for name, layer_value in model.layers.named_params().items():
        np.testing.assert_array_equal(jx.to_numpy(layer_value), jx.to_numpy(after[name]))


def test_a_failed_trace_leaves_the_model_usable(jx):
    model = MLP(SIZES, backend=jx, dtype="float64")
    choose(model, jit=True)
    before = np.array(jx.to_numpy(model.store.flat))
    x, _ = _batches(jx, "float64", steps=1)[0]
    with pytest.raises(ValueError, match="labels"):
        model.train_step(x, jx.asarray(np.zeros(3, dtype=np.int64)))  # 3 labels for 24 rows
    np.testing.assert_array_equal(jx.to_numpy(model.store.flat), before)
    assert model.evaluate(x, jx.asarray(np.zeros(24, dtype=np.int64)))["loss"] > 0


# --------------------------------------------------------------------------- command line


def test_cli_trains_on_jax(tmp_path: Path) -> None:
    """``mlp train --backend jax`` in the user's default 32-bit mode, then ``evaluate`` of its
    checkpoint on NumPy reports the same accuracy."""
    data = write_real_mnist_raw(tmp_path / "mnist-raw")
    env = {**clean_env(tmp_path), "JAX_ENABLE_X64": "0"}
    ckpt, metrics = tmp_path / "m.safetensors", tmp_path / "m.jsonl"
    common = ["--dataset", "mnist", "--data-dir", str(data)]
    run = subprocess.run([sys.executable, "-m", "mlp", "train", "--backend", "jax", *common,
                          "--hidden", "16", "--batch-size", "500", "--epochs", "2",
                          "--save", str(ckpt), "--metrics", str(metrics), "--quiet"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    final = [json.loads(line) for line in metrics.read_text().splitlines()][-1]
    assert final["test_acc"] > 0.8
    evaluated = subprocess.run([sys.executable, "-m", "mlp", "evaluate", "--checkpoint",
                                str(ckpt), *common], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=300, check=False)
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"test accuracy {100 * final['test_acc']:.2f}%" in evaluated.stdout


def test_the_first_mnist_steps_follow_numpys_in_float64(jx):
    """What is deterministic, compared tightly: from the same seed, 30 compiled float64 steps
    on real MNIST batches give NumPy's losses and parameters within rounding."""
    from mlp import data

    mnist = data.load("mnist", split="train")
    x_host = mnist.x_train[:30 * 64].astype(np.float64) / 255.0
    y_host = mnist.y_train[:30 * 64]
    losses, params = {}, {}
    for name in ("numpy", "jax"):
        b = backends.get(name)
        model = MLP([784, 64, 10], backend=b, dtype="float64", seed=0, optimizer=Adam(2e-3))
        choose(model, jit=name == "jax")
        x, y = b.asarray(x_host, "float64"), b.asarray(y_host)
        losses[name] = [float(b.to_numpy(model.train_step(x[i:i + 64], y[i:i + 64])))
                        for i in range(0, x_host.shape[0], 64)]
        params[name] = {k: np.asarray(b.to_numpy(v)) for k, v in model.state_dict().items()}
    assert losses["numpy"][-1] < losses["numpy"][0] / 2  # it learns
    np.testing.assert_allclose(losses["jax"], losses["numpy"], rtol=1e-10)
    for k, v in params["numpy"].items():
        np.testing.assert_allclose(params["jax"][k], v, rtol=1e-9, atol=1e-12, err_msg=k)


# Two epochs of float32 training from seeds 0-5 on NumPy reached test accuracies 0.9805-0.9817
# (standard deviation 0.0004): float32 trajectories of two libraries diverge like two seeds
# do, so the bound is ten times that spread, not a count of test images.
SEED_SPREAD_BOUND = 0.004


@pytest.mark.slow
def test_two_epochs_on_mnist_reach_numpys_accuracy(tmp_path: Path) -> None:
    """``mlp train --epochs 2`` with the same seed: JAX (compiled, float32, the user's 32-bit
    mode) within the seed-to-seed spread of NumPy's test accuracy on real MNIST."""
    env = clean_env(tmp_path)  # the MNIST shipped with the package
    accuracy = {}
    for name in ("numpy", "jax"):
        metrics = tmp_path / f"{name}.jsonl"
        run = subprocess.run([sys.executable, "-m", "mlp", "train", "--backend", name,
                              "--epochs", "2", "--seed", "0", "--metrics", str(metrics),
                              "--quiet"], cwd=tmp_path, env={**env, "JAX_ENABLE_X64": "0"},
                             capture_output=True, text=True, timeout=900, check=False)
        assert run.returncode == 0, run.stderr
        accuracy[name] = json.loads(metrics.read_text().splitlines()[-1])["test_acc"]
    assert accuracy["numpy"] >= 0.97
    assert abs(accuracy["jax"] - accuracy["numpy"]) <= SEED_SPREAD_BOUND, accuracy


# --------------------------------------------------------------------------- benchmark peer


def test_the_jax_peer_trains_the_same_network(jx):
    """The ``jax.grad`` peer of the benchmarks, from our initial weights, follows our compiled
    step's losses (float64; Adam's two algebraic forms differ only in rounding)."""
    from benchmarks.jax_peer import JaxPeer, measure

    sizes = (12, 16, 4)
    model = MLP(sizes, backend=jx, dtype="float64", optimizer=Adam(1e-2))
    choose(model, jit=True)
    peer = JaxPeer(sizes, "float64", lr=1e-2, params=model.state_dict())
    r = np.random.default_rng(1)
    x_host, y_host = r.normal(size=(32, 12)), r.integers(0, 4, 32)
    x, y = jx.asarray(x_host, "float64"), jx.asarray(y_host)
    ours = [float(jx.to_numpy(model.train_step(x, y))) for _ in range(10)]
    theirs = [float(peer.step(peer._put(x_host), jx.asarray(y_host))) for _ in range(10)]
    assert ours[-1] < ours[0]
    np.testing.assert_allclose(theirs, ours, rtol=1e-9)
    figures = measure("784-100-10", batch=8, rounds=1, steps=1, warmup=1)
    assert all(figures[k] > 0 for k in ("eager", "jit", "peer", "jit_x_peer"))
