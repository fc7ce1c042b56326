"""Checkpoints: a model's parameters, optimizer state and random state in one safetensors file.

A plain `safetensors <https://huggingface.co/docs/safetensors>`_ file holds only arrays and
text, so loading one never runs code (no pickle anywhere). Its tensors are ``param/<name>``
(``param/0.W`` ``(n_in, n_out)``, ...) and ``optim/<name>`` (the buffers
:meth:`~mlp.optimizers.Optimizer.state_shapes` declares), in the model's dtype. The metadata
key :data:`METADATA_KEY` holds a JSON object (the *header*)::

    {"format": "array-api-mlp/checkpoint", "version": 1, "library_version": "0.1.0",
     "model": {...MLP.config()...}, "loss": {...}, "optimizer": {"config": {...}, "steps": 1200},
     "rng": {...the model generator's bit_generator.state...}, "meta": {...the caller's...}}

``meta["train_state"]``, when present, is the training loop's :class:`~mlp.train.TrainState`.
:func:`save` writes atomically (temporary file in the same folder, ``fsync``, rename);
:func:`load` lets safetensors check the file's layout, then checks every header field and every
tensor's name, shape and dtype before reading the tensors one at a time, and refuses a tensor
holding NaN or infinity; :func:`restore` rebuilds the model on any backend.
``parameters_only=True`` (for predicting and evaluating) never reads the optimizer's tensors.
Every problem is one :class:`~mlp.errors.CheckpointError`.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from .architecture import parameter_shapes
from .errors import CheckpointError
from .files import atomic_write, open_regular
from .fitting import MLP
from .losses import LOSSES, loss_from_config
from .optimizers import OPTIMIZERS, optimizer_from_config
from .validate import Invalid, cap, check_keys, check_rng, check_value, few, short
from .validate import validate_train_state as _validate_train_state

FORMAT = "array-api-mlp/checkpoint"  # the header's "format" tag
VERSION = 1  # the header version save() writes
SUPPORTED_VERSIONS = (1,)  # header versions load() reads
METADATA_KEY = "array_api_mlp"  # the safetensors metadata key that holds the JSON header
PARAM_PREFIX = "param/"
OPTIM_PREFIX = "optim/"

_TAGS = {"float32": "F32", "float64": "F64"}  # model dtype -> safetensors dtype tag
_HEADER_KEYS = ("format", "version", "model", "loss", "optimizer", "rng", "meta")


@dataclass
class Checkpoint:
    """A validated checkpoint in host memory: the file it came from (``None`` when built in
    memory), parameter name (``"0.W"``) -> host array, optimizer buffer name (``"m"``) ->
    ``(n_params,)`` array, and the parsed JSON header (see the module docstring).
    ``parameters_only``: the optimizer buffers were not read (``optimizer_state`` is empty)."""

    path: Path | None
    params: dict[str, np.ndarray]
    optimizer_state: dict[str, np.ndarray]
    header: dict[str, Any] = field(repr=False)
    parameters_only: bool = False

    @property
    def version(self) -> int:
        return self.header["version"]

    @property
    def config(self) -> dict[str, Any]:
        """The architecture: ``MLP(**checkpoint.config)`` builds the same network."""
        return dict(self.header["model"])

    @property
    def loss_config(self) -> dict[str, Any]:
        return dict(self.header["loss"])

    @property
    def optimizer_config(self) -> dict[str, Any]:
        return dict(self.header["optimizer"]["config"])

    @property
    def steps(self) -> int:
        """Optimizer updates taken before the checkpoint."""
        return int(self.header["optimizer"]["steps"])

    @property
    def rng_state(self) -> dict[str, Any]:
        return self.header["rng"]

    @property
    def meta(self) -> dict[str, Any]:
        return self.header["meta"]

    @property
    def epoch(self) -> Any:
        """``meta["epoch"]``, or ``None`` when the caller stored none."""
        return self.meta.get("epoch")


def save(path: str | os.PathLike[str], model: MLP, meta: dict[str, Any] | None = None, *,
         overwrite: bool = True) -> Path:
    """Write ``model`` (parameters, loss, optimizer and its state, RNG state) to ``path``.

    Written with :func:`mlp.files.atomic_write` (a crash or a full disk leaves the previous
    file or the new one, never half a file; only a regular file is ever replaced). ``meta`` is
    JSON-able caller data (NumPy scalars and arrays become numbers and lists);
    ``overwrite=False`` refuses to replace an existing file.

    Raises:
        CheckpointError: ``meta`` is not JSON-able, the model cannot be described (e.g. a
            custom loss class), or the file cannot be written (the message says why).
    """
    target = Path(path)
    try:
        header = _header_for(model, meta)
        tensors = _host_tensors(model, header["model"]["dtype"])
        _check_arrays(header, tensors)
        text = json.dumps(header, ensure_ascii=False, separators=(",", ":"))
        blob = safetensors.numpy.save(tensors, metadata={METADATA_KEY: text})
    except (Invalid, safetensors.SafetensorError) as exc:
        raise CheckpointError(cap(f"cannot save checkpoint {target}: {exc}")) from None
    try:
        atomic_write(target, blob, overwrite)
    except FileExistsError:
        reason = "the file exists (pass overwrite=True to replace it)"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    else:
        return target
    raise CheckpointError(cap(f"cannot write checkpoint {target}: {reason}"))


def _header_for(model: MLP, meta: dict[str, Any] | None) -> dict[str, Any]:
    from . import __version__

    if not isinstance(meta, dict | None):
        raise Invalid(f"meta must be a dict, got {type(meta).__name__}")
    header = {
        "format": FORMAT, "version": VERSION, "library_version": __version__,
        "model": model.config(), "loss": model.loss.config(),
        "optimizer": {"config": model.optimizer.config(), "steps": int(model.optimizer.steps)},
        "rng": model.rng.bit_generator.state, "meta": meta or {},
    }
    try:  # round trip through JSON so what is validated is exactly what a load will see
        header = json.loads(json.dumps(header, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise Invalid(f"header is not JSON-able: {exc}") from None
    _validate_header(header)
    return header


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic):
        return obj.tolist()
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} object is not JSON serializable")


def _host_tensors(model: MLP, dtype: str) -> dict[str, np.ndarray]:
    to_numpy, state = model.backend.to_numpy, model.optimizer.state().items()
    return _named({k: np.ascontiguousarray(v, dtype=dtype) for k, v in model.state_dict().items()},
                  {k: np.array(to_numpy(v), dtype=dtype, order="C") for k, v in state})


def _named(params: dict[str, Any], optim: dict[str, Any]) -> dict[str, Any]:
    """The tensors by their names in the file."""
    return {**{PARAM_PREFIX + k: v for k, v in params.items()},
            **{OPTIM_PREFIX + k: v for k, v in optim.items()}}


def load(path: str | os.PathLike[str], *, parameters_only: bool = False) -> Checkpoint:
    """Read and validate the checkpoint at ``path``; no model is built or touched.

    Only a regular file is opened (a FIFO or device is refused without blocking); safetensors
    checks its layout; then every header field, and each tensor's name, shape and dtype against
    the architecture and optimizer, are checked before the tensors are read, one at a time, into
    fresh arrays (peak memory about the file's size), each refused if it holds NaN or infinity.
    With ``parameters_only`` the optimizer's tensors are checked from the header but never
    read (a third of an Adam checkpoint's size is read and kept): enough to predict and
    evaluate, not to resume. Raises one :class:`CheckpointError` naming the file and what is
    wrong."""
    source = Path(path)
    try:
        with open_regular(source) as file:
            return _load(source, file, parameters_only)
    except FileNotFoundError:
        reason = "no such file"
    except Invalid as exc:
        reason = str(exc)
    except OSError as exc:
        reason = exc.strerror and f"cannot read it ({exc.strerror})" or str(exc)
    raise CheckpointError(cap(f"invalid checkpoint {source}: {reason}"))


def _load(source: Path, file: Any, parameters_only: bool = False) -> Checkpoint:
    info = os.fstat(file.fileno())
    if info.st_size < 8:
        raise Invalid(f"{info.st_size} bytes is too short for a safetensors file"
                      if info.st_size else "the file is empty")
    try:
        with safetensors.safe_open(source, framework="numpy") as f:
            if not os.path.samestat(info, os.stat(source)):
                raise Invalid("the file was replaced while reading")
            header = _our_header(f.metadata() or {})
            expected = _expected_tensors(header, f.keys())
            _check_tensors(header, expected, {
                name: (f.get_slice(name).get_shape(), f.get_slice(name).get_dtype())
                for name in expected})
            order = f.offset_keys()
    except safetensors.SafetensorError as exc:
        raise Invalid(f"not a safetensors file ({exc})") from None
    except BaseException as exc:  # a Rust panic surfaces as a BaseException
        if type(exc).__name__ != "PanicException":
            raise
        raise Invalid(f"not a safetensors file ({exc})") from None
    # safetensors checked that the tensors lie back to back after the header, in offset order.
    file.seek(0)
    offset = 8 + int.from_bytes(file.read(8), "little")
    dtype = np.dtype(header["model"]["dtype"]).newbyteorder("<")
    arrays: dict[str, dict[str, np.ndarray]] = {PARAM_PREFIX: {}, OPTIM_PREFIX: {}}
    for name in order:  # into fresh arrays: the page cache, not this process, holds the file
        nbytes = math.prod(expected[name]) * dtype.itemsize
        if parameters_only and name.startswith(OPTIM_PREFIX):
            offset += nbytes
            continue
        arr = np.empty(expected[name], dtype)
        file.seek(offset)
        if file.readinto(memoryview(arr).cast("B")) != nbytes:
            raise Invalid("the file was truncated while reading")
        offset += nbytes
        _check_finite(name, arr)
        prefix, key = name.split("/", 1)
        arrays[prefix + "/"][key] = arr
    if offset != os.fstat(file.fileno()).st_size:
        raise Invalid("the file changed while reading")
    return Checkpoint(source, arrays[PARAM_PREFIX], arrays[OPTIM_PREFIX], header,
                      parameters_only=parameters_only)


_FINITE_BLOCK = 1 << 20  # elements per block of the finiteness check: a bounded temporary


def _check_finite(name: str, arr: np.ndarray) -> None:
    """Refuse ``arr`` (tensor ``name``) if it holds NaN or infinity: a float64 sum per block
    (NaN and infinity propagate through it), counted exactly only when a sum is not finite."""
    flat = np.asarray(arr).reshape(-1)
    bad = 0
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum is counted
        for i in range(0, flat.size, _FINITE_BLOCK):
            block = flat[i : i + _FINITE_BLOCK]
            if not math.isfinite(float(np.sum(block, dtype=np.float64))):
                bad += int(np.count_nonzero(~np.isfinite(block)))
    if bad:
        raise Invalid(f"tensor {name!r} holds {bad} NaN or infinite value(s) of {flat.size}: "
                      "the run that wrote it diverged, or the file was altered")


def _our_header(metadata: dict[str, str]) -> dict[str, Any]:
    """The checkpoint header in the safetensors metadata, validated."""
    if METADATA_KEY not in metadata:
        raise Invalid(f"a safetensors file, but not an array-api-mlp checkpoint (no "
                      f"{METADATA_KEY!r} metadata)")
    try:
        header = json.loads(metadata[METADATA_KEY])
    except (ValueError, RecursionError) as exc:
        raise Invalid(f"checkpoint metadata is not valid JSON ({exc})") from None
    _validate_header(header)
    return header


def _validate_header(header: Any) -> None:
    """Raise :class:`Invalid` unless ``header`` is a well-formed checkpoint header."""
    if not isinstance(header, dict):
        raise Invalid("checkpoint metadata is not a JSON object")
    if header.get("format") != FORMAT:
        raise Invalid(f"format tag is {short(header.get('format'))}, expected {FORMAT!r}")
    version = header.get("version")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise Invalid(f"format version {short(version)} is not supported (this library "
                      f"reads {', '.join(map(str, SUPPORTED_VERSIONS))})")
    missing = [k for k in _HEADER_KEYS if k not in header]
    if missing:
        raise Invalid(f"metadata lacks {', '.join(missing)}")
    if not isinstance(header.get("library_version", ""), str):
        raise Invalid("library_version is not a string")
    _check_model(header["model"])
    _from_config("loss", header["loss"], LOSSES, loss_from_config)
    optimizer = header["optimizer"]
    if not isinstance(optimizer, dict) or set(optimizer) != {"config", "steps"}:
        raise Invalid("optimizer must be an object with exactly 'config' and 'steps'")
    check_value("optimizer steps", optimizer["steps"], int, low=0)
    _from_config("optimizer", optimizer["config"], OPTIMIZERS, optimizer_from_config)
    check_rng("rng", header["rng"])
    if "train_state" in check_value("meta", header["meta"], dict):
        _validate_train_state(header["meta"]["train_state"])


@functools.cache
def _model_keys() -> tuple[str, ...]:
    """The keys of :meth:`MLP.config`, from a tiny model."""
    return tuple(MLP([1, 1]).config())


def _check_model(config: Any) -> None:
    """The model config is exactly what :meth:`MLP.config` writes for a model that builds."""
    check_keys("model config", check_value("model config", config, dict), _model_keys())
    sizes = [check_value("model sizes", s, int, low=1)
             for s in check_value("model sizes", config["sizes"], list)]
    # A tiny model of the same kind checks the rest; the sizes are checked against the tensors.
    trial = _build("model", {**config, "sizes": [1, 1, 1]}, lambda c: MLP(**c))
    _same_json("model", config, {**trial.config(), "sizes": sizes})


def _from_config(what: str, config: Any, known: Collection[str], build: Callable) -> Any:
    """``build(config)`` for an untrusted ``config`` naming one of the ``known`` types, which
    must be exactly what the built object's ``config()`` gives back."""
    if not isinstance(config, dict) or not isinstance(config.get("type"), str):
        raise Invalid(f"{what} config is not an object with a 'type'")
    if config["type"] not in known:
        raise Invalid(f"unknown {what} type {short(config['type'])}: this library knows "
                      f"{', '.join(known)}")
    built = _build(what, config, build)
    _same_json(what, config, built.config())
    return built


def _build(what: str, config: dict[str, Any], build: Callable) -> Any:
    try:
        return build(config)
    except Exception as exc:  # untrusted keyword arguments: any rejection is a bad file
        raise Invalid(f"{what} config {short(config)} is not valid ({exc})") from None


def _same_json(what: str, given: dict[str, Any], canonical: dict[str, Any]) -> None:
    check_keys(f"{what} config", given, canonical)
    for key, want in canonical.items():
        if json.dumps(given[key], sort_keys=True) != json.dumps(want, sort_keys=True):
            raise Invalid(f"{what} {key} is {short(given[key])}, expected {short(want)}")


def _expected_tensors(header: dict[str, Any], names: Collection[str],
                      parameters_only: bool = False) -> dict[str, Any]:
    """Name -> shape of every tensor ``header`` implies, once ``names`` are exactly those
    (with ``parameters_only``: the parameters, and ``names`` holds no optimizer tensor)."""
    sizes, names = header["model"]["sizes"], set(names)
    if len(sizes) > len(names) + 1:  # each layer has a weight: bounds the work below
        raise Invalid(f"the architecture has {len(sizes) - 1} layers, the file only "
                      f"{len(names)} tensors")
    params = _build("model", header["model"], parameter_shapes)
    optimizer = optimizer_from_config(header["optimizer"]["config"])
    optimizer.steps = header["optimizer"]["steps"]
    size = sum(math.prod(shape) for shape in params.values())
    expected = {PARAM_PREFIX + k: s for k, s in params.items()}
    if not parameters_only:
        expected.update({OPTIM_PREFIX + k: s for k, s in optimizer.state_shapes(size).items()})
    stray = sorted(n for n in names if not n.startswith((PARAM_PREFIX, OPTIM_PREFIX)))
    if stray:
        raise Invalid(f"unexpected tensors {few(stray)}")
    for prefix, what in ((PARAM_PREFIX, f"parameters do not match the architecture {sizes}"),
                         (OPTIM_PREFIX, f"optimizer buffers do not match "
                                        f"{header['optimizer']['config']['type']}")):
        missing = [n for n in expected if n.startswith(prefix) and n not in names]
        extra = sorted(n for n in names if n.startswith(prefix) and n not in expected)
        if missing or extra:
            raise Invalid(f"{cap(what)}: missing {few(missing)}, unexpected {few(extra)}")
    return expected


def _check_tensors(header: dict[str, Any], expected: dict[str, Any],
                   found: dict[str, tuple[Sequence[int], str]]) -> None:
    """Shapes and safetensors dtype tags of ``found`` name -> (shape, tag) against the header."""
    dtype = header["model"]["dtype"]
    for name, shape in expected.items():
        got, tag = found[name]
        if tuple(got) != shape:
            raise Invalid(f"tensor {name} has shape {tuple(got)}, the architecture and "
                          f"optimizer need {shape}")
        if tag != _TAGS[dtype]:
            raise Invalid(f"tensor {name!r} is {tag}, the model dtype {dtype} needs "
                          f"{_TAGS[dtype]}")


def _check_arrays(header: dict[str, Any], arrays: dict[str, Any],
                  parameters_only: bool = False) -> None:
    expected = _expected_tensors(header, arrays, parameters_only)
    _check_tensors(header, expected, {n: (a.shape, _TAGS.get(a.dtype.name, a.dtype.name))
                                      for n, a in arrays.items()})


def restore(checkpoint_or_path: Checkpoint | str | os.PathLike[str], backend: Any = "numpy",
            device: Any = None, *, fast: bool = True, host_masks: bool = False,
            parameters_only: bool = False) -> MLP:
    """Rebuild the saved model on ``backend``/``device``: parameters, optimizer buffers and
    update count, and the model's random state (dropout masks) exactly, so training goes on as
    if uninterrupted, on any backend. ``fast`` and ``host_masks`` are as for
    :class:`~mlp.MLP` (``host_masks=True`` on both sides keeps the dropout masks of a run
    moved between a GPU and another backend the same); the step it runs is the caller's choice
    (:func:`mlp.steps.choose`).

    ``parameters_only=True`` (or a checkpoint loaded so) restores the parameters and random
    state but leaves the optimizer as built, with no updates taken: a model to predict and
    evaluate with, whose optimizer tensors are never read.

    Raises CheckpointError for an invalid checkpoint, backends.BackendError for a backend
    that cannot be used (not installed, no such device, no support for the dtype)."""
    ckpt = checkpoint_or_path
    if not isinstance(ckpt, Checkpoint):
        ckpt = load(ckpt, parameters_only=parameters_only)
        checked = True  # load checked every value it read
    else:
        checked = False
    parameters_only = parameters_only or ckpt.parameters_only
    optimizer_state = {} if parameters_only else ckpt.optimizer_state
    where = ckpt.path if ckpt.path is not None else "<in memory>"
    try:
        _validate_header(ckpt.header)
        tensors = _named(ckpt.params, optimizer_state)
        _check_arrays(ckpt.header, tensors, parameters_only)
        if not checked:
            for name, arr in tensors.items():
                _check_finite(name, arr)
    except Invalid as exc:
        raise CheckpointError(cap(f"invalid checkpoint {where}: {exc}")) from None
    kwargs: dict[str, Any] = {"seed": 0, **ckpt.config, "fast": fast,
                              "host_masks": host_masks}
    try:
        kwargs["loss"] = loss_from_config(ckpt.loss_config)
        kwargs["optimizer"] = optimizer_from_config(ckpt.optimizer_config)
        model = MLP(**kwargs, backend=backend, device=device)
    except (TypeError, ValueError) as exc:  # a backend problem is a BackendError, not these
        raise CheckpointError(f"checkpoint {where}: cannot rebuild the model ({exc})") from None
    model.load_state_dict(ckpt.params)
    if not parameters_only:
        # Fresh copies: the in-place kernels write into the buffers, and torch shares host
        # memory.
        with model.backend.activate():
            model.optimizer.load_state(ckpt.steps, {
                name: model.backend.asarray(host, model.dtype, copy=True)
                for name, host in optimizer_state.items()})
    model.rng.bit_generator.state = ckpt.rng_state  # checked: the backends' generator's
    return model


__all__ = [
    "FORMAT", "METADATA_KEY", "SUPPORTED_VERSIONS", "VERSION", "Checkpoint", "load", "restore",
    "save",
]
