"""Devices: every entry point runs inside the backend's device context, GPU indices parse from
every form a user or CuPy gives, and a model on a second GPU stays there.

Without a GPU the device context is proven on a fake two-device library: NumPy whose array
functions record which (fake) device is current when they are called, as CuPy's
array-api-compat functions create arrays on the current device whatever ``device=`` says.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import array_api_compat.numpy as compat_numpy
import numpy as np
import pytest

import backends
from backends import Backend, BackendError, GenericOps
from backends.inplace_ops import InplaceOps
from backends.registry import _device_index
from mlp import MLP, SGD
from mlp.train import DeviceData, Trainer

#: Functions of dtypes alone, which touch no device.
DTYPE_ONLY = {"isdtype", "result_type", "can_cast"}


class TwoDevices:
    """A fake two-device machine: a stack of current devices and a log of array calls."""

    def __init__(self) -> None:
        self.current = ["device 0"]
        self.calls: list[tuple[str, str]] = []
        self.entries = 0

    @contextlib.contextmanager
    def device_1(self) -> Iterator[None]:
        self.entries += 1
        self.current.append("device 1")
        try:
            yield
        finally:
            self.current.pop()

    def recording(self, name: str, fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, self.current[-1]))
            return fn(*args, **kwargs)

        return call

    def outside(self) -> list[str]:
        """The array functions called while device 0 was current."""
        return sorted({name for name, where in self.calls if where != "device 1"})


class RecordingModule:
    """``module`` with every function recorded (for the in-place operations' ``np``)."""

    def __init__(self, module: Any, machine: TwoDevices) -> None:
        self._module, self._machine = module, machine

    def __getattr__(self, name: str) -> Any:
        obj = getattr(self._module, name)
        if callable(obj) and not isinstance(obj, type) and name not in DTYPE_ONLY:
            return self._machine.recording(name, obj)
        return obj


@pytest.fixture(params=["portable", "in-place"])
def second_device(request, monkeypatch) -> tuple[Backend, TwoDevices]:
    """A backend on "device 1" of the fake machine; every function of the array namespace
    (the one ``array_namespace`` gives the layers and losses too) is recorded."""
    machine = TwoDevices()
    for name in dir(compat_numpy):
        obj = getattr(compat_numpy, name)
        if (not name.startswith("_") and name not in DTYPE_ONLY and callable(obj)
                and not isinstance(obj, type)):
            monkeypatch.setattr(compat_numpy, name, machine.recording(name, obj))
    xp = compat_numpy
    ops = (GenericOps(xp, "cpu") if request.param == "portable"
           else InplaceOps(xp, RecordingModule(np, machine), "cpu", kernels=False))

    def uniform(seed: int, shape: tuple[int, ...]) -> Any:
        return xp.asarray(np.random.default_rng(seed).random(shape, dtype=np.float32))

    backend = Backend("fake-gpu", xp, "cpu", ops, is_host=False, activate=machine.device_1,
                      uniform=uniform)
    return backend, machine


def _data(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (n, 6), dtype=np.uint8), rng.integers(0, 3, n)


def test_every_entry_point_runs_on_the_models_device(second_device):
    backend, machine = second_device
    pixels, labels = _data()
    x = (pixels / 255.0).astype(np.float64)  # host arrays, made before recording matters
    entry_points = {
        "construction": lambda: MLP([6, 5, 3], backend=backend, dtype="float64", dropout=0.3,
                                    optimizer=SGD(0.1, momentum=0.9)),
    }
    model = entry_points["construction"]()
    entry_points.update({
        "train_step": lambda: model.train_step(x[:8], labels[:8]),
        "forward": lambda: model.forward(x),
        "loss_and_grads": lambda: model.loss_and_grads(x[:8], labels[:8]),
        "evaluate": lambda: model.evaluate(x, labels, batch_size=16),
        "evaluate pixels": lambda: model.evaluate(pixels, labels, batch_size=16,
                                                  scale=1 / 255),
        "predict": lambda: model.predict(pixels, batch_size=16),
        "predict_proba": lambda: model.predict_proba(x, batch_size=16),
        "load_state_dict": lambda: model.load_state_dict(model.state_dict()),
        "trainer": lambda: Trainer(model, DeviceData(model, pixels, labels),
                                   DeviceData(model, pixels, labels), batch_size=16).fit(),
        "fit": lambda: model.fit(pixels, labels, batch_size=16, validation=(pixels, labels)),
    })
    for what, call in entry_points.items():
        machine.calls.clear()
        entries = machine.entries
        call()
        assert machine.calls, f"{what} made no array call: the test would prove nothing"
        assert machine.outside() == [], f"{what} called these on the wrong device"
        assert machine.entries > entries, what
    assert machine.current == ["device 0"]  # every context was left


def test_arrays_are_created_inside_the_context(second_device):
    backend, machine = second_device
    MLP([6, 5, 3], backend=backend, dropout=0.3)
    created = {name for name, where in machine.calls if where == "device 1"}
    assert {"zeros", "asarray"} <= created
    machine.calls.clear()
    backend.zeros((2,), "float32")
    assert machine.calls == [("zeros", "device 1")]


def test_the_activation_context_is_a_no_op_on_cpu_backends(cpu_float64_backend):
    b = cpu_float64_backend
    with b.activate(), b.activate():  # re-entrant
        x = b.zeros((2,), "float64")
    assert tuple(x.shape) == (2,)


def test_portable_copies_keep_the_device_context(second_device):
    backend, machine = second_device
    portable = backend.with_ops(GenericOps(backend.xp, backend.device))
    with portable.activate():
        assert machine.current[-1] == "device 1"
    assert portable.device_masks


class IntDevice:
    """Like ``cupy.cuda.Device(1)``: an ``__int__`` and a repr that is not a number."""

    def __int__(self) -> int:
        return 1

    def __repr__(self) -> str:
        return "<CUDA Device 1>"

    __str__ = __repr__


@pytest.mark.parametrize("device, index", [
    (None, 0), (0, 0), (2, 2), (np.int64(3), 3), ("1", 1), ("cuda", 0), ("cuda:1", 1),
    (IntDevice(), 1),
])
def test_gpu_indices_parse_from_every_form(device, index):
    assert _device_index(device, "cupy") == index


@pytest.mark.parametrize("device", ["gpu1", "cuda:x", 1.5, object()])
def test_a_device_that_is_no_gpu_index_is_a_clear_error(device):
    with pytest.raises(BackendError, match="not a GPU index"):
        _device_index(device, "cupy")


def _gpus(need: int) -> Any:
    cupy = pytest.importorskip("cupy", reason="the GPU tests need CuPy")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - no driver, no device
        pytest.skip(f"no CUDA device here ({exc})")
    if count < need:
        pytest.skip(f"needs {need} GPUs, this machine has {count}")
    return cupy


@pytest.mark.gpu
def test_a_model_on_the_second_gpu_stays_there_whatever_is_current():
    cupy = _gpus(2)
    pixels, labels = _data(300)
    with cupy.cuda.Device(0):
        model = MLP([6, 16, 3], backend="cupy", device=1, dropout=0.2)
        backends.get("cupy", 0)  # selecting another GPU meanwhile must not matter
        backends.available()
        model.fit(pixels, labels, epochs=2, batch_size=64, validation=(pixels, labels))
        proba = model.predict_proba(pixels)
        assert cupy.cuda.runtime.getDevice() == 0
    arrays = [model.store.flat, model.store.grad, proba, model.predict(pixels),
              *model.optimizer.state().values()]
    assert {a.device.id for a in arrays} == {1}
    # The same model restored from its parameters on device 0 predicts the same.
    other = MLP([6, 16, 3], backend="cupy", device=0, dropout=0.2)
    other.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(cupy.asnumpy(other.predict(pixels)),
                                  cupy.asnumpy(model.predict(pixels)))


@pytest.mark.gpu
def test_a_cupy_backend_of_a_device_object_is_that_device():
    cupy = _gpus(1)
    index = cupy.cuda.runtime.getDeviceCount() - 1
    b = backends.get("cupy", cupy.cuda.Device(index))
    assert b.device.id == index
    with b.activate():
        assert cupy.cuda.runtime.getDevice() == index
