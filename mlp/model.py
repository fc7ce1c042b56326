"""The multilayer perceptron: layers, loss and optimizer on one backend, in one dtype."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import backends

from ._xp import Array
from .layers import ACTIVATIONS, Dropout, Linear, Sequential, Softmax
from .layers.base import Layer
from .losses import Loss, SoftmaxCrossEntropy
from .optimizers import Adam, Optimizer
from .params import ParameterStore

OUTPUTS = ("logits", "softmax")


class MLP:
    """A fully connected network ``sizes[0] -> ... -> sizes[-1]``.

    Each hidden layer is ``Linear -> activation [-> Dropout]``; the last is ``Linear``,
    followed by a :class:`~mlp.layers.Softmax` when ``output="softmax"`` (pair it with
    :class:`~mlp.losses.CrossEntropy`, as the notebook did; the default ``"logits"`` pairs with
    the fused :class:`~mlp.losses.SoftmaxCrossEntropy`).

    Args:
        sizes: layer widths, inputs first, e.g. ``[784, 512, 512, 10]``.
        activation: one of ``relu``, ``leaky_relu``, ``sigmoid``, ``tanh``, ``gelu``.
        dropout: drop rate after each hidden activation (0 for none).
        init: ``he``, ``glorot`` or ``normal`` (see :class:`~mlp.layers.Linear`); default
            ``he`` for ReLU-like activations, ``glorot`` otherwise.
        bias, output_bias: biases on the hidden layers and on the output layer.
        loss, optimizer: defaults :class:`SoftmaxCrossEntropy` and ``Adam(1e-3)``.
        backend, device: where the arrays live (see :func:`backends.get`).
        dtype: ``"float32"`` or ``"float64"``; parameters, activations and gradients all use it.
        seed: seeds parameter initialisation and dropout; same seed ⇒ same initial weights on
            every backend.
        fast: use the backend's in-place kernels where it has them (``False``: the portable
            array-API code everywhere, for comparison).

    Inputs are ``(N, sizes[0])`` arrays of ``dtype`` on the model's device; labels are
    ``(N,)`` integers or ``(N, C)`` target rows.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        init: str | None = None,
        bias: bool = True,
        output_bias: bool | None = None,
        output: str = "logits",
        loss: Loss | None = None,
        optimizer: Optimizer | None = None,
        backend: str | backends.Backend = "numpy",
        device: Any = None,
        dtype: str = "float32",
        seed: int | None = 0,
        fast: bool = True,
    ) -> None:
        self.backend = backends.get(backend, device)
        self.dtype = self.backend.dtype(dtype)
        self.dtype_name = self.backend.dtype_name(self.dtype)
        self.xp = self.backend.xp
        self.rng = self.backend.rng(seed)
        self.ops = self.backend.ops if fast else backends.GenericOps(self.xp, self.backend.device)
        if not fast:
            self.backend = _with_ops(self.backend, self.ops)

        layers = build_layers(sizes, activation, dropout, init, bias, output_bias, output,
                              rng=self.rng)
        self.sizes = [int(s) for s in sizes]
        self.activation, self.init = activation, layers[0].init
        self.dropout = float(dropout)
        self.bias = bool(bias)
        self.output_bias = self.bias if output_bias is None else bool(output_bias)
        self.output = output
        self.seed = seed
        for layer in layers:
            layer.ops = self.ops
        self.layers = Sequential(layers)
        self.store = ParameterStore(layers, self.backend, self.dtype)
        self.store.initialize(self.rng)

        self.loss = loss if loss is not None else SoftmaxCrossEntropy()
        self.optimizer = optimizer if optimizer is not None else Adam()
        self.optimizer.bind(self.store)
        self.last_output: Array | None = None

    # --- description -------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """JSON-able architecture: ``MLP(**config)`` rebuilds the same network."""
        return {"sizes": self.sizes, "activation": self.activation, "dropout": self.dropout,
                "init": self.init, "bias": self.bias, "output_bias": self.output_bias,
                "output": self.output, "dtype": self.dtype_name}

    def __repr__(self) -> str:
        return (f"MLP({self.sizes}, activation={self.activation!r}, backend={self.backend.name!r}, "
                f"dtype={self.dtype_name!r}, parameters={self.store.size})")

    # --- the passes ----------------------------------------------------------------------

    def forward(self, x: Array, train: bool = False) -> Array:
        """Outputs ``(N, sizes[-1])``: logits, or probabilities with ``output="softmax"``.

        The result is the caller's to keep (a copy where layers reuse buffers).
        """
        y = self.layers.forward(self._check_input(x), train=train)
        return self.xp.asarray(y, copy=True) if self.ops.inplace else y

    def backward(self, grad_out: Array) -> None:
        """Back-propagate ``d loss / d output`` from the last :meth:`forward`, filling every
        layer's ``grads`` (and the store's flat gradient)."""
        self.layers.backward(grad_out)

    def train_step(self, x: Array, y: Array) -> Array:
        """Forward, loss, backward and one optimizer update on a batch; returns the batch
        loss as a 0-d array on the device (before the update).

        Shape and dtype of ``x`` are checked; NaN is not (a pass over every batch): a NaN
        input makes the loss NaN, which :class:`~mlp.train.Trainer` stops on."""
        out = self.layers.forward(self._check_input(x, finite=False), train=True)
        loss = self.loss.forward(out, y)
        self.layers.backward(self.loss.backward())
        self.optimizer.step()
        self.last_output = out
        return loss

    def loss_and_grads(self, x: Array, y: Array) -> tuple[Array, dict[str, Array]]:
        """Loss on ``(x, y)`` and name -> gradient, without updating (for gradient checks)."""
        out = self.layers.forward(self._check_input(x), train=False)
        loss = self.loss.forward(out, y)
        self.layers.backward(self.loss.backward())
        return loss, self.layers.named_grads()

    def predict(self, x: Array, batch_size: int = 4096) -> Array:
        """Predicted class indices ``(N,)`` on the device."""
        xp = self.xp
        n = x.shape[0]
        self._check_input(x)
        parts = [xp.argmax(self.layers.forward(x[i : min(i + batch_size, n), ...]), axis=1)
                 for i in range(0, n, batch_size)]
        return xp.concat(parts) if len(parts) > 1 else parts[0]

    def evaluate(
        self, x: Array, y: Array, batch_size: int = 4096, scale: float | None = None
    ) -> dict[str, float]:
        """Mean loss and accuracy (host floats) over ``x (N, D)`` and integer labels ``y (N,)``.

        With ``scale``, ``x`` holds raw integer features (e.g. uint8 pixels) that are converted
        batch by batch to ``x * scale`` in the model dtype, so the whole set is never copied.
        """
        xp = self.xp
        n = x.shape[0]
        total_loss = xp.zeros((), dtype=self.dtype, device=self.backend.device)
        correct = xp.zeros((), dtype=xp.int64, device=self.backend.device)
        for i in range(0, n, batch_size):
            stop = min(i + batch_size, n)  # the standard has no slices past the end
            xb, yb = x[i:stop, ...], y[i:stop]
            if scale is not None:
                xb = self.ops.to_float(xb, scale, self.dtype)
            out = self.layers.forward(self._check_input(xb))
            total_loss = total_loss + self.loss.forward(out, yb) * self.loss_weight(xb.shape[0])
            correct = correct + xp.sum(xp.astype(xp.argmax(out, axis=1) == yb, xp.int64))
        to_numpy = self.backend.to_numpy
        return {"loss": float(to_numpy(total_loss)) / n, "accuracy": int(to_numpy(correct)) / n}

    def loss_weight(self, batch: int) -> float:
        """Factor turning a batch's loss into its sum over samples (1 for summed losses)."""
        return float(batch) if self.loss.reduction == "mean" else 1.0

    def _check_input(self, x: Array, finite: bool = True) -> Array:
        """Shape and dtype of ``x``, and (unless ``finite=False``) no NaN or infinity."""
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"expected inputs of shape (N, {self.sizes[0]}), got {tuple(x.shape)}")
        if x.dtype != self.dtype:
            raise TypeError(f"inputs are {x.dtype}, the model is {self.dtype_name}; "
                            "convert with model.backend.asarray(x, model.dtype)")
        if finite:
            xp = self.xp
            bad = int(self.backend.to_numpy(xp.sum(xp.astype(~xp.isfinite(x), xp.int64))))
            if bad:
                raise ValueError(f"inputs hold {bad} NaN or infinite value(s) of "
                                 f"{x.shape[0] * x.shape[1]}; clean or impute them first")
        return x

    # --- parameters ----------------------------------------------------------------------

    def parameters(self) -> dict[str, Array]:
        """Name -> parameter array on the device (views into the flat buffer)."""
        return self.store.named()

    def state_dict(self) -> dict[str, Any]:
        """Name -> host NumPy copy of every parameter."""
        return self.store.to_host()

    def load_state_dict(self, arrays: dict[str, Any]) -> None:
        """Load name -> host array; names and shapes must match exactly."""
        self.store.from_host(arrays)


