"""Checkpoints: a model's parameters, optimizer state and random state in one safetensors file.

A checkpoint is a plain `safetensors <https://huggingface.co/docs/safetensors>`_ file, so it
holds only arrays and text: loading one never runs code (no pickle anywhere). Its tensors are

* ``param/<name>`` — every parameter, e.g. ``param/0.W`` ``(n_in, n_out)``, ``param/0.b``;
* ``optim/<name>`` — the optimizer's buffers, e.g. ``optim/m`` and ``optim/v`` (Adam, AdamW)
  or ``optim/velocity`` (SGD with momentum, once it has taken a step), each ``(n_params,)``;

all host NumPy arrays in the model's dtype. The safetensors metadata holds one key,
:data:`METADATA_KEY`, whose value is a JSON object (the *header*)::

    {
      "format": "array-api-mlp/checkpoint",
      "version": 1,
      "library_version": "0.1.0",
      "model": {"sizes": [...], "activation": "relu", "dropout": 0.0, "init": "he",
                "bias": true, "output_bias": true, "output": "logits", "dtype": "float32"},
      "loss": {"type": "SoftmaxCrossEntropy", ...},
      "optimizer": {"config": {"type": "Adam", "lr": 0.001, ...}, "steps": 1200},
      "rng": {"bit_generator": "PCG64", "state": {...}, ...},
      "meta": {...}
    }

``model`` is :meth:`MLP.config() <mlp.model.MLP.config>`, ``loss`` and ``optimizer.config``
the loss's and optimizer's ``config()``, ``rng`` the model generator's
``bit_generator.state`` (dropout masks come from it) and ``meta`` whatever the caller passed to
:func:`save` (the training loop keeps its epoch, batch position, data-shuffling state and
arguments there).

:func:`save` writes atomically (temporary file in the same folder, ``fsync``, ``os.replace``),
:func:`load` validates the whole file — layout, header, tensor names, shapes and dtypes against
the architecture — before any model exists, and :func:`restore` rebuilds the model on any
backend. Every problem is a :class:`~mlp.errors.CheckpointError` that names the file.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from backends import DTYPES

from .errors import CheckpointError
from .layers import ACTIVATIONS
from .layers.linear import INITS
from .losses import LOSSES, loss_from_config
from .model import MLP, OUTPUTS
from .optimizers import OPTIMIZERS, SGD, Adam, optimizer_from_config

FORMAT = "array-api-mlp/checkpoint"
"""The ``format`` tag of every checkpoint header."""
VERSION = 1
"""The header version :func:`save` writes."""
SUPPORTED_VERSIONS = (1,)
"""Header versions :func:`load` reads."""
METADATA_KEY = "array_api_mlp"
"""The safetensors metadata key that holds the JSON header."""
PARAM_PREFIX = "param/"
OPTIM_PREFIX = "optim/"
SUFFIX = ".safetensors"
"""The conventional file suffix (:func:`save` uses the path as given)."""

MAX_HEADER_BYTES = 100_000_000
"""Largest safetensors header accepted (the safetensors library's own limit)."""

# safetensors dtype tags -> bytes per element (used to check the layout before loading).
_ST_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "C64": 8,
    "I64": 8, "U64": 8, "F64": 8,
}
_ST_DTYPE = {"float32": "F32", "float64": "F64"}
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_HEADER_KEYS = ("format", "version", "model", "loss", "optimizer", "rng", "meta")
# MLP.__init__ arguments that a header's model config must not carry (restore passes them).
_NOT_ARCHITECTURE = ("self", "loss", "optimizer", "backend", "device")


class _Invalid(ValueError):
    """A reason a header or tensor set is not a valid checkpoint (wrapped with the path)."""


