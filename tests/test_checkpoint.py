"""Checkpoints: exact round trips, cross-backend restores, atomic writes, strict validation."""

from __future__ import annotations

import ast
import errno
import json
import os
import pickle
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backends
import mlp
from backends import BackendError
from mlp import checkpoint as ck
from mlp import files
from mlp.architecture import parameter_shapes
from mlp.checkpoint import Checkpoint, load, restore, save
from mlp.errors import CheckpointError
from mlp.losses import SoftmaxCrossEntropy
from mlp.optimizers import SGD, Adam, AdamW
from mlp.schedules import Cosine, LinearWarmup, StepDecay
from mlp.train import TrainState
from mlp.validate import check_keys, check_value, validate_train_state

SIZES = [4, 6, 5, 3]

OPTIMIZERS = {
    "sgd": lambda: SGD(lr=0.1),
    "momentum": lambda: SGD(lr=0.1, momentum=0.9),
    "nesterov": lambda: SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: Adam(lr=1e-2, weight_decay=1e-4, schedule=StepDecay(2, 0.5)),
    "adamw": lambda: AdamW(lr=1e-2, schedule=LinearWarmup(2, Cosine(10))),
}

def _backend_or_skip(name: str) -> None:
    try:
        backends.get(name)
    except BackendError as exc:
        pytest.skip(f"backend {name!r} is not available here: {exc}")


def _batch(model: mlp.MLP, seed: int, n: int = 8) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, model.sizes[0]))
    y = rng.integers(0, model.sizes[-1], size=n)
    return model.backend.asarray(x, model.dtype), model.backend.asarray(y)


def _train(model: mlp.MLP, steps: int, start: int = 0) -> mlp.MLP:
    for i in range(start, start + steps):
        model.train_step(*_batch(model, seed=i))
    return model


def _model(
    optimizer: str = "adam",
    dtype: str = "float64",
    backend: str = "numpy",
    dropout: float = 0.25,
    steps: int = 3,
    **kwargs: Any,
) -> mlp.MLP:
    model = mlp.MLP(SIZES, dropout=dropout, dtype=dtype, backend=backend, seed=7,
                    optimizer=OPTIMIZERS[optimizer](), **kwargs)
    return _train(model, steps)


def _host_state(model: mlp.MLP) -> tuple[dict, dict, int, dict]:
    to_numpy = model.backend.to_numpy
    optim = {k: np.array(to_numpy(v)) for k, v in model.optimizer.state().items()}
    return model.state_dict(), optim, model.optimizer.steps, model.rng.bit_generator.state


def _assert_same_state(a: mlp.MLP, b: mlp.MLP) -> None:
    pa, oa, sa, ra = _host_state(a)
    pb, ob, sb, rb = _host_state(b)
    assert pa.keys() == pb.keys() and oa.keys() == ob.keys()
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
        assert pa[k].dtype == pb[k].dtype
    for k in oa:
        np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)
        assert oa[k].dtype == ob[k].dtype
    assert sa == sb
    assert ra == rb


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_round_trip_is_exact(tmp_path: Path, optimizer: str, dtype: str) -> None:
    model = _model(optimizer, dtype)
    path = save(tmp_path / "m.safetensors", model, {"epoch": 2})
    ckpt = load(path)
    params, optim, steps, rng_state = _host_state(model)
    assert ckpt.steps == steps == 3
    assert ckpt.rng_state == rng_state
    assert ckpt.config == model.config()
    assert ckpt.loss_config == model.loss.config()
    assert ckpt.optimizer_config == model.optimizer.config()
    assert ckpt.params.keys() == params.keys()
    for k, v in params.items():
        np.testing.assert_array_equal(ckpt.params[k], v)
        assert ckpt.params[k].dtype == np.dtype(dtype)
    assert ckpt.optimizer_state.keys() == optim.keys()
    for k, v in optim.items():
        np.testing.assert_array_equal(ckpt.optimizer_state[k], v)
        assert ckpt.optimizer_state[k].dtype == np.dtype(dtype)

    restored = restore(ckpt)
    _assert_same_state(model, restored)
    assert restored.config() == model.config()
    assert restored.optimizer.config() == model.optimizer.config()
    assert restored.loss.config() == model.loss.config()
    assert type(restored.optimizer) is type(model.optimizer)


def test_round_trip_other_architectures(tmp_path: Path) -> None:
    model = mlp.MLP([3, 4, 2], activation="tanh", bias=False, output_bias=True, output="softmax",
                    loss=mlp.CrossEntropy(reduction="sum"), optimizer=SGD(0.1, momentum=0.5),
                    dtype="float32", seed=3)
    _train(model, 2)
    restored = restore(save(tmp_path / "m.safetensors", model))
    _assert_same_state(model, restored)
    assert restored.config() == model.config()
    assert isinstance(restored.loss, mlp.CrossEntropy) and restored.loss.reduction == "sum"


def test_momentum_before_first_step_has_no_velocity(tmp_path: Path) -> None:
    model = _model("momentum", steps=0)
    ckpt = load(save(tmp_path / "m.safetensors", model))
    assert ckpt.optimizer_state == {}
    restored = restore(ckpt)
    assert restored.optimizer.velocity is None
    _train(model, 2)
    _train(restored, 2)
    _assert_same_state(model, restored)


def test_metadata_and_properties(tmp_path: Path) -> None:
    data_rng = np.random.default_rng(2024)
    data_rng.permutation(10)
    meta = {"epoch": np.int64(3), "batch": 17, "dataset": "mnist", "loss": np.float32(0.5),
            "shuffle_rng": data_rng.bit_generator.state, "args": {"sizes": (4, 6, 5, 3)}}
    model = _model()
    ckpt = load(save(tmp_path / "m.safetensors", model, meta))
    assert ckpt.epoch == 3 and isinstance(ckpt.epoch, int)
    assert ckpt.meta["batch"] == 17 and ckpt.meta["args"] == {"sizes": [4, 6, 5, 3]}
    assert ckpt.version == ck.VERSION
    assert ckpt.path == tmp_path / "m.safetensors"
    again = np.random.default_rng()
    again.bit_generator.state = ckpt.meta["shuffle_rng"]
    np.testing.assert_array_equal(again.permutation(10), data_rng.permutation(10))
    assert load(save(tmp_path / "n.safetensors", model)).epoch is None