def _with_ops(backend: backends.Backend, ops: Any) -> backends.Backend:
    """A copy of ``backend`` that uses ``ops`` (the portable path on an in-place library)."""
    clone = object.__new__(type(backend))
    clone.__dict__.update(backend.__dict__)
    clone.ops = ops
    return clone


def build_layers(
    sizes: Sequence[int],
    activation: str = "relu",
    dropout: float = 0.0,
    init: str | None = None,
    bias: bool = True,
    output_bias: bool | None = None,
    output: str = "logits",
    rng: Any = None,
) -> list[Layer]:
    """The layers of ``MLP(sizes, ...)``, in order and without parameter arrays: per hidden
    layer ``Linear, activation [, Dropout(rng)]``, then the output ``Linear`` [and
    ``Softmax``]. Raises ``ValueError`` for an invalid architecture."""
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must be at least two positive widths, got {sizes}")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}: choose one of {', '.join(ACTIVATIONS)}"
        )
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}: choose one of {', '.join(OUTPUTS)}")
    if init is None:
        init = "he" if activation in ("relu", "leaky_relu", "gelu") else "glorot"
    output_bias = bias if output_bias is None else output_bias
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = i == len(sizes) - 2
        layers.append(Linear(n_in, n_out, bias=bool(output_bias if last else bias), init=init,
                             input_grad=i > 0))
        if not last:
            layers.append(ACTIVATIONS[activation]())
            if dropout:
                layers.append(Dropout(dropout, rng=rng))
    if output == "softmax":
        layers.append(Softmax())
    return layers


def parameter_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every parameter of ``MLP(**config)``, without allocating arrays."""
    layers = build_layers(**{k: v for k, v in config.items() if k != "dtype"})
    return {f"{i}.{key}": shape for i, layer in enumerate(layers)
            for key, shape in layer.param_shapes().items()}
