"""Losses: ``forward(output, target) -> scalar`` and ``backward() -> grad of output``.

Targets are integer class labels ``(N,)`` (their dtype is checked, their range is not: that
would read back from the device every step) or one-hot / probability rows ``(N, C)`` in the
output's floating dtype. The loss comes back as a 0-d array on the output's device (no host
synchronisation); ``float(loss)`` when you need the number.
"""

from __future__ import annotations

from typing import Any

from backends.ops import Buffers, GenericOps

from ._xp import Array, array_namespace, device, generic_ops
from .schema import LABEL_SMOOTHING

REDUCTIONS = ("mean", "sum")


def one_hot(labels: Array, num_classes: int, dtype: Any, xp: Any) -> Array:
    """``(N,)`` integer labels -> ``(N, C)`` rows of 0/1 in ``dtype``."""
    classes = xp.arange(num_classes, device=device(labels))
    return xp.astype(xp.expand_dims(labels, axis=1) == classes, dtype)


def _targets(target: Array, out: Array, xp: Any, ops: GenericOps | None = None,
             buffers: Buffers | None = None) -> Array:
    """Target rows ``(N, C)`` in ``out``'s dtype; with ``ops`` and ``buffers`` one-hot rows are
    written into a reused buffer."""
    n, c = out.shape
    if target.ndim == 1:
        if target.shape[0] != n:
            raise ValueError(f"{target.shape[0]} labels for {n} outputs")
        if not xp.isdtype(target.dtype, "integral"):  # floats would match no class at all
            raise TypeError(f"labels must be integer class indices, not {target.dtype}")
        if ops is not None and buffers is not None:
            return ops.one_hot(target, c, out.dtype,
                               out=buffers.get(ops, "onehot", (n, c), out.dtype))
        return one_hot(target, c, out.dtype, xp)
    if tuple(target.shape) != (n, c):
        raise ValueError(f"target shape {tuple(target.shape)} does not match output {(n, c)}")
    return xp.astype(target, out.dtype) if target.dtype != out.dtype else target


class Loss:
    """Base class. ``ops``: the operations to run on (``None`` for portable code; a model
    :meth:`bind` s its backend's); with in-place operations the loss reuses its buffers, so
    its gradient is valid until the next :meth:`forward`."""

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}: choose one of {REDUCTIONS}")
        self.reduction = reduction
        self.ops: GenericOps | None = None
        self._buffers = Buffers()

    def bind(self, ops: GenericOps) -> None:
        """Run on ``ops`` from now on (a model's backend's, as an optimizer binds to the
        model's parameters)."""
        self.ops = ops

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "reduction": self.reduction}

    def _scale(self, n: int) -> float:
        return 1.0 / n if self.reduction == "mean" else 1.0

    def sum_factor(self, n: int) -> float:
        """Factor turning the loss of a batch of ``n`` samples into its sum over them (1 for a
        summed loss)."""
        return float(n) if self.reduction == "mean" else 1.0

    def forward(self, output: Array, target: Array) -> Array:
        raise NotImplementedError

    def backward(self) -> Array:
        raise NotImplementedError


class SoftmaxCrossEntropy(Loss):
    """Softmax of logits ``(N, C)`` fused with cross-entropy.

    ``loss = -sum(t * log_softmax(z)) / N`` with ``t`` the (optionally smoothed) target rows;
    label smoothing ``s`` (in the setting's bounds, :data:`mlp.schema.LABEL_SMOOTHING`) gives
    ``t = (1 - s) * onehot + s / C``. The gradient with respect to
    the logits is ``(softmax(z) - t) / N``.
    """

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.label_smoothing = float(LABEL_SMOOTHING.check(label_smoothing))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "label_smoothing": self.label_smoothing}

    def forward(self, output: Array, target: Array) -> Array:
        xp = array_namespace(output, target)
        ops = self.ops if self.ops is not None else generic_ops(xp)
        t = _targets(target, output, xp, ops, self._buffers)
        if self.label_smoothing:
            s = self.label_smoothing
            t = (1.0 - s) * t + s / output.shape[1]
        grad = self._buffers.get(ops, "grad", tuple(output.shape), output.dtype)
        loss, self._grad = ops.softmax_xent(output, t, self._scale(output.shape[0]), out=grad,
                                            scratch=self._buffers)
        return loss

    def backward(self) -> Array:
        return self._grad


class CrossEntropy(Loss):
    """Cross-entropy of probabilities ``p (N, C)`` (e.g. a :class:`Softmax` layer's output):
    ``-sum(t * log(max(p, tiny)))``; gradient ``-t / max(p, tiny)``, both scaled by the
    reduction. ``tiny`` (the dtype's smallest normal number) keeps ``log(0)`` finite. The
    floor is one elementwise ``maximum`` (a ``clip`` may index with boolean masks, which
    synchronises a GPU)."""

    def forward(self, output: Array, target: Array) -> Array:
        xp = array_namespace(output, target)
        t = _targets(target, output, xp)
        tiny = float(xp.finfo(output.dtype).smallest_normal)
        self._p, self._t = xp.maximum(output, tiny), t
        self._k = self._scale(output.shape[0])
        return xp.sum(t * xp.log(self._p) * -self._k)

    def backward(self) -> Array:
        return -(self._t / self._p) * self._k


class MSE(Loss):
    """Mean squared error ``sum((y - t)²) / (N * C)`` (``"sum"``: without the division);
    integer labels become one-hot targets."""

    def forward(self, output: Array, target: Array) -> Array:
        xp = array_namespace(output, target)
        t = _targets(target, output, xp)
        self._d = output - t
        n, c = output.shape
        self._k = 1.0 / (n * c) if self.reduction == "mean" else 1.0
        return xp.sum(self._d * self._d * self._k)

    def backward(self) -> Array:
        return (2.0 * self._k) * self._d


LOSSES: dict[str, type[Loss]] = {
    "SoftmaxCrossEntropy": SoftmaxCrossEntropy,
    "CrossEntropy": CrossEntropy,
    "MSE": MSE,
}


def loss_from_config(config: dict[str, Any]) -> Loss:
    kwargs = dict(config)
    kind = kwargs.pop("type")
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}")
    return LOSSES[kind](**kwargs)
