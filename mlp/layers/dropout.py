"""Inverted dropout."""

from __future__ import annotations

from typing import Any

from .._xp import Array, array_namespace, device
from ..schema import DROPOUT
from .base import Layer


class Dropout(Layer):
    """Zero each input with probability ``rate`` (the ``dropout`` setting's bounds,
    :data:`mlp.schema.DROPOUT`) while training and scale the rest by
    ``1 / (1 - rate)``; identity at evaluation. Shapes ``(N, D) -> (N, D)``.

    The mask comes from the seeded host generator ``rng`` (a model passes its backend's
    ``rng(seed)``; :meth:`build` gives a free-standing layer the one it is built with). On a
    device backend the layer draws float32 uniforms on the device
    (:meth:`backends.Backend.device_uniform`, one seed per step) and applies them in one pass
    (:meth:`backends.GenericOps.dropout`), so no ``(N, D)`` mask crosses from the host each step;
    ``host_masks=True`` draws the mask on the host instead (:meth:`backends.Backend.keep_mask`),
    so the same seed drops the same units on every backend. Without a backend, and on host
    backends, the mask is always ``rng.random(shape) >= rate``; on a host backend with in-place
    operations the layer draws those uniforms into a reused buffer and applies them in one
    pass, with the same numbers.
    """

    def __init__(
        self, rate: float = 0.5, rng: Any = None, backend: Any = None, host_masks: bool = False
    ) -> None:
        super().__init__()
        self.rate = float(DROPOUT.check(rate, "dropout rate"))
        self.rng = rng
        self.backend = backend
        self.host_masks = bool(host_masks)
        self._keep: Array | None = None
        self._u: Array | None = None
        self._fed: Array | None = None

    def build(self, backend: Any, rng: Any, dtype: Any = "float32") -> Dropout:
        if self.rng is None:
            self.rng = rng
        if self.backend is None:
            self.backend = backend
        return self

    def config(self) -> dict[str, Any]:
        return {"type": "Dropout", "rate": self.rate}

    def draw_keep(self, shape: tuple[int, ...]) -> Any:
        """The next training mask, true where a unit is kept: the backend's
        :meth:`~backends.Backend.keep_mask` (on its device), or a host boolean array."""
        rng = self._generator()
        if self.backend is not None:
            on_device = False if self.host_masks else None
            return self.backend.keep_mask(rng, shape, self.rate, on_device=on_device)
        return rng.random(shape) >= self.rate

    def feed(self, keep: Array | None) -> None:
        """The mask the next training forward applies instead of drawing one: a boolean array
        like its input, true where a unit is kept (a compiled step draws the masks outside
        the compiled function, with :meth:`draw_keep`, and passes them in); ``None`` takes a
        fed mask back."""
        self._fed = keep

    def forward(self, x: Array, train: bool = False) -> Array:
        """Training: the fed mask (:meth:`feed`), or else the next :meth:`draw_keep`, moved to
        ``x``'s device."""
        keep, self._fed = self._fed, None
        self._keep = self._u = None
        if not train or self.rate == 0.0:
            return x
        shape = tuple(x.shape)
        if keep is None and self._device_draws():
            # Uniforms drawn on the device, applied (and in backward re-applied) in one pass.
            ops = self.backend.ops
            self._u = self.backend.device_uniform(self._generator(), shape)
            return ops.dropout(x, self._u, self.rate,
                               out=self._buffers.get(ops, "y", shape, x.dtype))
        ops = self._host_ops() if keep is None else None
        if ops is not None:
            # The generator writes into the buffer's NumPy view; asarray shares that memory on a
            # host backend (it counts as the transfer).
            buffer = self._buffers.get(ops, "u", shape, "float64")
            u = self._generator().random(out=self.backend.host_view(buffer))
            self._u = self.backend.asarray(u)
            return ops.dropout(x, self._u, self.rate,
                               out=self._buffers.get(ops, "y", shape, x.dtype))
        xp = array_namespace(x)
        if keep is None:
            keep = xp.asarray(self.draw_keep(shape), device=device(x))
        self._keep = keep
        return xp.where(self._keep, x * (1.0 / (1.0 - self.rate)), xp.zeros_like(x))

    def backward(self, grad: Array) -> Array:
        if self._u is not None:
            ops = self.backend.ops
            out = self._buffers.get(ops, "dx", tuple(grad.shape), grad.dtype)
            return ops.dropout(grad, self._u, self.rate, out=out)
        if self._keep is None:
            return grad
        xp = array_namespace(grad)
        return xp.where(self._keep, grad * (1.0 / (1.0 - self.rate)), xp.zeros_like(grad))

    @property
    def _mask(self) -> Array | None:
        """The last training forward's boolean keep mask (``None`` after an evaluation)."""
        return self._u >= self.rate if self._u is not None else self._keep

    def _generator(self) -> Any:
        if self.rng is None:
            raise RuntimeError("Dropout needs a random generator to train: pass rng= "
                               "(e.g. backend.rng(seed)) or build() the layer")
        return self.rng

    def _device_draws(self) -> bool:
        """Whether the uniforms come from the backend's own generator, on its device."""
        b = self.backend
        return b is not None and not self.host_masks and b.device_masks

    def _host_ops(self) -> Any:
        """The backend's in-place operations where the uniforms can be drawn straight into a
        reused host buffer (a host backend), else ``None``."""
        b = self.backend
        return b.ops if b is not None and b.is_host and b.ops.inplace else None
