"""All of a model's parameters as named views into one flat buffer (and gradients likewise).

The optimizer updates the whole model with a few vector operations on ``flat`` / ``grad``;
checkpoints read and write the same names. On backends that update in place the layers'
``params``/``grads`` entries are views of the buffers: a layer computes its gradient straight
into the view (``out=``), or assigns another array, which :meth:`ParameterStore.flat_grad`
copies into the view. On the portable path the optimizer returns a new flat vector and
:meth:`ParameterStore.set_flat` re-slices the views, while the gradient vector is gathered from
the layers' gradient arrays.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from ._xp import Array


class Layer(Protocol):
    """What the store needs of a layer (:class:`mlp.layers.Layer` has it): the shapes of its
    parameters, and its ``params`` and ``grads`` (name -> array), which the store points into
    its buffers."""

    params: dict[str, Array]
    grads: dict[str, Array]

    def param_shapes(self) -> dict[str, tuple[int, ...]]: ...


class ParameterStore:
    """Parameters of ``layers`` (in order) in one 1-D buffer of a single floating dtype.

    Attributes:
        names: ``"<layer index>.<name>"`` in buffer order.
        flat: the ``(size,)`` parameter vector.
        size: number of scalars.
    """

    def __init__(self, layers: list[Layer], backend: Any, dtype: Any) -> None:
        self.layers = layers
        self.backend = backend
        self.xp = backend.xp
        self.inplace = backend.ops.inplace
        self.dtype = backend.dtype(dtype)
        self._slots: list[tuple[str, Layer, str, int, int, tuple[int, ...]]] = []
        offset = 0
        for i, layer in enumerate(layers):
            for key, shape in layer.param_shapes().items():
                n = math.prod(shape)
                self._slots.append((f"{i}.{key}", layer, key, offset, offset + n, shape))
                offset += n
        self.size = offset
        self.names = [slot[0] for slot in self._slots]
        self.shapes = {slot[0]: slot[5] for slot in self._slots}
        self.flat: Array = self.xp.zeros((self.size,), dtype=self.dtype, device=backend.device)
        self.grad: Array | None = None
        self._grad_views: dict[str, Array] = {}
        if self.inplace:
            self.grad = self.xp.zeros((self.size,), dtype=self.dtype, device=backend.device)
            self._grad_views = self._views(self.grad)
        self.set_flat(self.flat)

    def _views(self, flat: Array) -> dict[str, Array]:
        return {name: self.xp.reshape(flat[a:b], shape) for name, _, _, a, b, shape in self._slots}

    def set_flat(self, flat: Array, views: dict[str, Array] | None = None) -> None:
        """Make ``flat`` the parameter vector and point every layer's parameters into it
        (``views``: name -> those arrays, already cut from ``flat``, as a compiled step
        returns them)."""
        self.flat = flat
        views = self._views(flat) if views is None else views
        for name, layer, key, *_ in self._slots:
            layer.params[key] = views[name]
            if name in self._grad_views:
                layer.grads[key] = self._grad_views[name]

    def flat_grad(self) -> Array:
        """The ``(size,)`` gradient vector of the last backward pass.

        Raises:
            RuntimeError: a parameter has no gradient, or one of the wrong shape.
        """
        xp = self.xp
        parts = []
        for name, layer, key, _, _, shape in self._slots:
            g = layer.grads.get(key)
            if g is None:
                raise RuntimeError(f"no gradient for {name}: call backward before the update")
            if tuple(g.shape) != shape:
                raise RuntimeError(f"gradient of {name} has shape {tuple(g.shape)}, "
                                   f"expected {shape}")
            if self.grad is None:
                parts.append(xp.reshape(g, (-1,)))
            elif g is not self._grad_views[name]:
                self._grad_views[name][...] = g  # a layer assigned another array: take it in
                layer.grads[key] = self._grad_views[name]
        return self.grad if self.grad is not None else self.backend.ops.concat_flat(parts)

    def set_grad(self, flat: Array) -> None:
        """Make ``flat`` (``(size,)``) the gradient the next update reads: copied into the
        gradient vector where there is one, else cut into every layer's ``grads``."""
        if self.grad is not None:
            self.grad[...] = flat
            return
        for _, layer, key, a, b, shape in self._slots:
            layer.grads[key] = self.xp.reshape(flat[a:b], shape)

    def layer_ranges(self) -> dict[int, tuple[int, int]]:
        """Layer index -> the ``[a, b)`` its parameters span in the flat vectors (a layer's
        parameters are contiguous)."""
        ranges: dict[int, tuple[int, int]] = {}
        for name, _, _, a, b, _ in self._slots:
            i = int(name.split(".", 1)[0])
            ranges[i] = (ranges.get(i, (a, b))[0], b)
        return ranges

    def named(self) -> dict[str, Array]:
        """Parameter name -> array (views into ``flat``)."""
        return self._views(self.flat)

    def initialize(self, rng: Any) -> None:
        """Draw every layer's parameters from ``rng``, layer by layer, in name order."""
        parts = []
        for layer in self.layers:
            fresh = layer.init_params(self.backend, rng, self.dtype)
            parts.extend(self.xp.reshape(fresh[key], (-1,)) for key in layer.param_shapes())
        if parts:
            self.load_flat(self.xp.concat(parts))

    def load_flat(self, flat: Array) -> None:
        """Copy ``flat`` (same size and dtype) into the parameter vector."""
        if self.inplace:
            self.flat[...] = flat
            self.set_flat(self.flat)
        else:
            self.set_flat(flat)

    def to_host(self) -> dict[str, Any]:
        """Name -> host NumPy copy of each parameter."""
        return {name: self.backend.to_host_copy(view) for name, view in self.named().items()}

    def from_host(self, arrays: dict[str, Any]) -> None:
        """Load name -> host array (exact names and shapes required; dtype is converted)."""
        missing = [n for n in self.names if n not in arrays]
        extra = [n for n in arrays if n not in self.shapes]
        if missing or extra:
            raise ValueError(f"parameter names differ: missing {missing}, unexpected {extra}")
        xp = self.xp
        parts = []
        for name in self.names:
            host = arrays[name]
            if tuple(host.shape) != self.shapes[name]:
                raise ValueError(
                    f"parameter {name} has shape {tuple(host.shape)}, expected {self.shapes[name]}"
                )
            parts.append(xp.reshape(self.backend.asarray(host, self.dtype), (-1,)))
        self.load_flat(xp.concat(parts))