def test_file_is_plain_safetensors(tmp_path: Path) -> None:
    path = save(tmp_path / "m.safetensors", _model("adam", "float32"))
    with safetensors.safe_open(path, framework="np") as f:
        names = set(f.keys())
        header = json.loads(f.metadata()[ck.METADATA_KEY])
    assert names == {"param/0.W", "param/0.b", "param/3.W", "param/3.b", "param/6.W",
                     "param/6.b", "optim/m", "optim/v"}
    assert header["format"] == ck.FORMAT and header["version"] == ck.VERSION
    assert header["optimizer"]["steps"] == 3
    assert set(header) >= {"model", "loss", "optimizer", "rng", "meta"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sizes": [2, 3]},
        {"sizes": [2, 3, 4, 5], "dropout": 0.5},
        {"sizes": [2, 3, 4], "bias": False},
        {"sizes": [2, 3, 4], "bias": False, "output_bias": True, "dropout": 0.1},
        {"sizes": [2, 3, 4], "output_bias": False, "output": "softmax"},
    ],
)
def test_parameter_shapes_match_the_model(kwargs: dict[str, Any]) -> None:
    model = mlp.MLP(**kwargs)
    assert parameter_shapes(model.config()) == dict(model.store.shapes)
    assert list(parameter_shapes(model.config())) == list(model.store.names)


def test_restored_numpy_buffers_are_fresh_and_writable(tmp_path: Path) -> None:
    ckpt = load(save(tmp_path / "m.safetensors", _model("adam")))
    model = restore(ckpt, "numpy")
    for name, buf in model.optimizer.state().items():
        assert isinstance(buf, np.ndarray)
        assert buf.flags.writeable and buf.flags.c_contiguous
        assert not np.shares_memory(buf, ckpt.optimizer_state[name])
    before = {k: v.copy() for k, v in ckpt.optimizer_state.items()}
    _train(model, 1, start=3)
    for k, v in before.items():
        np.testing.assert_array_equal(ckpt.optimizer_state[k], v)


# --- continuing training ---------------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("optimizer", ["momentum", "adam", "adamw"])
def test_resume_is_bit_identical(tmp_path: Path, optimizer: str, fast: bool) -> None:
    uninterrupted = _train(_model(optimizer, "float64", dropout=0.3, steps=0, fast=fast), 6)
    first = _model(optimizer, "float64", dropout=0.3, steps=3, fast=fast)
    path = save(tmp_path / "m.safetensors", first)
    resumed = _train(restore(path, "numpy", fast=fast), 3, start=3)
    _assert_same_state(uninterrupted, resumed)


@pytest.mark.parametrize("host_masks", [False, True])
def test_restore_passes_host_masks_to_the_dropout_layers(tmp_path: Path, host_masks: bool) -> None:
    from mlp.layers import Dropout

    path = save(tmp_path / "m.safetensors", _model("adam", "float32"))
    dropouts = [la for la in restore(path, host_masks=host_masks).layers
                if isinstance(la, Dropout)]
    assert dropouts and all(la.host_masks is host_masks for la in dropouts)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("torch", "numpy"),
        ("numpy", "torch"),
        ("array_api_strict", "numpy"),
        ("numpy", "array_api_strict"),
        ("torch", "array_api_strict"),
        ("jax", "numpy"),
        ("numpy", "jax"),
        ("jax", "torch"),
        ("torch", "jax"),
        ("jax", "array_api_strict"),
        ("array_api_strict", "jax"),
        pytest.param("jax", "cupy", marks=pytest.mark.gpu),
        pytest.param("cupy", "jax", marks=pytest.mark.gpu),
        pytest.param("cupy", "numpy", marks=pytest.mark.gpu),
        pytest.param("numpy", "cupy", marks=pytest.mark.gpu),
    ],
)
def test_cross_backend_restore(tmp_path: Path, source: str, target: str, dtype: str) -> None:
    _backend_or_skip(source)
    _backend_or_skip(target)
    # Host masks: a GPU backend drops the same units as the host backends.
    model = _model("adam", dtype, backend=source, host_masks=True)
    restored = restore(save(tmp_path / "m.safetensors", model), target, host_masks=True)
    assert restored.backend.name == target
    _assert_same_state(model, restored)
    # Both go on training; the kernels differ only in rounding.
    _train(model, 2, start=3)
    _train(restored, 2, start=3)
    rtol = 1e-4 if dtype == "float32" else 1e-10
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(restored.state_dict()[k], v, rtol=rtol, atol=rtol)
    assert restored.optimizer.steps == model.optimizer.steps == 5


# --- atomic writes ---------------------------------------------------------------------------


@pytest.fixture
def previous(tmp_path: Path) -> tuple[Path, bytes]:
    path = save(tmp_path / "m.safetensors", _model("adam", steps=1))
    return path, path.read_bytes()


def _assert_untouched(path: Path, old: bytes) -> None:
    assert path.read_bytes() == old
    assert os.listdir(path.parent) == [path.name], "a temporary file was left behind"
    assert load(path).steps == 1


def test_failed_rename_keeps_previous(monkeypatch, previous) -> None:
    path, old = previous

    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        save(path, _model("adam", steps=4))
    monkeypatch.undo()
    _assert_untouched(path, old)


def test_disk_full_mid_write_keeps_previous(monkeypatch, previous) -> None:
    path, old = previous

    def half_then_full(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "_write_bytes", half_then_full)
    with pytest.raises(CheckpointError, match="No space left on device"):
        save(path, _model("adam", steps=4))
    monkeypatch.undo()
    _assert_untouched(path, old)


