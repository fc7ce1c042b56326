"""Array operations with an optional output buffer.

``GenericOps`` is written against the array API standard only: every method returns a new
array and ignores ``out``. Backends that can write in place (NumPy, CuPy) subclass it and honour
``out``; callers always use the returned array, so one call site serves both. Fast paths must
give the same numbers as the generic code (the tests compare them).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from array_api_compat import device as array_device

Array = Any


class Buffers:
    """An owner's reusable output arrays, by name, shape and dtype.

    :meth:`get` returns ``None`` where the operations allocate per call (``ops.inplace`` is
    false), so the result can be passed straight on as an ``out=`` argument.
    """

    def __init__(self) -> None:
        self._arrays: dict[tuple[Any, ...], Array] = {}

    def get(self, ops: GenericOps, key: str, shape: tuple[int, ...], dtype: Any) -> Array | None:
        if not ops.inplace:
            return None
        k = (key, shape, dtype)
        buf = self._arrays.get(k)
        if buf is None:
            buf = self._arrays[k] = ops.buffer(shape, dtype)
        return buf


class GenericOps:
    """Portable implementations; ``out`` arguments are accepted and ignored."""

    #: True when ``out=`` buffers are written in place and ``buffer`` returns real arrays.
    inplace = False

    def __init__(self, xp: Any, device: Any = None) -> None:
        self.xp = xp
        self.device = device

    def buffer(self, shape: tuple[int, ...], dtype: Any) -> Array | None:
        """A reusable scratch array, or ``None`` where the backend allocates per call."""
        return None

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        return a @ b

    def add(self, a: Array, b: Array, out: Array | None = None) -> Array:
        return a + b

    def relu(self, x: Array, out: Array | None = None) -> Array:
        xp = self.xp
        return xp.where(x > 0, x, xp.zeros_like(x))

    def relu_grad(self, g: Array, y: Array, out: Array | None = None) -> Array:
        """``g * (y > 0)``: the backward of ReLU given its output ``y``."""
        xp = self.xp
        return g * xp.astype(y > 0, g.dtype)

    def bias_relu(self, x: Array, b: Array, out: Array | None = None) -> Array:
        """``relu(x + b)`` for ``x (N, D)``, ``b (D,)``: a layer's bias and ReLU in one pass."""
        return self.relu(x + b)

    def relu_grad_sum(
        self, g: Array, y: Array, out: Array | None = None, sums: Array | None = None
    ) -> tuple[Array, Array]:
        """``d = relu_grad(g, y)`` and ``sum_rows(d)``: a ReLU's backward and the preceding
        bias's gradient in one pass; ``sums`` is the ``(D,)`` output buffer of the latter."""
        d = self.relu_grad(g, y)
        return d, self.sum_rows(d)

    def sum_rows(self, x: Array, out: Array | None = None) -> Array:
        """Sum over axis 0: ``(N, D) -> (D,)``."""
        return self.xp.sum(x, axis=0)

    def take_rows(self, x: Array, idx: Array, out: Array | None = None) -> Array:
        """Rows ``x[idx]`` for a 1-D integer index on the same device."""
        return self.xp.take(x, idx, axis=0)

    def to_float(self, x: Array, scale: float, dtype: Any, out: Array | None = None) -> Array:
        """``x`` cast to ``dtype`` and multiplied by ``scale`` (e.g. uint8 pixels to [0, 1])."""
        return self.xp.astype(x, dtype) * scale

    def concat_flat(self, parts: list[Array]) -> Array:
        """1-D arrays of one dtype, end to end (e.g. the gradients of a model's parameters)."""
        return self.xp.concat(parts)

    def dropout(self, x: Array, u: Array, rate: float, out: Array | None = None) -> Array:
        """Inverted dropout of ``x (N, D)`` by the uniforms ``u (N, D)`` (a host generator's
        float64 draws, or a device generator's float32 ones): ``x / (1 - rate)`` where
        ``u >= rate``, else 0. Its backward is the same call on the gradient."""
        xp = self.xp
        return xp.where(u >= rate, x * (1.0 / (1.0 - rate)), xp.zeros_like(x))

    def one_hot(self, labels: Array, num_classes: int, dtype: Any,
                out: Array | None = None) -> Array:
        """``(N,)`` integer labels -> ``(N, C)`` rows of 0/1 in ``dtype``."""
        xp = self.xp
        classes = xp.arange(num_classes, device=array_device(labels))
        return xp.astype(xp.expand_dims(labels, axis=1) == classes, dtype)

    def softmax_xent(self, z: Array, t: Array, k: float, out: Array | None = None,
                     scratch: Buffers | None = None) -> tuple[Array, Array]:
        """Softmax cross-entropy of logits ``z (N, C)`` against target rows ``t (N, C)``,
        scaled by ``k``: the 0-d loss ``sum(t * log_softmax(z) * -k)`` and its gradient
        ``(softmax(z) - t) * k`` (into ``out``). ``scratch``: the caller's reusable buffers for
        the temporaries."""
        xp = self.xp
        shifted = z - xp.max(z, axis=1, keepdims=True)
        logp = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
        return xp.sum(t * logp * -k), (xp.exp(logp) - t) * k

    # Optimizer updates over flat parameter vectors: one entry point per rule, which the
    # eager, compiled and captured steps all call. All return the new arrays.

    def sgd_update(
        self,
        p: Array,
        g: Array,
        velocity: Array | None,
        lr: float,
        momentum: float,
        nesterov: bool,
        weight_decay: float,
    ) -> tuple[Array, Array | None]:
        """One SGD step (PyTorch's convention for momentum and Nesterov)."""
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            velocity = g if velocity is None else momentum * velocity + g
            step = g + momentum * velocity if nesterov else velocity
        else:
            step = g
        return p - lr * step, velocity

    def adam_update(
        self, p: Array, g: Array, m: Array, v: Array, k: AdamConstants
    ) -> tuple[Array, Array, Array]:
        """One Adam (L2 in the gradient, ``k.l2``) or AdamW (``k.shrink``) step from its
        constants ``k`` (:meth:`AdamConstants.of`).

        The update is written in the paper's efficient form, ``p -= lr sqrt(1-β2^t)/(1-β1^t) *
        m / (sqrt(v) + eps sqrt(1-β2^t))``, equal to ``lr * m̂ / (sqrt(v̂) + eps)`` with one pass
        fewer. A compiled or captured step passes the per-step constants (``eps_hat``,
        ``step_size``, ``shrink``) as traced or 0-d arrays; a ``shrink`` that is the number 1.0
        is skipped.
        """
        xp = self.xp
        if k.l2:
            g = g + k.l2 * p
        m = k.beta1 * m + k.c1 * g
        v = k.beta2 * v + k.c2 * (g * g)
        denom = xp.sqrt(v) + k.eps_hat
        if not (isinstance(k.shrink, float) and k.shrink == 1.0):
            p = p * k.shrink
        p = p - k.step_size * (m / denom)
        return p, m, v


class AdamConstants(NamedTuple):
    """The host scalars of one Adam step, as :meth:`GenericOps.adam_update` takes them, in the
    order the Numba and CuPy kernels take them: the L2 factor added to the gradient (Adam),
    ``β1``, ``c1 = 1-β1``, ``β2``, ``c2 = 1-β2``, the ε and step size of the efficient form, and
    the decoupled shrink factor (AdamW)."""

    l2: float
    beta1: float
    c1: float
    beta2: float
    c2: float
    eps_hat: float
    step_size: float
    shrink: float

    @classmethod
    def of(cls, lr: float, beta1: float, beta2: float, eps: float, step: int,
           weight_decay: float, decoupled: bool) -> AdamConstants:
        sqrt_bc2 = (1.0 - beta2**step) ** 0.5
        return cls(
            l2=weight_decay if (weight_decay and not decoupled) else 0.0,
            beta1=beta1, c1=1.0 - beta1, beta2=beta2, c2=1.0 - beta2,
            eps_hat=eps * sqrt_bc2,
            step_size=lr * sqrt_bc2 / (1.0 - beta1**step),
            shrink=1.0 - lr * weight_decay if (weight_decay and decoupled) else 1.0,
        )
