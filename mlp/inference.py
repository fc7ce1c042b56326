"""A trained network's inference forward on another array library.

:class:`Inference` runs the network's own layers — copies of them, with the portable
operations of the input's namespace and the parameters converted once into it — so the code
that trains a model also predicts with it on any array-API library: lazily on dask arrays,
and symbolically on ndonnx arrays, whose operations record an ONNX graph
(:mod:`mlp.export`). Dropout is the identity at inference; nothing is trained here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from backends import lazy
from backends.ops import Buffers

from . import checks
from ._xp import Array, array_namespace, generic_ops
from .errors import MLPError
from .inputs import input_scale
from .layers import log_softmax
from .losses import Loss
from .metrics import hits


class NotPortable(MLPError):
    """A layer's forward pass uses something the target array library does not have."""


class Inference:
    """The inference forward of ``network`` (a :class:`~mlp.model.Network`) on namespace
    ``xp``: each layer copied with ``ops=None`` (the portable operations of its input's
    namespace) and its parameters from ``asarray(host NumPy array)``.

    Inputs ``x (N, sizes[0])`` are features in the network's dtype (named ``dtype`` here) or
    uint8 pixels, scaled by 1/255.
    """

    def __init__(self, network: Any, xp: Any, asarray: Callable[[Any], Array]) -> None:
        self.xp, self.output = xp, network.output
        self.dtype = getattr(xp, network.dtype_name)
        self.classes = network.sizes[-1]
        to_host = network.backend.to_host_copy
        self.layers = []
        for layer in network.layers:
            twin = copy.copy(layer)
            twin.ops, twin._buffers, twin.grads = None, Buffers(), {}
            twin.params = {name: asarray(to_host(p)) for name, p in layer.params.items()}
            self.layers.append(twin)
        self.loss: Loss = copy.copy(network.loss)
        self.loss.ops, self.loss._buffers = None, Buffers()

    def features(self, x: Array, scale: float | None = None) -> Array:
        """``x`` as features in the network's dtype: ``x * scale`` where given, else uint8
        pixels scaled by 1/255 and floats of the network's dtype as they are."""
        if scale is None and x.dtype == self.dtype:
            return x
        if scale is None:
            scale = input_scale(self.xp, x.dtype)
        return generic_ops(self.xp).to_float(x, scale, self.dtype)

    def outputs(self, x: Array, scale: float | None = None) -> Array:
        """The network's outputs ``(N, C)``: logits, or probabilities for a network ending in
        a softmax.

        Raises:
            NotPortable: a layer's forward failed on this namespace (the message names it).
        """
        x = self.features(x, scale)
        for i, layer in enumerate(self.layers):
            try:
                x = layer.forward(x, train=False)
            except Exception as exc:  # noqa: BLE001 - any failure of a user's layer
                raise NotPortable(
                    f"layer {i} ({type(layer).__name__}) cannot run on "
                    f"{_library(self.xp)}: {type(exc).__name__}: {exc}") from exc
        return x

    def proba(self, x: Array) -> Array:
        """Class probabilities ``(N, C)`` (rows sum to 1), as
        :meth:`~mlp.model.Network.predict_proba` computes them."""
        out = self.outputs(x)
        return out if self.output == "softmax" else self.xp.exp(log_softmax(out, self.xp))

    def labels(self, x: Array) -> Array:
        """Predicted class indices ``(N,)``."""
        return self.xp.argmax(self.outputs(x), axis=1)

    def sums(self, x: Array, y: Array, scale: float | None = None) -> tuple[Array, Array]:
        """The loss summed over the rows of ``(x, y)`` and the count of rows whose prediction
        is their integer label ``y (N,)``, both 0-d."""
        out = self.outputs(x, scale)
        loss = self.loss.forward(out, y) * self.loss.sum_factor(int(x.shape[0]))
        return loss, hits(self.xp, out, y)


def lazy_outputs(network: Any, x: Array, what: str) -> Array:
    """``network``'s predictions (``what``: ``"labels"`` or ``"proba"``) on the dask array ``x
    (N, sizes[0])``, as a dask array chunked as ``x``'s rows: nothing is computed."""
    checks.check_rows(x, network.sizes[0])
    xp = array_namespace(x)
    inference = Inference(network, xp, xp.asarray)
    return getattr(inference, what)(lazy.whole_rows(x))


def lazy_evaluate(network: Any, x: Array, y: Array, scale: float | None) -> dict[str, float]:
    """:meth:`~mlp.model.Network.evaluate` on dask arrays ``x (N, sizes[0])`` and integer labels
    ``y (N,)``: the loss, the hits and the label check computed in one pass."""
    checks.check_rows(x, network.sizes[0])
    xp = array_namespace(x)
    n = int(x.shape[0])
    checks.check_labels(y, n, xp)
    inference = Inference(network, xp, xp.asarray)
    loss, correct = inference.sums(lazy.whole_rows(x), y, scale)
    classes = network.sizes[-1]
    outside = checks.labels_outside(xp, y, classes)
    loss, correct, bad, low, high = lazy.compute(loss, correct, outside, xp.min(y), xp.max(y))
    checks.refuse_labels_outside(int(bad), n, int(low), int(high), classes)
    return {"loss": float(loss) / n, "accuracy": int(correct) / n}


def _library(xp: Any) -> str:
    """The array library behind namespace ``xp``, by its module's name."""
    return xp.__name__.removeprefix("array_api_compat.").split(".")[0]


__all__ = ["Inference", "NotPortable", "lazy_evaluate", "lazy_outputs"]
