"""The network: layers, flat parameter store, loss and optimizer on one backend, in one dtype.

It computes (forward, loss, backward, one update) and knows nothing of how its training step is
run: the steps of :mod:`mlp.steps` and the trainer of :mod:`mlp.train` are built on
:meth:`Network.gradients` and the optimizer's update; :class:`mlp.MLP` adds ``fit``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import backends
from backends import lazy

from . import checks
from ._xp import Array
from .architecture import build_layers, default_init
from .inference import lazy_evaluate, lazy_outputs
from .inputs import Converter, input_scale, on_backend
from .layers import Dropout, Sequential, log_softmax
from .losses import Loss, SoftmaxCrossEntropy
from .metrics import Totals
from .optimizers import Adam, Optimizer
from .params import ParameterStore

#: A training step: ``(x, y) -> (loss, outputs)``, the batch loss (0-d, before the update) and
#: the outputs ``(N, C)``, valid until the next pass (see :mod:`mlp.steps`).
Step = Callable[[Array, Array], tuple[Array, Array]]

_Method = TypeVar("_Method", bound=Callable[..., Any])


def on_device(method: _Method) -> _Method:
    """Run a model method inside its backend's device context (:meth:`Backend.activate`)."""

    @functools.wraps(method)
    def wrapper(self: Network, *args: Any, **kwargs: Any) -> Any:
        with self.backend.activate():
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class Network:
    """A fully connected network ``sizes[0] -> ... -> sizes[-1]``: each hidden layer is
    ``Linear -> activation [-> Dropout]``, the last ``Linear`` [``-> Softmax``] (see
    :func:`~mlp.architecture.build_layers` for ``sizes``, ``activation``, ``dropout``, ``init``,
    ``bias``, ``output_bias`` and ``output``).

    Args:
        loss, optimizer: defaults :class:`SoftmaxCrossEntropy` and ``Adam(1e-3)``.
        backend, device: where the arrays live (see :func:`backends.get`; default NumPy).
        dtype: ``"float32"`` or ``"float64"``; parameters, activations and gradients all use it.
        seed: seeds parameter initialisation and dropout; same seed ⇒ same initial weights on
            every backend.
        fast: use the backend's fast paths (in-place operations, Numba or CuPy kernels) where
            it has them; ``False``: the portable array-API code everywhere, for comparison.
        host_masks: draw dropout masks on the host even on a GPU backend, so the same seed
            drops the same units on every backend (see :class:`~mlp.layers.Dropout`).

    Every public method runs inside ``backend.activate()``. Batches (:meth:`forward`,
    :meth:`train_step`) are ``(N, sizes[0])`` arrays of ``dtype`` on the model's device, checked
    for shape and dtype; sets (:meth:`evaluate`, :meth:`predict`, :meth:`predict_proba`) may also
    be host NumPy arrays and uint8 pixels (scaled by 1/255), and are checked once per call (no
    NaN or infinity, at least one row, integer labels in ``[0, sizes[-1])``).
    """

    def __init__(
        self, sizes: Sequence[int], activation: str = "relu", dropout: float = 0.0,
        init: str | None = None, bias: bool = True, output_bias: bool | None = None,
        output: str = "logits", loss: Loss | None = None, optimizer: Optimizer | None = None,
        backend: str | backends.Backend | None = None, device: Any = None,
        dtype: str = "float32", seed: int | None = 0, fast: bool = True,
        host_masks: bool = False,
    ) -> None:
        backend = backends.get(backend, device)
        if not fast:
            backend = backend.with_ops(backends.GenericOps(backend.xp, backend.device))
        self.backend, self.xp, self.seed = backend, backend.xp, seed
        with backend.activate():  # arrays are created on the model's device
            self.dtype = backend.dtype(dtype)
            self.dtype_name = backend.dtype_name(self.dtype)
            self.rng = backend.rng(seed)
            layers = build_layers(sizes, activation, dropout, init, bias, output_bias, output,
                                  rng=self.rng, ops=backend.ops, backend=backend,
                                  host_masks=host_masks)
            self.sizes, self.activation = [int(s) for s in sizes], activation
            self.init = default_init(activation) if init is None else init
            self.dropout, self.bias, self.output = float(dropout), bool(bias), output
            self.output_bias = self.bias if output_bias is None else bool(output_bias)
            self.layers = Sequential(layers)
            self.store = ParameterStore(layers, backend, self.dtype)
            self.store.initialize(self.rng)
            self.loss = loss if loss is not None else SoftmaxCrossEntropy()
            self.loss.bind(self.ops)
            self.optimizer = optimizer if optimizer is not None else Adam()
            self.optimizer.bind(self.store)
        self._converter = Converter(backend.ops, self.dtype)
        #: The step :meth:`train_step` runs, installed by the caller (:func:`mlp.steps.choose`);
        #: ``None`` runs :meth:`eager_step`.
        self.step: Step | None = None

    @property
    def ops(self) -> backends.GenericOps:
        """The operations the model runs on: ``self.backend.ops``."""
        return self.backend.ops

    def config(self) -> dict[str, Any]:
        """JSON-able architecture: ``MLP(**config)`` rebuilds the same network."""
        return {"sizes": self.sizes, "activation": self.activation, "dropout": self.dropout,
                "init": self.init, "bias": self.bias, "output_bias": self.output_bias,
                "output": self.output, "dtype": self.dtype_name}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.sizes}, activation={self.activation!r}, "
                f"backend={self.backend.name!r}, dtype={self.dtype_name!r}, "
                f"parameters={self.store.size})")

    # --- the passes ----------------------------------------------------------------------

    @on_device
    def forward(self, x: Array, train: bool = False) -> Array:
        """Outputs ``(N, sizes[-1])``: logits, or probabilities with ``output="softmax"`` (the
        caller's to keep: a copy where layers reuse buffers). ``x`` must be finite."""
        checks.check_finite(self._batch(x), self.backend)
        y = self.layers.forward(x, train=train)
        return self.xp.asarray(y, copy=True) if self.ops.inplace else y

    @on_device
    def backward(self, grad_out: Array) -> None:
        """Back-propagate ``d loss / d output`` from the last :meth:`forward`, filling every
        layer's ``grads`` (and the store's flat gradient)."""
        self.layers.backward(grad_out)

    @on_device
    def train_step(self, x: Array, y: Array) -> Array:
        """One training step on a batch (``y``: integer labels or target rows): ``self.step``,
        the step the caller installed, or :meth:`eager_step`; returns the batch loss (0-d, on
        the device, before the update). Only shapes and dtypes are checked (values are checked
        once per set by ``fit`` and :meth:`evaluate`, not per step)."""
        return (self.step or self.eager_step)(self._batch(x), y)[0]

    def eager_step(self, x: Array, y: Array) -> tuple[Array, Array]:
        """The step as written (a :data:`Step`): :meth:`gradients`, then one optimizer update.
        Inputs are not checked."""
        loss, out = self.gradients(x, y)
        self.optimizer.step()
        return loss, out

    def gradients(self, x: Array, y: Array, weight: float = 1.0,
                  after: Callable[[int], None] | None = None) -> tuple[Array, Array]:
        """Forward (training mode), loss and backward on a batch ``x (N, sizes[0])``, ``y``:
        fills every layer's gradients and the store's flat gradient, of the loss scaled by
        ``weight`` (a process's share of a global batch). ``after(i)`` is called as soon as
        layer ``i``'s gradients are complete. Returns the batch loss (0-d, unscaled) and the
        outputs ``(N, sizes[-1])`` (valid until the next pass). Inputs are not checked."""
        out = self.layers.forward(x, train=True)
        loss = self.loss.forward(out, y)
        grad = self.loss.backward()
        if weight != 1.0:
            grad = grad * weight
        self.layers.backward(grad, after)
        return loss, out

    @on_device
    def loss_and_grads(self, x: Array, y: Array) -> tuple[Array, dict[str, Array]]:
        """Loss on ``(x, y)`` and name -> gradient, without updating (for gradient checks)."""
        checks.check_finite(self._batch(x), self.backend)
        loss = self.loss.forward(self.layers.forward(x, train=False), y)
        self.layers.backward(self.loss.backward())
        return loss, self.layers.named_grads()

    def use_dropout_rng(self, rng: Any) -> None:
        """Draw every dropout layer's masks from ``rng`` from the next step on."""
        for layer in self.layers:
            if isinstance(layer, Dropout):
                layer.rng = rng

    # --- inference -----------------------------------------------------------------------

    @on_device
    def predict(self, x: Any, batch_size: int = 4096) -> Array:
        """Predicted class indices ``(N,)`` on the device; for a dask array ``x``, a dask
        array computed chunk by chunk (see :mod:`mlp.inference`)."""
        if lazy.is_lazy(x):
            return lazy_outputs(self, x, "labels")
        return self._joined([self.xp.argmax(out, axis=1) for out in self._outputs(x, batch_size)])

    @on_device
    def predict_proba(self, x: Any, batch_size: int = 4096) -> Array:
        """Class probabilities ``(N, C)`` in the model dtype on the device (rows sum to 1); for
        a dask array ``x``, a dask array."""
        if lazy.is_lazy(x):
            return lazy_outputs(self, x, "proba")
        xp = self.xp
        return self._joined([xp.asarray(out, copy=True) if self.output == "softmax"
                             else xp.exp(log_softmax(out, xp))
                             for out in self._outputs(x, batch_size)])

    @on_device
    def evaluate(self, x: Array, y: Array, batch_size: int = 4096,
                 scale: float | None = None) -> dict[str, float]:
        """Mean loss and accuracy (host floats) over ``x (N, D)`` and integer labels ``y (N,)``.
        With ``scale``, ``x`` holds raw integer features (e.g. uint8 pixels) converted batch by
        batch to ``x * scale`` in the model dtype, so the whole set is never copied. Dask
        arrays ``x`` and ``y`` are computed in one pass, chunk by chunk."""
        if lazy.is_lazy(x):
            return lazy_evaluate(self, x, y, scale)
        batch_size = checks.count_argument("batch_size", batch_size)
        x, y = on_backend(self.backend, x), on_backend(self.backend, y)
        checks.check_rows(x, self.sizes[0])
        checks.check_set(x, y, self.sizes[-1], self.backend)
        totals, i = Totals(self.backend, self.dtype), 0
        for xb in self._converter.blocks(x, batch_size, scale):
            yb, n = y[i : i + xb.shape[0]], xb.shape[0]
            out = self.layers.forward(self._batch(xb))
            totals.add(self.loss.forward(out, yb), self.loss.sum_factor(n), out, yb)
            i += n
        loss_sum, correct = totals.read()
        return {"loss": loss_sum / i, "accuracy": correct / i}

    def _outputs(self, x: Any, batch_size: int) -> Iterator[Array]:
        """The network's outputs on the set ``x``, batch by batch (each valid until the next)."""
        batch_size = checks.count_argument("batch_size", batch_size)
        x = on_backend(self.backend, x)
        scale = None if x.dtype == self.dtype else input_scale(self.xp, x.dtype)
        checks.check_rows(x, self.sizes[0])
        checks.check_finite(x, self.backend)
        for xb in self._converter.blocks(x, batch_size, scale):
            yield self.layers.forward(self._batch(xb))

    def _batch(self, x: Array) -> Array:
        return checks.check_batch(x, self.sizes[0], self.dtype, self.dtype_name)

    def _joined(self, parts: list[Array]) -> Array:
        return self.xp.concat(parts) if len(parts) > 1 else parts[0]

    # --- parameters ----------------------------------------------------------------------

    @on_device
    def parameters(self) -> dict[str, Array]:
        """Name -> parameter array on the device (views into the flat buffer)."""
        return self.store.named()

    @on_device
    def state_dict(self) -> dict[str, Any]:
        """Name -> host NumPy copy of every parameter."""
        return self.store.to_host()

    @on_device
    def load_state_dict(self, arrays: dict[str, Any]) -> None:
        """Load name -> host array; names and shapes must match exactly."""
        self.store.from_host(arrays)