def test_failed_fsync_keeps_previous(monkeypatch, previous) -> None:
    path, old = previous

    def boom(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(CheckpointError, match="Input/output error"):
        save(path, _model("adam", steps=4))
    monkeypatch.undo()
    _assert_untouched(path, old)


def test_interrupt_mid_write_removes_temp(monkeypatch, previous) -> None:
    path, old = previous

    def interrupted(fd: int, data: bytes) -> None:
        os.write(fd, data[:10])
        raise KeyboardInterrupt

    monkeypatch.setattr(files, "_write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save(path, _model("adam", steps=4))
    monkeypatch.undo()
    _assert_untouched(path, old)


def test_overwrite(previous) -> None:
    path, old = previous
    with pytest.raises(CheckpointError, match="exists"):
        save(path, _model("adam", steps=4), overwrite=False)
    _assert_untouched(path, old)
    save(path, _model("adam", steps=4))
    assert load(path).steps == 4
    assert os.listdir(path.parent) == [path.name]
    fresh = save(path.parent / "new.safetensors", _model("adam", steps=2), overwrite=False)
    assert load(fresh).steps == 2


def test_overwrite_false_loses_a_race(monkeypatch, previous) -> None:
    path, _ = previous
    target = path.parent / "late.safetensors"

    def someone_was_faster(src: str, dst: Any) -> None:
        raise FileExistsError(errno.EEXIST, "File exists")

    monkeypatch.setattr(os, "link", someone_was_faster)
    with pytest.raises(CheckpointError, match="exists"):
        save(target, _model("adam", steps=2), overwrite=False)
    assert sorted(os.listdir(path.parent)) == [path.name]


def test_overwrite_false_without_hard_links(monkeypatch, tmp_path: Path) -> None:
    def unsupported(src: str, dst: Any) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", unsupported)
    path = save(tmp_path / "m.safetensors", _model("adam", steps=2), overwrite=False)
    assert load(path).steps == 2
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_unwritable_targets(tmp_path: Path) -> None:
    model = _model(steps=1)
    with pytest.raises(CheckpointError, match="directory"):
        save(tmp_path, model)
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    with pytest.raises(CheckpointError, match=re.escape(str(blocker))):
        save(blocker / "m.safetensors", model)
    nested = save(tmp_path / "a" / "b" / "m.safetensors", model)
    assert load(nested).steps == 1


def test_unsavable_models_and_meta(tmp_path: Path) -> None:
    model = _model(steps=1)
    with pytest.raises(CheckpointError, match="JSON"):
        save(tmp_path / "m.safetensors", model, {"handle": object()})
    with pytest.raises(CheckpointError, match="meta"):
        save(tmp_path / "m.safetensors", model, ["not", "a", "dict"])  # type: ignore[arg-type]

    class HouseLoss(SoftmaxCrossEntropy):
        pass

    custom = mlp.MLP([2, 2], loss=HouseLoss())
    with pytest.raises(CheckpointError, match="unknown loss type 'HouseLoss'"):
        save(tmp_path / "m.safetensors", custom)
    assert os.listdir(tmp_path) == []


# --- refusing bad files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid_parts(tmp_path_factory) -> tuple[dict[str, Any], dict[str, np.ndarray], bytes]:
    path = tmp_path_factory.mktemp("valid") / "m.safetensors"
    save(path, _model("adam", "float32", dropout=0.25, steps=2), {"epoch": 1})
    ckpt = load(path)
    tensors = {f"param/{k}": v for k, v in ckpt.params.items()}
    tensors.update({f"optim/{k}": v for k, v in ckpt.optimizer_state.items()})
    return ckpt.header, tensors, path.read_bytes()


def _write(path: Path, tensors: dict[str, np.ndarray], header: Any = None,
           raw: str | None = None, metadata: dict[str, str] | None = None) -> Path:
    metadata = dict(metadata or {})
    if header is not None:
        metadata[ck.METADATA_KEY] = json.dumps(header)
    if raw is not None:
        metadata[ck.METADATA_KEY] = raw
    path.write_bytes(safetensors.numpy.save(tensors, metadata=metadata or None))
    return path


def _refused(path: Path, match: str | None = None) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message
    if match is not None:
        assert re.search(match, message), message
    return info.value


def _header_with(header: dict[str, Any], where: tuple[Any, ...], value: Any) -> dict[str, Any]:
    header = json.loads(json.dumps(header))
    node = header
    for key in where[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[where[-1]]
    else:
        node[where[-1]] = value
    return header


_DELETE = object()

BAD_HEADERS = {
    "wrong format tag": (("format",), "torch/checkpoint", "format tag"),
    "version 2": (("version",), 2, "version 2 is not supported"),
    "version as text": (("version",), "1", "version '1' is not supported"),
    "version as bool": (("version",), True, "version True"),
    "no version": (("version",), _DELETE, "version None"),
    "no model": (("model",), _DELETE, "lacks model"),
    "no loss": (("loss",), _DELETE, "lacks loss"),
    "no optimizer": (("optimizer",), _DELETE, "lacks optimizer"),
    "no rng": (("rng",), _DELETE, "lacks rng"),
    "no meta": (("meta",), _DELETE, "lacks meta"),
    "meta is a list": (("meta",), [1], "meta"),
    "model is a list": (("model",), [4, 3], "model config"),
    "unknown activation": (("model", "activation"), "swish", "activation"),
    "unknown output": (("model", "output"), "probs", "output"),
    "unknown dtype": (("model", "dtype"), "float16", "dtype"),
    "unknown init": (("model", "init"), "zeros", "init"),
    "one size": (("model", "sizes"), [4], "sizes"),
    "zero size": (("model", "sizes"), [4, 0, 3], "sizes"),
    "float size": (("model", "sizes"), [4, 6.0, 5, 3], "sizes"),
    "dropout 1": (("model", "dropout"), 1.0, "dropout"),
    "dropout text": (("model", "dropout"), "0.25", "dropout"),
    "bias text": (("model", "bias"), "yes", "bias"),
    "no output_bias": (("model", "output_bias"), _DELETE, "output_bias"),
    "unknown model key": (("model", "colour"), "red", "unknown keys"),
    "unknown optimizer": (("optimizer", "config", "type"), "RMSprop", "unknown optimizer"),
    "negative lr": (("optimizer", "config", "lr"), -1.0, "optimizer config"),
    "bad betas": (("optimizer", "config", "betas"), 0.9, "optimizer config"),
    "bad schedule": (("optimizer", "config", "schedule"), {"type": "Warp"}, "optimizer config"),
    "negative steps": (("optimizer", "steps"), -1, "steps"),
    "float steps": (("optimizer", "steps"), 1.5, "steps"),
    "optimizer extra key": (("optimizer", "momentum"), 0.9, "exactly"),
    "unknown loss": (("loss", "type"), "Hinge", "unknown loss"),
    "bad loss argument": (("loss", "temperature"), 2.0, "loss config"),
    "unknown bit generator": (("rng", "bit_generator"), "Xorshift", "rng"),
    "broken rng state": (("rng", "state"), {"state": "x"}, "rng is not a state"),
    # Consistent JSON, but not the architecture the tensors were saved from.
    "other sizes": (("model", "sizes"), [4, 7, 5, 3], "architecture"),
    "one layer fewer": (("model", "sizes"), [4, 6, 3], "architecture"),
    "no dropout changes the layer indices": (("model", "dropout"), 0.0, "architecture"),
    "no biases": (("model", "bias"), False, "architecture"),
    "other dtype": (("model", "dtype"), "float64", "F32"),
    "plain SGD has no buffers": (("optimizer", "config"),
                                 {"type": "SGD", "lr": 0.1, "momentum": 0.0, "nesterov": False,
                                  "weight_decay": 0.0, "schedule": {"type": "Constant"}},
                                 "unexpected \\['optim/m', 'optim/v'\\]"),
}


@pytest.mark.parametrize("case", list(BAD_HEADERS))
def test_refuses_bad_header(tmp_path: Path, valid_parts, case: str) -> None:
    header, tensors, _ = valid_parts
    where, value, match = BAD_HEADERS[case]
    path = _write(tmp_path / "bad.safetensors", tensors, _header_with(header, where, value))
    _refused(path, match)


def _tensors_with(tensors: dict[str, np.ndarray], **changes: Any) -> dict[str, np.ndarray]:
    out = dict(tensors)
    for name, value in changes.items():
        name = name.replace("__", "/").replace("_", ".")
        if value is None:
            del out[name]
        else:
            out[name] = value
    return out


def test_refuses_bad_tensors(tmp_path: Path, valid_parts) -> None:
    header, tensors, _ = valid_parts
    path = tmp_path / "bad.safetensors"
    w = tensors["param/0.W"]
    n = tensors["optim/m"].shape[0]
    cases = [
        (_tensors_with(tensors, param__0_b=None), r"missing \['param/0.b'\]"),
        (_tensors_with(tensors, param__9_W=w), r"unexpected \['param/9.W'\]"),
        (_tensors_with(tensors, param__0_W=np.ascontiguousarray(w.T)), "shape"),
        (_tensors_with(tensors, param__0_W=w.astype(np.float64)), "F64"),
        (_tensors_with(tensors, param__0_W=w.astype(np.int32)), "I32"),
        (_tensors_with(tensors, optim__m=None), r"missing \['optim/m'\]"),
        (_tensors_with(tensors, optim__m=np.zeros(n + 1, np.float32)), "shape"),
        (_tensors_with(tensors, optim__velocity=np.zeros(n, np.float32)), "unexpected"),
        ({**tensors, "extra": w}, "unexpected tensors"),
    ]
    for bad, match in cases:
        _refused(_write(path, bad, header), match)


def test_refuses_files_that_are_not_checkpoints(tmp_path: Path, valid_parts) -> None:
    _, tensors, blob = valid_parts
    _refused(tmp_path / "missing.safetensors", "no such file")
    _refused(tmp_path, "directory")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    _refused(tmp_path / "empty.safetensors", "empty")
    (tmp_path / "short.safetensors").write_bytes(b"\x01\x00")
    _refused(tmp_path / "short.safetensors", "too short")
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    (tmp_path / "noise.safetensors").write_bytes(noise)
    _refused(tmp_path / "noise.safetensors", "not a safetensors file")
    payload = pickle.dumps({"param/0.W": np.zeros((4, 6), np.float32), "steps": 3})
    (tmp_path / "pickle.safetensors").write_bytes(payload)
    _refused(tmp_path / "pickle.safetensors")
    _refused(_write(tmp_path / "plain.safetensors", tensors), "not an array-api-mlp checkpoint")
    _refused(_write(tmp_path / "other.safetensors", tensors, metadata={"format": "pt"}),
             "not an array-api-mlp checkpoint")
    _refused(_write(tmp_path / "json.safetensors", tensors, raw="{not json"), "not valid JSON")
    _refused(_write(tmp_path / "list.safetensors", tensors, raw="[1, 2]"), "not a JSON object")
    _refused(_write(tmp_path / "deep.safetensors", tensors, raw="[" * 100_000), "JSON")


def _raw_file(header: Any, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return len(text).to_bytes(8, "little") + text + data


def test_refuses_corrupt_safetensors_layout(tmp_path: Path, valid_parts) -> None:
    """safetensors checks the layout; each flaw is one line saying the file is not one."""
    _, _, blob = valid_parts
    n = int.from_bytes(blob[:8], "little")
    path = tmp_path / "bad.safetensors"
    entry = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    cases = [
        blob[:-5],  # truncated
        blob + b"\x00" * 8,  # padded
        blob[: 8 + n // 2],  # header longer than the file
        (n + 10**6).to_bytes(8, "little") + blob[8:],
        b"\x00" * 8 + blob[8:],  # header length 0
        blob[:8] + b"\xff" * n + blob[8 + n :],  # header not UTF-8 JSON
        _raw_file([1, 2]),
        _raw_file({"t": entry}, b"\x00" * 4),  # data shorter than the tensors
        _raw_file({"t": {**entry, "dtype": "Q7"}}, b"\x00" * 8),
        _raw_file({"t": {**entry, "shape": [3]}}, b"\x00" * 8),  # size does not match
        _raw_file({"t": {**entry, "shape": [-2]}}, b"\x00" * 8),
        _raw_file({"t": {**entry, "data_offsets": [8, 0]}}, b"\x00" * 8),
        _raw_file({"t": entry, "u": entry}, b"\x00" * 8),  # overlapping tensors
        _raw_file({"t": entry, "__metadata__": {"a": 1}}, b"\x00" * 8),
        _raw_file({"t": 5}),
    ]
    for data in cases:
        path.write_bytes(data)
        message = str(_refused(path, "not a safetensors file"))
        assert "\n" not in message and len(message) < 1000, message


def test_restore_checks_in_memory_checkpoints(valid_parts) -> None:
    header, tensors, _ = valid_parts
    params = {k[6:]: v for k, v in tensors.items() if k.startswith("param/")}
    optim = {k[6:]: v for k, v in tensors.items() if k.startswith("optim/")}
    assert restore(Checkpoint(None, params, optim, header)).optimizer.steps == 2
    params.pop("0.W")
    with pytest.raises(CheckpointError, match="in memory"):
        restore(Checkpoint(None, params, optim, header))


NON_FINITE = {
    "NaN weight": ("param/0.W", (1, 2), np.nan),
    "infinite bias": ("param/0.b", (3,), np.inf),
    "-inf output weight": ("param/6.W", (0, 0), -np.inf),
    "NaN Adam moment": ("optim/m", (5,), np.nan),
    "infinite Adam second moment": ("optim/v", (0,), np.inf),
}


def _with_non_finite(tensors: dict[str, np.ndarray], case: str) -> dict[str, np.ndarray]:
    name, where, value = NON_FINITE[case]
    bad = tensors[name].copy()
    bad[where] = value
    return {**tensors, name: bad}


@pytest.mark.parametrize("case", list(NON_FINITE))
def test_refuses_non_finite_tensors(tmp_path: Path, valid_parts, case: str) -> None:
    """A diverged or altered checkpoint would evaluate, predict and resume without a word."""
    header, tensors, _ = valid_parts
    name = NON_FINITE[case][0]
    bad = _with_non_finite(tensors, case)
    path = _write(tmp_path / "bad.safetensors", bad, header)
    message = str(_refused(path, rf"tensor '{re.escape(name)}' holds 1 NaN or infinite value"))
    assert "\n" not in message
    with pytest.raises(CheckpointError, match=rf"^invalid checkpoint {re.escape(str(path))}: "):
        restore(path)
    params = {k[6:]: v for k, v in bad.items() if k.startswith("param/")}
    optim = {k[6:]: v for k, v in bad.items() if k.startswith("optim/")}
    with pytest.raises(CheckpointError, match=r"in memory.*NaN or infinite"):
        restore(Checkpoint(None, params, optim, header))
    if name.startswith("optim/"):  # never read, so never refused
        assert load(path, parameters_only=True).params.keys() == params.keys()
        restore(path, parameters_only=True)
        restore(Checkpoint(None, params, optim, header), parameters_only=True)
    else:
        with pytest.raises(CheckpointError, match="NaN or infinite"):
            load(path, parameters_only=True)


def test_non_finite_check_counts_across_blocks(monkeypatch) -> None:
    monkeypatch.setattr(ck, "_FINITE_BLOCK", 4)
    arr = np.arange(10.0, dtype=np.float32)
    ck._check_finite("t", arr)
    big = np.full(6, np.finfo(np.float64).max)  # a sum that overflows: counted, and all finite
    ck._check_finite("t", big)
    arr[[1, 6, 9]] = [np.nan, np.inf, -np.inf]
    with pytest.raises(ck.Invalid, match=r"^tensor 't' holds 3 NaN or infinite value\(s\) of 10"):
        ck._check_finite("t", arr)


def _counting_reads(monkeypatch) -> list[int]:
    """Patch the checkpoint reader's ``open_regular`` to record every ``readinto`` size."""
    sizes: list[int] = []

    class Counting:
        def __init__(self, file: Any) -> None:
            self.file = file

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: Any) -> None:
            self.file.close()

        def readinto(self, buffer: Any) -> int:
            sizes.append(memoryview(buffer).nbytes)
            return self.file.readinto(buffer)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.file, name)

    real = ck.open_regular
    monkeypatch.setattr(ck, "open_regular", lambda path: Counting(real(path)))
    return sizes


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_parameters_only_reads_no_optimizer_tensor(tmp_path: Path, monkeypatch,
                                                    optimizer: str) -> None:
    """Predicting and evaluating need the parameters alone: an Adam checkpoint is two thirds
    optimizer moments, which ``parameters_only`` never reads nor keeps."""
    model = _model(optimizer, "float32")
    path = save(tmp_path / "m.safetensors", model)
    param_bytes = sum(a.nbytes for a in model.state_dict().values())
    optim_bytes = sum(a.nbytes for a in _host_state(model)[1].values())
    assert optim_bytes >= param_bytes
    sizes = _counting_reads(monkeypatch)
    full = load(path)
    assert sum(sizes) == param_bytes + optim_bytes
    sizes.clear()
    ckpt = load(path, parameters_only=True)
    assert sum(sizes) == param_bytes and len(sizes) == len(model.state_dict())
    assert ckpt.parameters_only and ckpt.optimizer_state == {}
    assert ckpt.header == full.header
    for k, v in full.params.items():
        np.testing.assert_array_equal(ckpt.params[k], v)
    sizes.clear()
    again = restore(path, parameters_only=True)
    assert sum(sizes) == param_bytes
    x, _ = _batch(model, seed=99, n=16)
    for restored in (again, restore(ckpt), restore(full, parameters_only=True)):
        np.testing.assert_array_equal(restored.backend.to_numpy(restored.predict_proba(x)),
                                      model.backend.to_numpy(model.predict_proba(x)))
        assert restored.optimizer.steps == 0  # the optimizer as built: not for resuming
        assert restored.rng.bit_generator.state == model.rng.bit_generator.state


def test_parameters_only_still_checks_the_optimizer_tensors_layout(tmp_path: Path,
                                                                   valid_parts) -> None:
    """Names, shapes and dtypes come from the header, so they are checked without reading."""
    header, tensors, _ = valid_parts
    n = tensors["optim/m"].shape[0]
    path = tmp_path / "bad.safetensors"
    for bad, match in [(_tensors_with(tensors, optim__m=None), r"missing \['optim/m'\]"),
                       (_tensors_with(tensors, optim__v=np.zeros(n + 1, np.float32)), "shape"),
                       (_tensors_with(tensors, optim__v=np.zeros(n, np.float64)), "F64")]:
        _write(path, bad, header)
        with pytest.raises(CheckpointError, match=match):
            load(path, parameters_only=True)


def test_parameters_only_load_keeps_a_third_of_an_adam_checkpoint(tmp_path: Path) -> None:
    """Peak memory of the load (NumPy's allocations, traced): the parameters only."""
    import tracemalloc

    model = mlp.MLP([784, 256, 10], seed=0)
    path = save(tmp_path / "m.safetensors", model)
    param_bytes = sum(a.nbytes for a in model.state_dict().values())
    peaks = {}
    for only in (False, True):
        tracemalloc.start()
        ckpt = load(path, parameters_only=only)
        peaks[only] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del ckpt
    assert peaks[False] >= 3 * param_bytes
    assert peaks[True] < 1.2 * param_bytes, (peaks, param_bytes)


# --- no pickle anywhere -----------------------------------------------------------------------

PICKLING_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve",
                    "marshal"}
LOADERS = {"np", "numpy", "torch"}


def _pickle_paths(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in PICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in PICKLING_MODULES:
                found.append(node.module)
            elif root in LOADERS and any(a.name == "load" for a in node.names):
                found.append(f"from {node.module} import load")
        elif isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr == "load"
                    and isinstance(func.value, ast.Name) and func.value.id in LOADERS):
                found.append(f"{func.value.id}.load(...)")
            for kw in node.keywords:
                if kw.arg == "allow_pickle":
                    found.append("allow_pickle=")
    return found


def test_package_has_no_pickle_load_path() -> None:
    roots = [Path(mlp.__file__).parent, Path(backends.__file__).parent]
    files = [p for root in roots for p in sorted(root.rglob("*.py"))]
    assert any(p.name == "checkpoint.py" for p in files)
    offenders = {}
    for path in files:
        found = _pickle_paths(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        if found:
            offenders[str(path)] = found
    assert not offenders, f"pickle-based load paths: {offenders}"
    # The scanner itself catches what it must.
    assert _pickle_paths(ast.parse("import numpy as np\nnp.load('x')")) == ["np.load(...)"]
    assert _pickle_paths(ast.parse("from torch import load")) == ["from torch import load"]
    assert _pickle_paths(ast.parse("import cloudpickle.x")) == ["cloudpickle.x"]


# --- fuzzing -----------------------------------------------------------------------------------

FUZZ = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load_or_refuse(path: Path, data: bytes) -> Checkpoint | None:
    path.write_bytes(data)
    try:
        return load(path)
    except CheckpointError:
        return None


@FUZZ
@given(data=st.one_of(
    st.binary(max_size=4096),
    st.builds(lambda n, rest: n.to_bytes(8, "little") + rest,
              st.integers(0, 4096), st.binary(max_size=4096)),
))
def test_fuzz_random_bytes(tmp_path: Path, data: bytes) -> None:
    _load_or_refuse(tmp_path / "fuzz.safetensors", data)


_JSON_CHARS = st.sampled_from(list(b'{}[]",:0123456789.-eE tfn\\\x00\xff'))
_EDIT = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("set"), st.integers(0, 10**6), _JSON_CHARS),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 64)),
)


