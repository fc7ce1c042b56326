"""array-api-strict's restricted devices: one without float64 and a second device beside the
default one. array-api-strict refuses to combine arrays of two devices and to create float64
on ``no_float64``, so a whole user journey running there proves the core assumes neither a
default device nor float64."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import STRICT_DEVICES

import mlp
from backends import BackendError
from mlp import checkpoint


@pytest.mark.parametrize("name", STRICT_DEVICES)
def test_a_whole_journey_stays_on_its_device(name, get_backend, tmp_path):
    b = get_backend(name)
    xp, on = b.xp, b.device
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(120, 12), dtype=np.uint8)
    labels = (pixels[:, 0] > 127).astype(np.int64) + 2 * (pixels[:, 1] > 127)
    model = mlp.MLP([12, 16, 4], dropout=0.2, backend=b, dtype="float32", seed=1)
    history = model.fit(pixels, labels, epochs=8, batch_size=30,
                        validation=(pixels / 255.0, labels))  # host float64: cast for the device
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    for p in model.parameters().values():
        assert p.device == on and p.dtype == xp.float32
    predicted = model.predict(pixels)
    proba = model.predict_proba(pixels / 255.0)
    assert predicted.device == on and proba.device == on and proba.dtype == xp.float32
    x = b.asarray(pixels / 255.0, "float32")
    loss = model.train_step(x, b.asarray(labels))
    assert loss.device == on
    result = model.evaluate(pixels, labels, scale=1 / 255)
    assert 0.0 <= result["accuracy"] <= 1.0
    path = checkpoint.save(tmp_path / "m.safetensors", model)
    again = checkpoint.restore(path, backend=b.name, device=on)
    np.testing.assert_array_equal(b.to_numpy(again.predict_proba(pixels)),
                                  b.to_numpy(model.predict_proba(pixels)))
    on_numpy = checkpoint.restore(path)
    np.testing.assert_allclose(on_numpy.predict_proba(pixels),
                               b.to_numpy(model.predict_proba(pixels)), atol=1e-6)


def test_float64_is_refused_on_the_device_without_it(get_backend):
    b = get_backend("array_api_strict:no_float64")
    with pytest.raises(BackendError, match="has no float64: choose --dtype float32"):
        mlp.MLP([4, 3], backend=b, dtype="float64")