# --- the loaded form ------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """A validated checkpoint in host memory.

    Attributes:
        path: the file it came from (``None`` when built in memory).
        params: parameter name (``"0.W"``) -> host array in the model dtype.
        optimizer_state: buffer name (``"m"``, ``"v"``, ``"velocity"``) -> host array.
        header: the parsed JSON header (see the module docstring).
    """

    path: Path | None
    params: dict[str, np.ndarray]
    optimizer_state: dict[str, np.ndarray]
    header: dict[str, Any] = field(repr=False)

    @property
    def version(self) -> int:
        """The header format version."""
        return int(self.header["version"])

    @property
    def config(self) -> dict[str, Any]:
        """The architecture: ``MLP(**checkpoint.config)`` builds the same network."""
        return dict(self.header["model"])

    @property
    def loss_config(self) -> dict[str, Any]:
        """The loss's ``config()`` (see :func:`mlp.losses.loss_from_config`)."""
        return dict(self.header["loss"])

    @property
    def optimizer_config(self) -> dict[str, Any]:
        """The optimizer's ``config()`` (see :func:`mlp.optimizers.optimizer_from_config`)."""
        return dict(self.header["optimizer"]["config"])

    @property
    def steps(self) -> int:
        """Optimizer updates taken before the checkpoint."""
        return int(self.header["optimizer"]["steps"])

    @property
    def rng_state(self) -> dict[str, Any]:
        """The model generator's ``bit_generator.state``."""
        return self.header["rng"]

    @property
    def meta(self) -> dict[str, Any]:
        """The caller's ``meta`` dict given to :func:`save`."""
        return self.header["meta"]

    @property
    def epoch(self) -> Any:
        """``meta["epoch"]``, or ``None`` when the caller stored none."""
        return self.meta.get("epoch")


# --- save -----------------------------------------------------------------------------------


def save(
    path: str | os.PathLike[str],
    model: MLP,
    meta: dict[str, Any] | None = None,
    *,
    overwrite: bool = True,
) -> Path:
    """Write ``model`` (parameters, loss, optimizer and its state, RNG state) to ``path``.

    The file appears atomically: the bytes go to a temporary file in the same folder, which
    is flushed to disk and then renamed over ``path``, so a crash or a full disk leaves either
    the previous checkpoint or the new one, never half a file (the temporary file is removed
    on failure). Missing parent folders are created.

    Args:
        path: the checkpoint file (``.safetensors`` by convention; used as given).
        model: the model to save.
        meta: JSON-able caller data (epoch, batch position, data RNG state, arguments...);
            NumPy scalars and arrays in it are converted to numbers and lists.
        overwrite: ``False`` refuses to replace an existing file.

    Returns:
        The path written.

    Raises:
        CheckpointError: ``meta`` is not JSON-able, the model cannot be described (e.g. a
            custom loss class), the file exists and ``overwrite`` is false, or the file
            cannot be written (the message says why).
    """
    target = Path(path)
    try:
        header = _header_for(model, meta)
        params, optim = _host_tensors(model, header["model"]["dtype"])
        _check_tensors(header, params, optim)
    except _Invalid as exc:
        raise CheckpointError(f"cannot save checkpoint {target}: {exc}") from None
    tensors = {PARAM_PREFIX + k: v for k, v in params.items()}
    tensors.update({OPTIM_PREFIX + k: v for k, v in optim.items()})
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":"))
    try:
        blob = safetensors.numpy.save(tensors, metadata={METADATA_KEY: text})
    except Exception as exc:  # the Rust serializer's own error types
        raise CheckpointError(f"cannot save checkpoint {target}: {exc}") from exc
    _atomic_write(target, blob, overwrite)
    return target