def _mutate(blob: bytes, edits: list[tuple[str, int, Any]], in_header: bool) -> bytes:
    data = bytearray(blob)
    for op, where, arg in edits:
        n = int.from_bytes(blob[:8], "little")
        span = (8, 8 + n) if in_header else (0, len(data))
        if span[1] <= span[0] or not data:
            break
        i = span[0] + where % (span[1] - span[0])
        i = min(i, len(data) - 1)
        if op == "flip":
            data[i] ^= arg
        elif op == "set":
            data[i] = arg
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = arg
        else:
            del data[i : i + arg]
    return bytes(data)


@FUZZ
@given(edits=st.lists(_EDIT, min_size=1, max_size=4), in_header=st.booleans())
def test_fuzz_mutated_checkpoint(tmp_path: Path, valid_parts, edits, in_header: bool) -> None:
    _, _, blob = valid_parts
    ckpt = _load_or_refuse(tmp_path / "fuzz.safetensors", _mutate(blob, edits, in_header))
    if ckpt is not None:  # a change the format cannot notice (e.g. in the numbers)
        restore(ckpt)


def _leaves(node: Any, where: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [where] if where else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _leaves(v, (*where, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _leaves(v, (*where, i))
    return out


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**130)
    | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6,
)


@FUZZ
@given(choice=st.data(), value=_JSON_VALUES)
def test_fuzz_header_values(tmp_path: Path, valid_parts, choice, value: Any) -> None:
    """Any JSON value anywhere in the header: refused cleanly, or loads *and* restores."""
    header, tensors, _ = valid_parts
    where = choice.draw(st.sampled_from(_leaves(header)))
    path = _write(tmp_path / "fuzz.safetensors", tensors, _header_with(header, where, value))
    try:
        ckpt = load(path)
    except CheckpointError:
        return
    restore(ckpt)


# --- optimizer state shapes ------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_state_shapes_describe_the_state(optimizer: str) -> None:
    """What each optimizer declares is what it holds, before and after its first update."""
    for steps in (0, 1):
        model = _model(optimizer, steps=steps)
        held = {k: tuple(v.shape) for k, v in model.optimizer.state().items()}
        assert model.optimizer.state_shapes(model.store.size) == held


def test_non_canonical_configs_are_refused(tmp_path: Path, valid_parts) -> None:
    """A config is accepted only as its object's own ``config()`` writes it (no ``true`` for a
    number, no ``1`` for a flag), so what is validated is what is rebuilt."""
    header, tensors, _ = valid_parts
    cases = [((("optimizer", "config", "lr"), 1), "optimizer lr is 1, expected 1.0"),
             # The constructor itself refuses a bool for a number (the lr setting's definition).
             ((("optimizer", "config", "lr"), True),
              r"\(lr must be a finite number > 0, got True\)"),
             ((("model", "bias"), 1), "model bias is 1, expected True"),
             ((("model", "sizes"), [4, 6, 5, 3.0]), "model sizes is 3.0"),
             ((("model", "seed"), 3), r"unknown keys \['seed'\]")]
    for (where, value), match in cases:
        _refused(_write(tmp_path / "bad.safetensors", tensors, _header_with(header, where, value)),
                 match)


# --- the training state in meta ----------------------------------------------------------------

GOOD_STATE = {"epoch": 1, "batch": 2, "shuffle_state": np.random.default_rng(5).bit_generator.state,
              "loss_sum": 3.5, "correct": 7, "seen": 16, "seconds": 0.25,
              "history": [{"epoch": 1, "train_loss": 0.5, "test_acc": 0.9,
                           "samples_per_s": float("nan")}]}

BAD_STATES = {
    "not an object": ([], "train_state is \\[\\], expected an object"),
    "empty": ({}, "train_state lacks epoch, batch"),
    "unknown key": ({**GOOD_STATE, "colour": 1}, r"train_state has unknown keys \['colour'\]"),
    "text for a number": ({**GOOD_STATE, "epoch": "x"}, "train_state.epoch is 'x'"),
    "bool for a count": ({**GOOD_STATE, "seen": True}, "train_state.seen is True"),
    "negative batch": ({**GOOD_STATE, "batch": -1}, "train_state.batch is -1"),
    "samples without batches": ({**GOOD_STATE, "batch": 0}, "train_state.seen is 16"),
    "more correct than seen": ({**GOOD_STATE, "correct": 17}, "train_state.correct is 17"),
    "infinite loss": ({**GOOD_STATE, "loss_sum": float("inf")}, "train_state.loss_sum is inf"),
    "negative seconds": ({**GOOD_STATE, "seconds": -1.0}, "train_state.seconds is -1.0"),
    "history too short": ({**GOOD_STATE, "history": []}, "history holds 0 epochs"),
    "history of text": ({**GOOD_STATE, "history": [{"epoch": 1, "train_loss": "low"}]},
                        r"history\[0\] is not the metrics of epoch 1"),
    "bad shuffle state": ({**GOOD_STATE, "shuffle_state": {"bit_generator": "MT19937"}},
                          "train_state.shuffle_state is not a state"),
}


@pytest.mark.parametrize("case", list(BAD_STATES))
def test_refuses_bad_train_state(tmp_path: Path, valid_parts, case: str) -> None:
    header, tensors, _ = valid_parts
    state, match = BAD_STATES[case]
    path = _write(tmp_path / "bad.safetensors", tensors,
                  _header_with(header, ("meta", "train_state"), state))
    message = str(_refused(path, match))
    assert "\n" not in message
    with pytest.raises(CheckpointError, match=match):  # and a model refuses to save it
        save(tmp_path / "new.safetensors", _model(steps=1), {"train_state": state})
    assert not (tmp_path / "new.safetensors").exists()


def test_train_state_round_trip_and_run_limits(tmp_path: Path, valid_parts) -> None:
    header, tensors, _ = valid_parts
    path = _write(tmp_path / "ok.safetensors", tensors,
                  _header_with(header, ("meta", "train_state"), GOOD_STATE))
    data = load(path).meta["train_state"]
    state = validate_train_state(data, steps_per_epoch=3, epochs=2)
    assert isinstance(state, TrainState) and state.batch == 2 and state.history[0]["epoch"] == 1
    assert state.history is not data["history"]  # the caller's copy to change
    with pytest.raises(CheckpointError, match=r"train_state.batch is 2, expected an integer in "
                                              r"\[0, 1\]"):
        validate_train_state(data, steps_per_epoch=2)
    with pytest.raises(CheckpointError, match="train_state.batch is 1000000000"):
        validate_train_state({**data, "batch": 10**9}, steps_per_epoch=469)
    with pytest.raises(CheckpointError, match=r"train_state.epoch is 1, expected an integer in "
                                              r"\[0, 0\]"):
        validate_train_state(data, epochs=0)
    finished = {**data, "batch": 0, "seen": 0, "correct": 0}
    assert validate_train_state(finished, steps_per_epoch=3, epochs=1).epoch == 1
    with pytest.raises(CheckpointError, match="train_state.batch is 2"):
        validate_train_state(data, steps_per_epoch=3, epochs=1)  # finished runs are at batch 0


def test_field_checks() -> None:
    assert check_value("x", 3, int, low=0, high=3) == 3
    assert check_value("x", 2, float) == 2
    assert check_value("x", None, (int, type(None))) is None
    assert check_value("x", "adam", str, choices=("adam", "sgd")) == "adam"
    for value, kind, kwargs, match in [
        (True, int, {}, "x is True, expected an integer"),
        (float("nan"), float, {}, "x is nan, expected a finite number"),
        (0, int, {"low": 1}, r"x is 0, expected an integer in \[1, inf\]"),
        ("rms", str, {"choices": ("adam", "sgd")}, "one of \\['adam', 'sgd'\\]"),
        ("x" * 10**6, int, {}, "x is 'xxx"),
    ]:
        with pytest.raises(CheckpointError, match=match) as info:
            check_value("x", value, kind, **kwargs)
        assert len(str(info.value)) < 300
    assert check_keys("s", {"a": 1, "b": 2}, ("a",), optional=("b",)) == {"a": 1, "b": 2}
    with pytest.raises(CheckpointError, match="s lacks a"):
        check_keys("s", {"b": 2}, ("a",))
    with pytest.raises(CheckpointError, match=r"s has unknown keys \['k0', 'k1', 'k2', 'k3', "
                                              r"'k4'\] and 99995 more"):
        check_keys("s", {f"k{i}": i for i in range(100_000)}, ())


# --- files that are not files ----------------------------------------------------------------


def test_fifo_device_and_folder_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    script = ("import sys\nfrom mlp.checkpoint import load\nfrom mlp.errors import "
              "CheckpointError\ntry:\n    load(sys.argv[1])\nexcept CheckpointError as e:\n"
              "    print(e)\n    sys.exit(1)\n")
    for path, what in ((fifo, "a FIFO"), (Path(os.devnull), "a device"), (tmp_path, "a directory")):
        run = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                             text=True, timeout=60)  # a blocking open would hang here
        assert run.returncode == 1, run.stderr
        assert run.stdout == f"invalid checkpoint {path}: it is {what}, not a regular file\n"


