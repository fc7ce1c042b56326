"""The training loop on small synthetic uint8 data: backends agree, stops resume exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

import backends
from mlp import MLP, SGD
from mlp.errors import TrainingError
from mlp.train import DeviceData, StopRequested, Trainer, TrainState


def _data(n: int = 300, d: int = 20, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, d), dtype=np.uint8), rng.integers(0, classes, n)


def _model(backend: str, **kw) -> MLP:
    return MLP([20, 8, 3], backend=backend, dtype="float64", seed=0, dropout=0.2, **kw)


def _fit(model: MLP, **kw) -> Trainer:
    x, y = _data()
    trainer = Trainer(model, DeviceData(model, x, y), DeviceData(model, x, y),
                      batch_size=128, epochs=2, seed=3, **kw)
    trainer.fit()
    return trainer


GPU = pytest.param("cupy", marks=pytest.mark.gpu)


@pytest.mark.parametrize("name", ["array_api_strict", "torch", GPU])
def test_backends_train_the_same_run(name, get_backend):
    """The whole trainer (device data, gathers into buffers, pixel conversion, the loss check)
    on every backend; dropout masks drawn on the host so every backend drops the same units."""
    backend = get_backend(name)
    reference = _fit(_model("numpy")).state.history
    other = _fit(_model(backend, host_masks=True)).state.history
    assert len(other) == 2
    for a, b in zip(reference, other, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-12)
        assert b["test_acc"] == a["test_acc"]


def test_epoch_metrics_count_every_sample_once():
    """Each epoch's steps see every training row once (300 rows: batches of 128, 128, 44), and
    the epoch's train loss and accuracy are the sums over those steps divided by 300; the test
    metrics are those of the whole test set after the epoch."""
    x, y = _data()
    model = _model("numpy")
    step, steps = model.eager_step, []

    def recording_step(xb, yb):
        loss, out = step(xb, yb)
        hits = int(np.sum(np.argmax(out, axis=1) == yb))
        steps.append((np.array(xb, copy=True), np.array(yb), float(loss), hits))
        return loss, out

    model.step = recording_step
    data = DeviceData(model, x, y)
    pixels = x.astype(np.float64) * data.scale  # the rows as the steps receive them
    test_after = []
    trainer = Trainer(model, data, data, batch_size=128, epochs=2, seed=3,
                      on_epoch=lambda *_: test_after.append(model.evaluate(pixels, y)))
    trainer.fit()
    history = trainer.state.history
    assert [h["epoch"] for h in history] == [1, 2]
    for h, epoch in zip(history, (steps[:3], steps[3:]), strict=True):
        assert [len(s[1]) for s in epoch] == [128, 128, 44]
        rows = np.concatenate([s[0] for s in epoch])
        labels = np.concatenate([s[1] for s in epoch])
        order = np.lexsort(rows.T[::-1])
        expected = np.lexsort(pixels.T[::-1])
        np.testing.assert_array_equal(rows[order], pixels[expected])  # each row once
        np.testing.assert_array_equal(labels[order], y[expected])
        assert h["train_loss"] == pytest.approx(sum(s[2] * len(s[1]) for s in epoch) / 300,
                                                rel=1e-12)
        assert h["train_acc"] == sum(s[3] for s in epoch) / 300
        assert h["seconds"] > 0
    assert len(steps) == 6
    for h, test in zip(history, test_after, strict=True):
        assert h["test_loss"] == pytest.approx(test["loss"], rel=1e-12)
        assert h["test_acc"] == test["accuracy"]


@pytest.mark.parametrize("name", ["numpy", GPU])
def test_stop_and_resume_is_bit_identical(name, get_backend):
    """Also on a GPU, whose dropout masks are drawn on the device from seeds of the model's
    host generator."""
    backend = get_backend(name)
    full = _fit(_model(backend))
    x, y = _data()
    model = _model(backend)
    polls = iter(range(10**6))
    trainer = Trainer(model, DeviceData(model, x, y), DeviceData(model, x, y), batch_size=128,
                      epochs=2, seed=3, should_stop=lambda: next(polls) >= 4)
    with pytest.raises(StopRequested):
        trainer.fit()
    state = TrainState.from_json(json.loads(json.dumps(trainer.state.to_json())))
    assert state.epoch < 2 and 0 < state.batch < 3  # stopped mid-epoch
    resumed = _fit(model, state=state)
    np.testing.assert_array_equal(backend.to_numpy(model.store.flat),
                                  backend.to_numpy(full.model.store.flat))
    for a, b in zip(full.state.history, resumed.state.history, strict=True):
        assert a["train_loss"] == b["train_loss"] and a["train_acc"] == b["train_acc"]
        assert a["test_loss"] == b["test_loss"]


def test_a_diverging_loss_stops_with_the_step_and_rate():
    model = _model("numpy", optimizer=SGD(1e300))
    with pytest.raises(TrainingError, match=r"step \d+ .*learning rate"):
        _fit(model)


def test_non_finite_inputs_are_refused_with_their_count():
    model = _model("numpy")
    x = np.zeros((4, 20))
    x[0, 1], x[2, 3], x[3, 0] = np.nan, np.inf, -np.inf
    for call in (model.forward, model.predict, lambda a: model.evaluate(a, np.zeros(4, int))):
        with pytest.raises(ValueError, match="3 NaN or infinite value"):
            call(x)


def test_a_stop_during_the_last_step_of_an_epoch_stops_at_the_boundary():
    x, y = _data()
    model = _model("numpy")
    steps = iter(range(10**6))
    # 300 samples in batches of 128: 3 steps per epoch; ask to stop during the third.
    trainer = Trainer(model, DeviceData(model, x, y), None, batch_size=128, epochs=2, seed=3,
                      should_stop=lambda: next(steps) >= 2)
    with pytest.raises(StopRequested):
        trainer.fit()
    assert (trainer.state.epoch, trainer.state.batch) == (1, 0)
    assert len(trainer.state.history) == 1


def test_inplace_relu_agrees_with_the_portable_one_on_nan():
    numpy_backend = backends.get("numpy")
    x = np.array([[np.nan, -1.0, 0.0, 2.0]], dtype=np.float32)
    fast = numpy_backend.ops.relu(x, out=np.empty_like(x))
    portable = backends.GenericOps(numpy_backend.xp).relu(x)
    np.testing.assert_array_equal(fast, portable)


def test_the_loss_is_read_back_every_step_on_the_host_only():
    from array_api_compat import numpy as xp

    from backends import Backend, GenericOps

    x, y = _data()
    host = _model("numpy")
    assert Trainer(host, DeviceData(host, x, y), None).check_every == 1
    device = Backend("accelerator", xp, "cpu", GenericOps(xp, "cpu"), is_host=False)
    remote = MLP([20, 8, 3], backend=device, dtype="float64")
    assert Trainer(remote, DeviceData(remote, x, y), None).check_every == 50
