"""Host traffic in the hot loop: a training step on a device backend reads nothing back and
copies nothing over, except the documented periodic loss check; prediction and evaluation
check their inputs once per call; dropout masks are drawn on the device.

The device is a fake one (NumPy arrays behind a backend that says they are not on the host),
with every host transfer counted: ``to_numpy`` (device to host), ``asarray`` (host to
device), ``synchronize``, and the host generator's draws. Its arrays are :class:`DeviceArray`:
every implicit read-back a real device would have to synchronise for (``float()``, ``int()``,
``bool()``, ``operator.index()``, ``.item()``, ``.tolist()``, ``__array__``, ``__dlpack__``)
is counted too, so a hidden one in the step cannot pass. (NumPy's own ``numpy.asarray`` of
an ndarray subclass calls none of them; the core never names NumPy, the static tests check.)
"""

from __future__ import annotations

import operator
from collections import Counter
from typing import Any

import array_api_compat.numpy as xp
import numpy as np
import pytest

import backends
from backends import Backend, GenericOps
from backends.inplace_ops import InplaceOps
from mlp import MLP
from mlp.layers import Dropout
from mlp.losses import CrossEntropy, SoftmaxCrossEntropy
from mlp.train import DeviceData, Trainer


class CountingRng:
    """A host generator that counts its draws by method and size."""

    def __init__(self, rng: np.random.Generator, counts: Counter) -> None:
        self._rng, self._counts = rng, counts

    def random(self, size: Any = None, out: np.ndarray | None = None) -> np.ndarray:
        self._counts["host random numbers"] += int(np.prod(size if out is None else out.shape))
        return self._rng.random(size, out=out)

    def integers(self, *args: Any, **kwargs: Any) -> Any:
        self._counts["host seeds"] += 1
        return self._rng.integers(*args, **kwargs)


#: The counter of the implicit read-backs of :class:`DeviceArray` (set per backend).
IMPLICIT = "implicit read-back"


class DeviceArray(np.ndarray):
    """A NumPy array playing a device array: each implicit conversion to a host value adds one
    to ``counts[IMPLICIT + ": " + how]``; results of operations stay device arrays, scalars
    picked out by indexing included."""

    counts: Counter = Counter()

    def _read_back(self, how: str) -> None:
        DeviceArray.counts[f"{IMPLICIT}: {how}"] += 1

    def __float__(self) -> float:
        self._read_back("float()")
        return float(self.view(np.ndarray))

    def __int__(self) -> int:
        self._read_back("int()")
        return int(self.view(np.ndarray))

    def __bool__(self) -> bool:
        self._read_back("bool()")
        return bool(self.view(np.ndarray))

    def __index__(self) -> int:
        self._read_back("index()")
        return self.view(np.ndarray).__index__()

    def __complex__(self) -> complex:
        self._read_back("complex()")
        return complex(self.view(np.ndarray))

    def item(self, *args: Any) -> Any:
        self._read_back(".item()")
        return self.view(np.ndarray).item(*args)

    def tolist(self) -> Any:
        self._read_back(".tolist()")
        return self.view(np.ndarray).tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        self._read_back("__array__")
        return np.asarray(self.view(np.ndarray), dtype=dtype)

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        self._read_back("__dlpack__")
        return self.view(np.ndarray).__dlpack__(*args, **kwargs)

    def __getitem__(self, key: Any) -> Any:
        out = super().__getitem__(key)
        return np.asarray(out).view(DeviceArray) if isinstance(out, np.generic) else out


def on_device(x: Any) -> Any:
    """``x`` as a :class:`DeviceArray` (NumPy arrays only)."""
    return x.view(DeviceArray) if isinstance(x, np.ndarray) else x


class DeviceNamespace:
    """``array_api_compat.numpy`` whose array creation functions make :class:`DeviceArray`."""

    CREATE = frozenset({"asarray", "zeros", "ones", "empty", "full", "arange", "linspace", "eye",
                        "zeros_like", "ones_like", "empty_like", "full_like"})

    def __getattr__(self, name: str) -> Any:
        attr = getattr(xp, name)
        if name in self.CREATE:
            return lambda *args, **kwargs: on_device(attr(*args, **kwargs))
        return attr