def test_save_never_replaces_what_is_not_a_regular_file(tmp_path: Path) -> None:
    model = _model(steps=1)
    kept = save(tmp_path / "kept.safetensors", model)
    before = kept.read_bytes()
    link = tmp_path / "link.safetensors"
    link.symlink_to(kept.name)
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    targets = [(link, "a symbolic link"), (fifo, "a FIFO"), (tmp_path, "a directory")]
    try:
        node = tmp_path / "node.safetensors"
        os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # like /dev/null
        targets.append((node, "a device"))
    except PermissionError:
        pass  # creating device nodes needs root; the FIFO and link cases still run
    for target, what in targets:
        expected = f"cannot write checkpoint {target}: it is {what}, not a regular file"
        with pytest.raises(CheckpointError, match="^" + re.escape(expected)):
            save(target, model, overwrite=True)
    assert link.is_symlink() and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert kept.read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


# --- stale temporary files -------------------------------------------------------------------

KILL_MID_SAVE = """
import os, signal, sys
import mlp
from mlp import checkpoint, files
def killed(fd, data):
    os.write(fd, data[:100])
    os.kill(os.getpid(), signal.SIGKILL)
files._write_bytes = killed
checkpoint.save(sys.argv[1], mlp.MLP([3, 4, 2]))
"""


