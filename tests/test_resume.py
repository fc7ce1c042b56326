"""Resuming from a checkpoint file: bit-identical on the same backend and dtype (every CPU
backend, both dtypes), and on another backend the same run up to that backend's rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlp import MLP, AdamW, Cosine
from mlp.checkpoint import load, restore, save
from mlp.train import DeviceData, StopRequested, Trainer, TrainState


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (300, 20), dtype=np.uint8), rng.integers(0, 3, 300)


def _trainer(model: MLP, state: TrainState | None = None, stop_after: int | None = None
             ) -> Trainer:
    x, y = _data()
    polls = iter(range(10**6))
    stop = None if stop_after is None else (lambda: next(polls) >= stop_after)
    return Trainer(model, DeviceData(model, x, y), DeviceData(model, x, y), batch_size=64,
                   epochs=3, seed=5, state=state, should_stop=stop)


def _model(backend, dtype: str) -> MLP:
    return MLP([20, 16, 3], backend=backend, dtype=dtype, seed=1, dropout=0.25,
               optimizer=AdamW(3e-3, schedule=Cosine(15)))


def _interrupted(tmp_path: Path, backend, dtype: str) -> Path:
    """Train until a stop in the middle of the second epoch and save, as the CLI does."""
    model = _model(backend, dtype)
    trainer = _trainer(model, stop_after=7)
    with pytest.raises(StopRequested):
        trainer.fit()
    assert trainer.state.epoch == 1 and 0 < trainer.state.batch < trainer.steps_per_epoch
    return save(tmp_path / "stopped.safetensors", model,
                meta={"train_state": trainer.state.to_json()})


def _resume(path: Path, backend) -> tuple[MLP, list]:
    model = restore(path, backend)
    state = TrainState.from_json(load(path).meta["train_state"])
    return model, _trainer(model, state=state).fit()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_resume_on_the_same_backend_is_bit_identical(tmp_path: Path, cpu_float64_backend,
                                                     dtype: str) -> None:
    backend = cpu_float64_backend
    full = _model(backend, dtype)
    history = _trainer(full).fit()
    model, resumed = _resume(_interrupted(tmp_path, backend, dtype), backend)
    to_numpy = backend.to_numpy
    np.testing.assert_array_equal(to_numpy(model.store.flat), to_numpy(full.store.flat))
    for name, buf in full.optimizer.state().items():
        np.testing.assert_array_equal(to_numpy(model.optimizer.state()[name]), to_numpy(buf))
    assert _numbers(resumed) == _numbers(history)


def _numbers(history: list[dict]) -> list[dict]:
    """The metrics without the clock's (seconds, samples/s)."""
    return [{k: v for k, v in h.items() if k not in ("seconds", "samples_per_s")}
            for h in history]


@pytest.mark.parametrize("target", ["torch", "array_api_strict", "jax"])
def test_resume_on_another_backend_continues_the_same_run(tmp_path: Path, numpy_backend,
                                                          target: str) -> None:
    """Saved on NumPy, resumed elsewhere: the same samples, masks and updates, so the result
    equals the uninterrupted NumPy run up to rounding (float64: 1e-12 relative)."""
    from conftest import load_backend

    other = load_backend(target)
    full = _model(numpy_backend, "float64")
    history = _trainer(full).fit()
    model, resumed = _resume(_interrupted(tmp_path, numpy_backend, "float64"), other)
    np.testing.assert_allclose(other.to_numpy(model.store.flat), full.store.flat, rtol=1e-12,
                               atol=1e-14)
    for a, b in zip(history, resumed, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-12)
        assert b["test_acc"] == a["test_acc"]
