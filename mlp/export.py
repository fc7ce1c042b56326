"""ONNX export: the network's own inference forward, run on ndonnx arrays.

ndonnx arrays record the array-API operations applied to them as an ONNX graph, so running
:class:`~mlp.inference.Inference` on a symbolic ndonnx input *is* the export: no graph is
written by hand. The model takes ``x (N, sizes[0])`` — ``N`` is dynamic — and returns
``proba`` (class probabilities) or ``logits`` ``(N, C)``, in the network's dtype.
Its metadata says which input it takes and carries the project's version and the
network's architecture (:meth:`~mlp.model.Network.config`, as JSON).
"""

from __future__ import annotations

import json
import os
from typing import Any

from . import __version__
from .errors import MLPError
from .files import atomic_write
from .inference import Inference, NotPortable

OUTPUTS = ("proba", "logits")


class ExportError(MLPError):
    """The network cannot be exported as asked (missing library, a layer ndonnx cannot run,
    logits of a network that ends in a softmax)."""


def onnx_model(network: Any, output: str = "proba", pixels: bool = False) -> Any:
    """The ``onnx.ModelProto`` of ``network``'s inference forward, checked by
    ``onnx.checker``.

    Args:
        network: a trained :class:`~mlp.MLP` (any backend: its parameters are read to the host).
        output: ``"proba"`` (softmax probabilities, rows sum to 1) or ``"logits"`` (the last
            layer's outputs; not for a network that ends in a softmax).
        pixels: the input is uint8 pixels 0..255, scaled by 1/255 inside the graph; otherwise
            it is features in the network's dtype (pixels already in ``[0, 1]``).

    Raises:
        ExportError: ndonnx or onnx is missing, a layer cannot run on ndonnx (named), or
            ``output="logits"`` for a network that ends in a softmax.
        ValueError: an unknown ``output``.
    """
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}: choose one of {', '.join(OUTPUTS)}")
    if output == "logits" and network.output == "softmax":
        raise ExportError("this network ends in a softmax, so it has no logits to export; "
                          "export its probabilities (output='proba')")
    try:
        import ndonnx as ndx
        import onnx
    except ImportError as exc:
        raise ExportError(f"ONNX export needs ndonnx and onnx ({exc.name} is missing): "
                          'pip install ".[onnx]"') from None
    inference = Inference(network, ndx, ndx.asarray)
    dtype = ndx.uint8 if pixels else inference.dtype
    x = ndx.argument(shape=("N", network.sizes[0]), dtype=dtype)
    try:
        y = inference.proba(x) if output == "proba" else inference.outputs(x)
    except NotPortable as exc:
        raise ExportError(f"cannot export this network: {exc}") from exc
    model = ndx.build({"x": x}, {output: y})
    model.producer_name, model.producer_version = "array-api-mlp", __version__
    described = {
        "input": (f"x (N, {network.sizes[0]}) uint8 pixels 0..255, scaled by 1/255 in the graph"
                  if pixels else
                  f"x (N, {network.sizes[0]}) {network.dtype_name} features (pixels in [0, 1])"),
        "output": f"{output} (N, {network.sizes[-1]}) {network.dtype_name}"
                  + (" class probabilities" if output == "proba" else " logits"),
        "architecture": json.dumps(network.config()),
        "array-api-mlp": __version__,
    }
    onnx.helper.set_model_props(model, described)
    onnx.checker.check_model(model, full_check=True)
    return model


def to_onnx(network: Any, path: str | os.PathLike[str], output: str = "proba",
            pixels: bool = False, overwrite: bool = False) -> Any:
    """Write ``network``'s inference forward as an ONNX file at ``path`` (see
    :func:`onnx_model` for ``output`` and ``pixels``) and return the ``ModelProto``.

    The file appears whole or not at all.

    Raises:
        ExportError: see :func:`onnx_model`.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        OSError: something other than a regular file is at ``path`` (never replaced:
            ``mlp.files.NotRegularFile``), or the file cannot be written.
    """
    model = onnx_model(network, output, pixels)
    atomic_write(path, model.SerializeToString(), overwrite=overwrite)
    return model


__all__ = ["OUTPUTS", "ExportError", "onnx_model", "to_onnx"]