def test_save_removes_temp_files_of_killed_saves_only(tmp_path: Path) -> None:
    target = tmp_path / "m.safetensors"
    run = subprocess.run([sys.executable, "-c", KILL_MID_SAVE, str(target)], timeout=120)
    assert run.returncode == -signal.SIGKILL
    (stale,) = os.listdir(tmp_path)  # the killed save left its temporary file
    assert re.fullmatch(r"\.m\.safetensors\.mlp-[0-9]+-[0-9a-f]{12}\.tmp", stale)
    live = tmp_path / f".other.safetensors.mlp-{os.getpid()}-{'a' * 12}.tmp"  # a running save
    foreign = [tmp_path / ".m.safetensors.1234.tmp", tmp_path / "notes.tmp"]
    for path in (live, *foreign):
        path.write_bytes(b"keep")
    dead_link = tmp_path / f".x.mlp-{_dead_pid()}-{'b' * 12}.tmp"
    dead_link.symlink_to("notes.tmp")
    save(tmp_path / "other.safetensors", _model(steps=1))
    assert sorted(os.listdir(tmp_path)) == sorted(
        [dead_link.name, live.name, *(p.name for p in foreign), "other.safetensors"])
    assert all(p.read_bytes() == b"keep" for p in (live, *foreign))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temp_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    stale = tmp_path / f".m.safetensors.mlp-{_dead_pid()}-{'c' * 12}.tmp"
    stale.write_bytes(b"half a checkpoint")
    save(tmp_path / "m.safetensors", _model(steps=1))
    assert os.listdir(tmp_path) == ["m.safetensors"]


