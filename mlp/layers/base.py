"""The layer protocol: ``forward(x, train) -> y`` and ``backward(grad_y) -> grad_x``."""

from __future__ import annotations

from typing import Any

from backends.ops import Buffers, GenericOps

from .._xp import Array, array_namespace, generic_ops


class Layer:
    """Base class of all layers.

    ``params`` and ``grads`` map a parameter's short name (``"W"``, ``"b"``) to its array; a
    model's :class:`~mlp.params.ParameterStore` makes them views into one flat buffer.
    ``backward`` delivers each gradient by assigning ``self.grads[name] = array``; it may
    compute it into ``self.grads.get(name)`` (as ``out=``) to save a copy, and the store takes
    any other array into its flat gradient, so both are correct on every backend.

    Args:
        ops: the operations to run on (a model passes its backend's ``ops``); ``None`` for
            portable code from the input's namespace. With in-place operations the layer keeps
            reusable output buffers, so its outputs are valid until its next call.
    """

    def __init__(self, ops: GenericOps | None = None) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.ops = ops
        self._buffers = Buffers()

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of this layer's parameters, in a fixed order."""
        return {}

    def init_params(self, backend: Any, rng: Any, dtype: Any) -> dict[str, Array]:
        """Fresh parameter arrays drawn from the host generator ``rng``."""
        return {}

    def build(self, backend: Any, rng: Any, dtype: Any = "float32") -> Layer:
        """Give a free-standing layer its parameters; returns ``self``."""
        self.params = self.init_params(backend, rng, dtype)
        return self

    def config(self) -> dict[str, Any]:
        """JSON-able description (type and constructor arguments)."""
        return {"type": type(self).__name__}

    def forward(self, x: Array, train: bool = False) -> Array:
        raise NotImplementedError

    def backward(self, grad: Array) -> Array | None:
        raise NotImplementedError

    # --- helpers -------------------------------------------------------------------------

    def _ops(self, x: Array) -> GenericOps:
        return self.ops if self.ops is not None else generic_ops(array_namespace(x))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({args})"