class DeviceOps(InplaceOps):
    """The in-place operations, their buffers on the fake device."""

    def buffer(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return on_device(super().buffer(shape, dtype))


def counting_backend(counts: Counter, is_host: bool = False, inplace: bool = True) -> Backend:
    """A backend over NumPy that counts every transfer and synchronisation; off the host, its
    arrays are :class:`DeviceArray` counting into ``counts`` too."""

    def to_numpy(x: Any) -> np.ndarray:
        counts["to_numpy"] += 1
        return np.asarray(x.view(np.ndarray) if isinstance(x, np.ndarray) else x)

    def synchronize() -> None:
        counts["synchronize"] += 1

    def uniform(seed: int, shape: tuple[int, ...]) -> np.ndarray:
        counts["device random draws"] += 1
        return np.random.default_rng(seed).random(shape, dtype=np.float32)

    device = (lambda x: x) if is_host else on_device
    space = xp if is_host else DeviceNamespace()
    ops = ((InplaceOps if is_host else DeviceOps)(space, np, "cpu") if inplace
           else GenericOps(space, "cpu"))
    backend = Backend("counting", space, "cpu", ops, to_numpy=to_numpy, synchronize=synchronize,
                      is_host=is_host, uniform=lambda seed, shape: device(uniform(seed, shape)))
    to_device, zeros = backend.asarray, backend.zeros

    def asarray(*args: Any, **kwargs: Any) -> Any:
        counts["asarray"] += 1
        return device(to_device(*args, **kwargs))

    backend.asarray = asarray  # type: ignore[method-assign]
    backend.zeros = lambda *args, **kwargs: device(zeros(*args, **kwargs))  # type: ignore
    if not is_host:
        DeviceArray.counts = counts
    return backend


def implicit(counts: Counter) -> dict[str, int]:
    """The implicit read-backs in ``counts``."""
    return {key: n for key, n in counts.items() if key.startswith(IMPLICIT)}


def _count_rng(model: MLP, counts: Counter) -> None:
    for layer in model.layers.layers:
        if isinstance(layer, Dropout):
            layer.rng = CountingRng(layer.rng, counts)


def _trained_counts(is_host: bool, steps: int = 120) -> tuple[Counter, Trainer]:
    counts: Counter = Counter()
    backend = counting_backend(counts, is_host=is_host)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2 * steps, 12), dtype=np.uint8)
    y = rng.integers(0, 3, 2 * steps)
    model = MLP([12, 16, 16, 3], backend=backend, dropout=0.25, seed=1)
    _count_rng(model, counts)
    trainer = Trainer(model, DeviceData(model, x, y), None, batch_size=2, epochs=1)
    counts.clear()
    trainer.fit()
    return counts, trainer


def test_a_device_step_reads_back_only_the_periodic_loss_check():
    counts, trainer = _trained_counts(is_host=False)
    assert trainer.check_every == 50
    # 120 steps: loss and correct count read back at steps 50, 100 and 120 (end of epoch).
    assert counts["to_numpy"] == 3 * 2
    assert implicit(counts) == {}
    assert isinstance(trainer.model.store.flat, DeviceArray)
    assert counts["synchronize"] == 1  # once, to time the epoch
    assert counts["asarray"] == 1  # the epoch's permutation, nothing per step
    # Two dropout layers draw their masks on the device from one host seed per step each.
    assert counts["device random draws"] == counts["host seeds"] == 2 * 120
    assert counts["host random numbers"] == 0


READ_BACKS = {
    "float()": float, "int()": int, "bool()": lambda x: bool(x > 0),
    "index()": lambda x: operator.index(xp.astype(x, xp.int64)), ".item()": lambda x: x.item(),
    ".tolist()": lambda x: x.tolist(), "__array__": lambda x: x.__array__(),
    "__dlpack__": np.from_dlpack, "float() of an element": lambda x: float(xp.reshape(x, (1,))[0]),
}


@pytest.mark.parametrize("how", READ_BACKS)
def test_a_hidden_read_back_in_the_step_is_counted(monkeypatch, how):
    """The fake device catches what the host-traffic test must: a loss read back in the step."""
    counts: Counter = Counter()
    model = MLP([12, 8, 3], backend=counting_backend(counts))
    forward = SoftmaxCrossEntropy.forward

    def reading_forward(self: SoftmaxCrossEntropy, *args: Any, **kwargs: Any) -> Any:
        loss = forward(self, *args, **kwargs)
        READ_BACKS[how](loss)
        return loss

    monkeypatch.setattr(SoftmaxCrossEntropy, "forward", reading_forward)
    x = np.random.default_rng(0).integers(0, 256, (8, 12), dtype=np.uint8)
    model.train_step(model.backend.asarray(x, "float32"), model.backend.asarray(np.arange(8) % 3))
    assert implicit(counts) == {f"{IMPLICIT}: {how.split()[0]}": 1}


def test_a_host_backend_checks_every_step_and_draws_masks_on_the_host():
    counts, trainer = _trained_counts(is_host=True)
    assert trainer.check_every == 1
    assert counts["to_numpy"] == 2 * 120
    assert counts["device random draws"] == counts["host seeds"] == 0
    assert counts["host random numbers"] == 120 * 2 * (2 * 16)
    assert counts["asarray"] == 1 + 2 * 120  # the permutation, then each mask