# --- bounded messages and memory -------------------------------------------------------------


def test_a_million_tensor_entries_give_one_short_line(tmp_path: Path, valid_parts) -> None:
    header, tensors, _ = valid_parts
    good = _write(tmp_path / "good.safetensors", tensors, header).read_bytes()
    n = int.from_bytes(good[:8], "little")
    table = good[8 : 8 + n].decode().rstrip()  # safetensors pads it with spaces
    junk = ",".join(f'"junk/{i}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'
                    for i in range(200_000))
    text = (table[:-1] + "," + junk + "}").encode()
    path = tmp_path / "junk.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text + good[8 + n :])
    message = str(_refused(path, r"unexpected tensors \['junk/0', 'junk/1', 'junk/10', "
                                 r"'junk/100', 'junk/1000'\] and 199995 more"))
    assert len(message) < 300, len(message)


def test_header_values_in_messages_are_cut(tmp_path: Path, valid_parts) -> None:
    header, tensors, _ = valid_parts
    for where, value in ((("model", "activation"), "x" * 10**6),
                         (("loss", "type"), "y" * 10**6),
                         (("model", "colour" * 10**5), 1),
                         (("optimizer", "config", "lr"), list(range(10**5)))):
        path = _write(tmp_path / "bad.safetensors", tensors, _header_with(header, where, value))
        assert len(str(_refused(path))) <= 2100