def _header_for(model: MLP, meta: dict[str, Any] | None) -> dict[str, Any]:
    from . import __version__

    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise _Invalid(f"meta must be a dict, got {type(meta).__name__}")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "library_version": __version__,
        "model": model.config(),
        "loss": model.loss.config(),
        "optimizer": {"config": model.optimizer.config(), "steps": int(model.optimizer.steps)},
        "rng": model.rng.bit_generator.state,
        "meta": meta,
    }
    try:
        # Round trip through JSON so what is validated is exactly what a load will see.
        header = json.loads(json.dumps(header, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise _Invalid(f"header is not JSON-able: {exc}") from None
    _validate_header(header)
    return header


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} object is not JSON serializable")


def _host_tensors(model: MLP, dtype: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    np_dtype = np.dtype(dtype)
    params = {name: np.ascontiguousarray(np.asarray(arr, dtype=np_dtype))
              for name, arr in model.state_dict().items()}
    optim = {}
    for name, arr in model.optimizer.state().items():
        host = np.asarray(model.backend.to_numpy(arr))
        optim[name] = np.array(host, dtype=np_dtype, order="C", copy=True)
    return params, optim


def _atomic_write(target: Path, data: bytes, overwrite: bool) -> None:
    def fail(reason: str) -> CheckpointError:
        return CheckpointError(f"cannot write checkpoint {target}: {reason}")

    if target.is_dir():
        raise fail("it is a directory")
    if not overwrite and os.path.lexists(target):
        raise fail("the file exists (pass overwrite=True to replace it)")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"cannot create folder {folder} ({exc.strerror or exc})") from exc
    tmp: str | None = None
    try:
        fd, tmp = _create_temp(folder, target.name)
        try:
            _write_bytes(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, target)
            tmp = None
        else:
            _link_new(tmp, target)
        _fsync_folder(folder)
    except FileExistsError:
        raise fail("the file exists (pass overwrite=True to replace it)") from None
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _create_temp(folder: Path, name: str) -> tuple[int, str]:
    """A new, exclusively created file next to the target (mode from the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{name[:200]}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")


def _write_bytes(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _link_new(tmp: str, target: Path) -> None:
    """Put ``tmp`` at ``target`` only if nothing is there (atomically where links work)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:
        # A file system without hard links: check, then rename (not race-free).
        if os.path.lexists(target):
            raise FileExistsError(target) from None
        os.replace(tmp, target)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- load -----------------------------------------------------------------------------------


def load(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and validate the checkpoint at ``path``; no model is built or touched.

    Checked, in order: the file exists and is readable; it is a safetensors file (header
    length within the file, header JSON, tensor layout covering the data exactly); it holds an
    array-api-mlp header of a supported version whose fields have the right types and known
    values (activation, output, dtype, loss, optimizer, RNG); and the tensors are exactly the
    parameters and optimizer buffers that architecture and optimizer imply, with their shapes
    and the model dtype. Only then are the tensor bytes read.

    Raises:
        CheckpointError: naming the file and what is wrong.
    """
    source = Path(path)

    def fail(reason: str) -> CheckpointError:
        return CheckpointError(f"invalid checkpoint {source}: {reason}")

    try:
        with open(source, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise fail(f"{size} bytes is too short for a safetensors file"
                           if size else "the file is empty")
            prefix = f.read(8)
            n = int.from_bytes(prefix, "little")
            if n < 2 or n > MAX_HEADER_BYTES or n > size - 8:
                raise fail(f"not a safetensors file (header length {n} does not fit in "
                           f"{size} bytes)")
            raw_header = f.read(n)
            if len(raw_header) != n:
                raise fail("the file was truncated while reading")
            header_json = _parse_json(raw_header, "safetensors header", fail)
            entries = _check_layout(header_json, size - 8 - n, fail)
            header = _our_header(header_json, fail)
            _check_entries(header, entries, fail)
            rest = f.read()
    except CheckpointError:
        raise
    except IsADirectoryError:
        raise fail("it is a directory") from None
    except FileNotFoundError:
        raise fail("no such file") from None
    except OSError as exc:
        raise fail(f"cannot read it ({exc.strerror or exc})") from None
    if len(rest) != size - 8 - n:
        raise fail("the file changed size while reading")
    arrays = _deserialize(prefix + raw_header + rest, fail)
    params: dict[str, np.ndarray] = {}
    optim: dict[str, np.ndarray] = {}
    for name, arr in arrays.items():
        out = params if name.startswith(PARAM_PREFIX) else optim
        out[name.split("/", 1)[1]] = np.array(arr, order="C", copy=True)
    try:
        _check_tensors(header, params, optim)
    except _Invalid as exc:
        raise fail(str(exc)) from None
    return Checkpoint(source, params, optim, header)


def _parse_json(raw: bytes | str, what: str, fail: Any) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError too
        raise fail(f"{what} is not valid JSON ({exc})") from None


def _check_layout(header: Any, data_len: int, fail: Any) -> dict[str, dict[str, Any]]:
    """Check the safetensors tensor table the way the format demands; name -> entry."""
    if not isinstance(header, dict):
        raise fail("not a safetensors file (header is not a JSON object)")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(v, str) for v in metadata.values()
    ):
        raise fail("not a safetensors file (__metadata__ is not a map of strings)")
    entries = {}
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise fail(f"safetensors entry {name!r} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in _ST_ITEMSIZE:
            raise fail(f"tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise fail(f"tensor {name!r} has an invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(_is_int(o) for o in offsets) or not 0 <= offsets[0] <= offsets[1]):
            raise fail(f"tensor {name!r} has invalid data offsets {offsets!r}")
        if offsets[1] - offsets[0] != math.prod(shape) * _ST_ITEMSIZE[dtype]:
            raise fail(f"tensor {name!r}: {offsets[1] - offsets[0]} bytes do not hold a "
                       f"{dtype} array of shape {tuple(shape)}")
        entries[name] = entry
        spans.append((offsets[0], offsets[1]))
    end = 0
    for begin, stop in sorted(spans):
        if begin != end:
            raise fail("tensor data offsets overlap or leave gaps")
        end = stop
    if end != data_len:
        raise fail(f"tensors cover {end} bytes but the file holds {data_len} data bytes "
                   "(truncated or padded)")
    return entries


def _our_header(header_json: dict[str, Any], fail: Any) -> dict[str, Any]:
    metadata = header_json.get("__metadata__", {})
    if METADATA_KEY not in metadata:
        raise fail(f"a safetensors file, but not an array-api-mlp checkpoint (no "
                   f"{METADATA_KEY!r} metadata)")
    header = _parse_json(metadata[METADATA_KEY], "checkpoint metadata", fail)
    try:
        _validate_header(header)
    except _Invalid as exc:
        raise fail(str(exc)) from None
    return header


def _check_entries(header: dict[str, Any], entries: dict[str, dict[str, Any]], fail: Any) -> None:
    """Names, shapes and dtypes of the file's tensors against the header, before reading."""
    shapes = {name: tuple(e["shape"]) for name, e in entries.items()}
    try:
        _check_names_shapes(header, shapes)
    except _Invalid as exc:
        raise fail(str(exc)) from None
    want = _ST_DTYPE[header["model"]["dtype"]]
    for name, entry in entries.items():
        if entry["dtype"] != want:
            raise fail(f"tensor {name!r} is {entry['dtype']}, the model dtype "
                       f"{header['model']['dtype']} needs {want}")


def _deserialize(blob: bytes, fail: Any) -> dict[str, np.ndarray]:
    try:
        return safetensors.numpy.load(blob)
    except Exception as exc:  # SafetensorError and whatever else the parser raises
        raise fail(f"safetensors cannot read it ({exc})") from None
    except BaseException as exc:  # a Rust panic surfaces as BaseException
        if type(exc).__name__ == "PanicException":
            raise fail(f"safetensors cannot read it ({exc})") from None
        raise


# --- validation shared by save and load -------------------------------------------------------


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _validate_header(header: Any) -> None:
    """Raise :class:`_Invalid` unless ``header`` is a well-formed checkpoint header."""
    if not isinstance(header, dict):
        raise _Invalid("checkpoint metadata is not a JSON object")
    if header.get("format") != FORMAT:
        raise _Invalid(f"format tag is {header.get('format')!r}, expected {FORMAT!r}")
    version = header.get("version")
    if not _is_int(version) or version not in SUPPORTED_VERSIONS:
        raise _Invalid(f"format version {version!r} is not supported (this library reads "
                       f"{', '.join(map(str, SUPPORTED_VERSIONS))})")
    missing = [k for k in _HEADER_KEYS if k not in header]
    if missing:
        raise _Invalid(f"metadata lacks {', '.join(missing)}")
    if "library_version" in header and not isinstance(header["library_version"], str):
        raise _Invalid("library_version is not a string")
    _validate_model(header["model"])
    _validate_loss(header["loss"])
    optimizer = header["optimizer"]
    if not isinstance(optimizer, dict) or set(optimizer) != {"config", "steps"}:
        raise _Invalid("optimizer must be an object with exactly 'config' and 'steps'")
    if not _is_int(optimizer["steps"]) or optimizer["steps"] < 0:
        raise _Invalid(f"optimizer steps {optimizer['steps']!r} is not a count")
    _trial_optimizer(optimizer["config"])
    _validate_rng(header["rng"])
    if not isinstance(header["meta"], dict):
        raise _Invalid("meta is not a JSON object")


def _validate_model(config: Any) -> None:
    if not isinstance(config, dict):
        raise _Invalid("model config is not a JSON object")
    checks: dict[str, tuple[Any, str]] = {
        "sizes": (lambda v: isinstance(v, list) and len(v) >= 2
                  and all(_is_int(s) and s >= 1 for s in v), "a list of >= 2 positive ints"),
        "activation": (lambda v: isinstance(v, str) and v in ACTIVATIONS,
                       f"one of {', '.join(ACTIVATIONS)}"),
        "dropout": (lambda v: _is_number(v) and 0.0 <= v < 1.0, "a number in [0, 1)"),
        "init": (lambda v: isinstance(v, str) and v in INITS, f"one of {', '.join(INITS)}"),
        "bias": (lambda v: isinstance(v, bool), "true or false"),
        "output_bias": (lambda v: isinstance(v, bool), "true or false"),
        "output": (lambda v: isinstance(v, str) and v in OUTPUTS, f"one of {', '.join(OUTPUTS)}"),
        "dtype": (lambda v: isinstance(v, str) and v in DTYPES, f"one of {', '.join(DTYPES)}"),
    }
    for key, (ok, what) in checks.items():
        if key not in config:
            raise _Invalid(f"model config lacks {key!r}")
        if not ok(config[key]):
            raise _Invalid(f"model {key} is {config[key]!r}, expected {what}")
    extra = [k for k in config if k not in checks and k not in _architecture_arguments()]
    if extra:
        raise _Invalid(f"model config has unknown keys {extra}")


def _architecture_arguments() -> tuple[str, ...]:
    names = inspect.signature(MLP.__init__).parameters
    return tuple(n for n in names if n not in _NOT_ARCHITECTURE)


def _from_config(what: str, config: Any, known: dict[str, Any], build: Any) -> Any:
    """``build(config)`` for an untrusted ``config`` naming one of the ``known`` types."""
    if not isinstance(config, dict) or not isinstance(config.get("type"), str):
        raise _Invalid(f"{what} config is not an object with a 'type'")
    if config["type"] not in known:
        raise _Invalid(f"unknown {what} type {config['type']!r}: this library knows "
                       f"{', '.join(known)}")
    try:
        return build(config)
    except Exception as exc:  # untrusted keyword arguments: any rejection is a bad file
        raise _Invalid(f"{what} config {config!r} is not valid ({exc})") from None


def _validate_loss(config: Any) -> None:
    _from_config("loss", config, LOSSES, loss_from_config)


def _trial_optimizer(config: Any) -> Any:
    return _from_config("optimizer", config, OPTIMIZERS, optimizer_from_config)


def _validate_rng(state: Any) -> None:
    if not isinstance(state, dict) or state.get("bit_generator") not in _BIT_GENERATORS:
        raise _Invalid(f"rng is not a NumPy bit generator state (one of "
                       f"{', '.join(_BIT_GENERATORS)})")
    try:
        getattr(np.random, state["bit_generator"])().state = state
    except Exception as exc:  # NumPy's own checks of the state's fields and ranges
        raise _Invalid(f"rng state is not valid ({exc})") from None


def parameter_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape that :class:`~mlp.model.MLP` ``(**config)`` has, in buffer order,
    computed without building the model.

    The network is a :class:`~mlp.layers.Sequential` of ``Linear, activation [, Dropout]`` per
    hidden layer, then the output ``Linear`` (and ``Softmax``, which has no parameters); a
    ``Linear`` at index ``i`` owns ``"i.W"`` ``(n_in, n_out)`` and, with a bias, ``"i.b"``.
    """
    sizes = config["sizes"]
    output_bias = config.get("output_bias")
    if output_bias is None:
        output_bias = config.get("bias", True)
    shapes: dict[str, tuple[int, ...]] = {}
    index = 0
    for i in range(len(sizes) - 1):
        n_in, n_out = sizes[i], sizes[i + 1]
        last = i == len(sizes) - 2
        shapes[f"{index}.W"] = (n_in, n_out)
        if output_bias if last else config.get("bias", True):
            shapes[f"{index}.b"] = (n_out,)
        index += 1
        if not last:
            index += 2 if config.get("dropout") else 1
    return shapes


def _buffer_shapes(
    header: dict[str, Any], n_params: int
) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]] | None:
    """Required and optional optimizer buffers (``None``: an optimizer this module does not
    know the buffers of; any ``(n_params,)`` buffer is accepted)."""
    optimizer = _trial_optimizer(header["optimizer"]["config"])
    flat = (n_params,)
    if isinstance(optimizer, Adam):
        return {"m": flat, "v": flat}, {}
    if type(optimizer) is SGD:
        return {}, ({"velocity": flat} if optimizer.momentum else {})
    return None


def _check_names_shapes(header: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> None:
    """Tensor names (with prefixes) and shapes against what the header implies."""
    expected = parameter_shapes(header["model"])
    n_params = sum(math.prod(s) for s in expected.values())
    params = {k[len(PARAM_PREFIX):]: s for k, s in shapes.items() if k.startswith(PARAM_PREFIX)}
    optim = {k[len(OPTIM_PREFIX):]: s for k, s in shapes.items() if k.startswith(OPTIM_PREFIX)}
    stray = sorted(k for k in shapes if not k.startswith((PARAM_PREFIX, OPTIM_PREFIX)))
    if stray:
        raise _Invalid(f"unexpected tensors {stray}")
    missing = [PARAM_PREFIX + k for k in expected if k not in params]
    extra = sorted(PARAM_PREFIX + k for k in params if k not in expected)
    if missing or extra:
        raise _Invalid(f"parameters do not match the architecture {header['model']['sizes']}: "
                       f"missing {missing}, unexpected {extra}")
    for name, shape in expected.items():
        if params[name] != shape:
            raise _Invalid(f"tensor {PARAM_PREFIX}{name} has shape {params[name]}, the "
                           f"architecture needs {shape}")
    buffers = _buffer_shapes(header, n_params)
    kind = header["optimizer"]["config"]["type"]
    if buffers is None:
        required: dict[str, tuple[int, ...]] = {}
        allowed = {k: (n_params,) for k in optim}
    else:
        required, optional = buffers
        allowed = {**required, **optional}
    missing = [OPTIM_PREFIX + k for k in required if k not in optim]
    extra = sorted(OPTIM_PREFIX + k for k in optim if k not in allowed)
    if missing or extra:
        raise _Invalid(f"optimizer buffers do not match {kind}: missing {missing}, "
                       f"unexpected {extra}")
    for name, shape in optim.items():
        if shape != allowed[name]:
            raise _Invalid(f"tensor {OPTIM_PREFIX}{name} has shape {shape}, {kind} with "
                           f"{n_params} parameters needs {allowed[name]}")


def _check_tensors(
    header: dict[str, Any], params: dict[str, np.ndarray], optim: dict[str, np.ndarray]
) -> None:
    """Names, shapes and dtypes of host arrays against the header."""
    shapes = {PARAM_PREFIX + k: tuple(v.shape) for k, v in params.items()}
    shapes.update({OPTIM_PREFIX + k: tuple(v.shape) for k, v in optim.items()})
    _check_names_shapes(header, shapes)
    dtype = np.dtype(header["model"]["dtype"])
    for prefix, arrays in ((PARAM_PREFIX, params), (OPTIM_PREFIX, optim)):
        for name, arr in arrays.items():
            if arr.dtype != dtype:
                raise _Invalid(f"tensor {prefix}{name} is {arr.dtype}, the model is {dtype}")


# --- restore --------------------------------------------------------------------------------


def restore(
    checkpoint_or_path: Checkpoint | str | os.PathLike[str],
    backend: Any = "numpy",
    device: Any = None,
    *,
    fast: bool = True,
) -> MLP:
    """Rebuild the saved model on ``backend``/``device``, ready to continue training.

    The architecture, loss and optimizer come from the header; parameters, optimizer buffers,
    the update count and the model's random state (dropout masks) are restored exactly, so
    training on goes on as if uninterrupted. Any backend can restore any checkpoint
    (NumPy, PyTorch, array-api-strict, CuPy).

    Args:
        checkpoint_or_path: a :class:`Checkpoint` from :func:`load`, or a path to load.
        backend, device: where the model's arrays live (see :func:`backends.get`).
        fast: passed to :class:`~mlp.model.MLP` (in-place kernels where the backend has them).

    Raises:
        CheckpointError: the checkpoint is invalid.
        backends.BackendError: the backend cannot be used (not installed, no such device,
            no support for the checkpoint's dtype).
    """
    ckpt = checkpoint_or_path
    if not isinstance(ckpt, Checkpoint):
        ckpt = load(ckpt)
    where = ckpt.path if ckpt.path is not None else "<in memory>"
    try:
        _validate_header(ckpt.header)
        _check_tensors(ckpt.header, ckpt.params, ckpt.optimizer_state)
    except _Invalid as exc:
        raise CheckpointError(f"invalid checkpoint {where}: {exc}") from None
    kwargs: dict[str, Any] = {"seed": 0, **ckpt.config, "fast": fast}
    try:
        kwargs["loss"] = loss_from_config(ckpt.loss_config)
        kwargs["optimizer"] = optimizer_from_config(ckpt.optimizer_config)
        model = MLP(**kwargs, backend=backend, device=device)
    except (TypeError, ValueError) as exc:  # a backend problem is a BackendError, not these
        raise CheckpointError(f"checkpoint {where}: cannot rebuild the model ({exc})") from None
    model.load_state_dict(ckpt.params)
    buffers = {}
    for name, host in ckpt.optimizer_state.items():
        arr = model.backend.asarray(np.array(host, order="C", copy=True), model.dtype)
        if isinstance(arr, np.ndarray) and not (arr.flags.writeable and arr.flags.c_contiguous):
            arr = np.array(arr, order="C", copy=True)  # the in-place kernels write into it
        buffers[name] = arr
    model.optimizer.load_state(ckpt.steps, buffers)
    try:
        model.rng.bit_generator.state = ckpt.rng_state
    except Exception as exc:  # a different bit generator than the backend's
        raise CheckpointError(f"checkpoint {where}: its rng state does not fit this model's "
                              f"generator ({exc})") from None
    return model


__all__ = [
    "FORMAT", "METADATA_KEY", "SUFFIX", "SUPPORTED_VERSIONS", "VERSION", "Checkpoint", "load",
    "parameter_shapes", "restore", "save",
]