def test_host_masks_are_the_option_that_reproduces_every_backend():
    counts: Counter = Counter()
    device = counting_backend(counts)
    x = np.ones((64, 12), dtype=np.float32)
    y = np.arange(64) % 3
    host_model = MLP([12, 16, 3], dropout=0.5, seed=4)
    device_model = MLP([12, 16, 3], backend=device, dropout=0.5, seed=4, host_masks=True)
    for model in (host_model, device_model):
        model.train_step(x, y)
    np.testing.assert_array_equal(device_model.layers.layers[2]._mask,
                                  host_model.layers.layers[2]._mask)
    assert counts["device random draws"] == 0
    # On the device by default: other masks, but the same ones again from the same seed.
    masks = []
    for _ in range(2):
        model = MLP([12, 16, 3], backend=device, dropout=0.5, seed=4)
        model.train_step(x, y)
        masks.append(np.asarray(model.layers.layers[2]._mask))
    np.testing.assert_array_equal(masks[0], masks[1])
    assert not np.array_equal(masks[0], host_model.layers.layers[2]._mask)
    assert 0.4 < masks[0].mean() < 0.6


@pytest.mark.parametrize("inplace", [True, False])
def test_predict_and_evaluate_check_their_inputs_once_per_call(inplace):
    counts: Counter = Counter()
    model = MLP([12, 8, 3], backend=counting_backend(counts, inplace=inplace), dtype="float64")
    x = np.random.default_rng(0).random((100, 12))
    y = np.arange(100) % 3
    for batch_size in (7, 100):
        counts.clear()
        model.evaluate(x, y, batch_size=batch_size)
        assert counts["to_numpy"] == 3, batch_size  # the finite check, the loss, the hits
        counts.clear()
        model.predict(x, batch_size=batch_size)
        model.predict_proba(x, batch_size=batch_size)
        assert counts["to_numpy"] == 2, batch_size  # one finite check per call
    counts.clear()
    model.predict((x * 255).astype(np.uint8), batch_size=7)
    assert counts["to_numpy"] == 0  # integer pixels cannot be NaN
    x[55, 3] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite value\\(s\\) of 1200"):
        model.evaluate(x, y, batch_size=7)


def test_evaluate_converts_every_batch_into_one_reused_buffer():
    counts: Counter = Counter()
    backend = counting_backend(counts)
    model = MLP([12, 8, 3], backend=backend)
    pixels = np.random.default_rng(0).integers(0, 256, (100, 12), dtype=np.uint8)
    y = np.arange(100) % 3
    first = model.evaluate(pixels, y, batch_size=16, scale=1 / 255)
    allocated = []
    buffer = backend.ops.buffer
    backend.ops.buffer = lambda *a: allocated.append(a) or buffer(*a)  # type: ignore[method-assign]
    for _ in range(3):
        assert model.evaluate(pixels, y, batch_size=16, scale=1 / 255) == first
    model.predict(pixels, batch_size=16)
    assert allocated == []
    expected = MLP([12, 8, 3]).evaluate((pixels / 255).astype(np.float32), y)
    assert first["accuracy"] == expected["accuracy"]
    assert first["loss"] == pytest.approx(expected["loss"], rel=1e-6)


def test_the_probability_floor_is_a_maximum_not_a_clip(monkeypatch, cpu_float64_backend):
    """``clip`` goes through boolean-mask indexing in array-api-compat's CuPy namespace (a
    device synchronisation); the floor of log(0) must not call it."""
    b = cpu_float64_backend
    p = b.asarray(np.array([[0.0, 0.25, 0.75], [1.0, 0.0, 0.0]]), "float64")
    labels = b.asarray(np.array([0, 0]))
    loss = CrossEntropy()
    expected = float(b.to_numpy(loss.forward(p, labels)))
    grad = b.to_numpy(loss.backward())
    monkeypatch.setattr(b.xp, "clip", None, raising=False)
    assert float(b.to_numpy(loss.forward(p, labels))) == expected
    np.testing.assert_array_equal(b.to_numpy(loss.backward()), grad)
    tiny = np.finfo(np.float64).smallest_normal
    assert expected == pytest.approx(-np.log(tiny) / 2)
    assert np.isfinite(grad).all()


def test_backends_draw_masks_where_their_arrays_live(backend):
    rng = backend.rng(0)
    mask = backend.keep_mask(rng, (50, 40), 0.3)
    assert tuple(mask.shape) == (50, 40)
    kept = float(np.mean(backend.to_numpy(mask)))
    assert 0.6 < kept < 0.8
    host = np.random.default_rng(0).random((50, 40)) >= 0.3
    same = np.array_equal(backend.to_numpy(mask), host)
    assert same == backend.is_host
    forced = backend.keep_mask(backend.rng(0), (50, 40), 0.3, on_device=False)
    np.testing.assert_array_equal(backend.to_numpy(forced), host)


def test_the_default_backends_keep_their_host_masks():
    for entry in backends.available():
        if entry["ok"] and entry["name"] != "cupy":
            assert not backends.get(entry["name"]).device_masks, entry["name"]