LOAD_AND_MEASURE = """
import re, sys
from mlp import checkpoint

def status(key):
    with open("/proc/self/status") as f:
        return int(re.search(key + r":\\s+(\\d+) kB", f.read())[1]) * 1024

checkpoint.load(sys.argv[2])  # the baseline: a small checkpoint's imports and trial model
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) restarts from the current resident size
before = status("VmRSS")
ckpt = checkpoint.load(sys.argv[1])
print(status("VmHWM") - before, sum(a.nbytes for a in ckpt.params.values())
      + sum(a.nbytes for a in ckpt.optimizer_state.values()))
"""


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK),
                    reason="needs Linux's /proc/self/clear_refs to reset the peak memory")
def test_load_peak_memory_is_about_the_file_size(tmp_path: Path) -> None:
    """Tensors are read one at a time into fresh arrays: loading a 100 MB checkpoint raises the
    peak resident memory by at most 1.3 x the file (reading through a memory map and copying
    would count the file twice). The peak is the process's own (VmHWM, reset before loading):
    ``ru_maxrss`` would include the imports and the memory of the process it was forked from."""
    model = mlp.MLP([1000, 2800, 3000, 10], optimizer=Adam(), dtype="float32")
    path = save(tmp_path / "big.safetensors", model)
    small = save(tmp_path / "small.safetensors", mlp.MLP([3, 2]))
    del model
    size = path.stat().st_size
    assert size > 90 * 2**20
    run = subprocess.run([sys.executable, "-c", LOAD_AND_MEASURE, str(path), str(small)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    grew, held = map(int, run.stdout.split())
    assert held > 0.99 * size
    assert grew <= 1.3 * size, f"peak grew by {grew / size:.2f} x the file size"
