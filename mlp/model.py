"""The multilayer perceptron: layers, loss and optimizer on one backend, in one dtype."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import backends

from ._xp import Array, array_namespace
from .inputs import input_scale
from .layers import ACTIVATIONS, Dropout, Layer, Linear, Sequential, Softmax, log_softmax
from .losses import Loss, SoftmaxCrossEntropy
from .optimizers import Adam, Optimizer
from .params import ParameterStore
from .schema import SETTINGS

OUTPUTS = ("logits", "softmax")

_Method = TypeVar("_Method", bound=Callable[..., Any])


def on_device(method: _Method) -> _Method:
    """Run a model method inside its backend's device context (:meth:`Backend.activate`)."""

    @functools.wraps(method)
    def wrapper(self: MLP, *args: Any, **kwargs: Any) -> Any:
        with self.backend.activate():
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def count_argument(name: str, value: Any) -> int:
    """``value`` as an ``int``, checked by the count setting ``name`` of :mod:`mlp.schema`
    (``epochs``, ``batch_size``: an integer, a Python or NumPy one, not a bool, of at least 1).

    Raises:
        ValueError: the schema's message, e.g. ``batch_size must be an integer >= 1, got 2.5``.
    """
    return operator.index(SETTINGS[name].check(value))


def default_init(activation: str) -> str:
    """``he`` for ReLU-like activations, ``glorot`` otherwise."""
    return "he" if activation in ("relu", "leaky_relu", "gelu") else "glorot"


def build_layers(
    sizes: Sequence[int],
    activation: str = "relu",
    dropout: float = 0.0,
    init: str | None = None,
    bias: bool = True,
    output_bias: bool | None = None,
    output: str = "logits",
    rng: Any = None,
    ops: backends.GenericOps | None = None,
    backend: backends.Backend | None = None,
    host_masks: bool = False,
) -> list[Layer]:
    """The unbuilt layers of ``MLP(sizes, ...)`` (same arguments; see :class:`MLP`).

    Each hidden layer is ``Linear -> activation [-> Dropout]``; the last is ``Linear``, then
    ``Softmax`` when ``output="softmax"``. ``rng`` is the dropout layers' generator, ``ops``
    the operations every layer runs on (``None``: portable code); ``backend`` and
    ``host_masks`` say where dropout draws its masks (see :class:`~mlp.layers.Dropout`).

    Raises:
        ValueError: bad sizes, activation, init or output.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must be at least two positive widths, got {sizes}")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}: choose one of {', '.join(ACTIVATIONS)}"
        )
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}: choose one of {', '.join(OUTPUTS)}")
    init = default_init(activation) if init is None else init
    output_bias = bias if output_bias is None else output_bias
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = i == len(sizes) - 2
        layers.append(Linear(n_in, n_out, bias=bool(output_bias if last else bias), init=init,
                             input_grad=i > 0, ops=ops))
        if not last:
            layers.append(ACTIVATIONS[activation](ops=ops))
            if dropout:
                layers.append(Dropout(float(dropout), rng=rng, backend=backend,
                                      host_masks=host_masks))
    if output == "softmax":
        layers.append(Softmax(ops=ops))
    return layers


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
        backend, device: where the arrays live (see :func:`backends.get`; default NumPy).
        dtype: ``"float32"`` or ``"float64"``; parameters, activations and gradients all use it.
        seed: seeds parameter initialisation and dropout; same seed ⇒ same initial weights on
            every backend.
        fast: use the backend's in-place kernels where it has them (``False``: the portable
            array-API code everywhere, for comparison).
        host_masks: draw dropout masks on the host even on a GPU backend, so the same seed
            drops the same units on every backend (at the cost of copying an ``(N, D)`` mask
            to the device per layer and step). By default a GPU backend draws them on the
            device, reproducibly from the seed but with other masks than the host's.

    Every method that touches the model's arrays runs inside ``backend.activate()``, so a
    model on a second GPU stays there whatever device is current in the caller's thread.

    Inputs of :meth:`forward`, :meth:`train_step` and :meth:`evaluate` are ``(N, sizes[0])``
    arrays of ``dtype`` on the model's device; labels are ``(N,)`` integers in
    ``[0, sizes[-1])`` (:meth:`train_step` also takes ``(N, C)`` target rows).
    :meth:`fit`, :meth:`predict` and :meth:`predict_proba` also take host NumPy arrays, and
    uint8 pixels (scaled by 1/255). :meth:`fit`, :meth:`evaluate`, :meth:`predict` and
    :meth:`predict_proba` check each set once per call (no NaN or infinity, at least one row,
    labels in range); :meth:`train_step` checks shapes and dtypes only.
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
        backend: str | backends.Backend | None = None,
        device: Any = None,
        dtype: str = "float32",
        seed: int | None = 0,
        fast: bool = True,
        host_masks: bool = False,
    ) -> None:
        backend = backends.get(backend, device)
        if not fast:
            backend = backend.with_ops(backends.GenericOps(backend.xp, backend.device))
        self.backend = backend
        with backend.activate():  # arrays are created on the model's device
            self.dtype = backend.dtype(dtype)
            self.dtype_name = backend.dtype_name(self.dtype)
            self.xp = backend.xp
            self.rng = backend.rng(seed)
            layers = build_layers(sizes, activation, dropout, init, bias, output_bias, output,
                                  rng=self.rng, ops=backend.ops, backend=backend,
                                  host_masks=host_masks)
            self.sizes = [int(s) for s in sizes]
            self.activation = activation
            self.init = default_init(activation) if init is None else init
            self.dropout = float(dropout)
            self.bias = bool(bias)
            self.output_bias = self.bias if output_bias is None else bool(output_bias)
            self.output = output
            self.seed = seed

            self.layers = Sequential(layers)
            self.store = ParameterStore(layers, backend, self.dtype)
            self.store.initialize(self.rng)

            self.loss = loss if loss is not None else SoftmaxCrossEntropy()
            self.loss.bind(self.ops)
            self.optimizer = optimizer if optimizer is not None else Adam()
            self.optimizer.bind(self.store)
            self.last_output: Array | None = None
            self._input_buffer: Array | None = None
            #: The step :meth:`train_step` runs, installed by the caller (``mlp.steps.choose``):
            #: compiled, captured or eager; ``None`` until one is, which runs the eager step.
            self.step: Callable[[Array, Array], Array] | None = None

    @property
    def ops(self) -> backends.GenericOps:
        """The operations the model runs on: ``self.backend.ops``."""
        return self.backend.ops

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

    @on_device
    def forward(self, x: Array, train: bool = False) -> Array:
        """Outputs ``(N, sizes[-1])``: logits, or probabilities with ``output="softmax"``.

        The result is the caller's to keep (a copy where layers reuse buffers).
        """
        y = self.layers.forward(self._check_input(x), train=train)
        return self.xp.asarray(y, copy=True) if self.backend.ops.inplace else y

    @on_device
    def backward(self, grad_out: Array) -> None:
        """Back-propagate ``d loss / d output`` from the last :meth:`forward`, filling every
        layer's ``grads`` (and the store's flat gradient)."""
        self.layers.backward(grad_out)

    @on_device
    def train_step(self, x: Array, y: Array) -> Array:
        """Forward, loss, backward and one optimizer update on a batch; returns the batch
        loss as a 0-d array on the device (before the update).

        Shapes and dtypes of ``x`` and ``y`` are checked (integer labels or target rows); their
        values are not, since that is a pass over every batch and, on a GPU, a read-back per
        step. A NaN input need not make the loss NaN (ReLU maps it to 0 while the weights turn
        NaN) and a label outside ``[0, classes)`` adds nothing to the loss: check the data once
        beforehand, as :meth:`fit` and :meth:`evaluate` do once per call.

        It runs ``self.step``, the step the caller installed (:func:`mlp.steps.choose`:
        compiled on JAX, a CUDA graph), or else :meth:`eager_step`; all give the same numbers."""
        x = self._check_input(x, finite=False)
        return (self.step or self.eager_step)(x, y)

    def eager_step(self, x: Array, y: Array) -> Array:
        """The step as written: :meth:`gradients`, then one optimizer update; the batch loss
        (0-d, before the update), the outputs kept in ``last_output``. Inputs are not checked."""
        loss, self.last_output = self.gradients(x, y)
        self.optimizer.step()
        return loss

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
        out = self.layers.forward(self._check_input(x), train=False)
        loss = self.loss.forward(out, y)
        self.layers.backward(self.loss.backward())
        return loss, self.layers.named_grads()

    def fit(
        self,
        x: Any,
        y: Any,
        epochs: int = 1,
        batch_size: int = 128,
        validation: tuple[Any, Any] | None = None,
        callbacks: Sequence[Callable[[dict[str, Any]], None]] | None = None,
        seed: int | None = 0,
        progress: Callable[..., Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Train for ``epochs`` on shuffled mini-batches with the :class:`~mlp.train.Trainer`
        the command line uses; returns one metrics dict per epoch (``epoch``, ``train_loss``,
        ``train_acc``, ``seconds``, ``samples_per_s``, ``lr``, and with ``validation``
        ``test_loss``/``test_acc``).

        Args:
            x: ``(N, sizes[0])`` inputs, host NumPy or on the model's device: uint8 pixels
                (scaled by 1/255 batch by batch, the set itself stays uint8) or floats (cast
                to the model dtype, otherwise used as they are).
            y: ``(N,)`` integer class labels in ``[0, sizes[-1])``.
            epochs, batch_size: integers of at least 1.
            validation: ``(x, y)`` evaluated after every epoch.
            callbacks: each called with the epoch's metrics dict after every epoch.
            seed: seeds the shuffling.
            progress: a progress-bar factory (see :class:`~mlp.train.Trainer`), e.g. tqdm.

        Every set is checked once per call, before training: at least one row, no NaN or
        infinite input, every label in ``[0, sizes[-1])``.

        Raises:
            ValueError: a bad argument or set (the message names it).
            TypeError: inputs neither uint8 nor floating point, or labels not integers.
            mlp.errors.TrainingError: the loss became NaN or infinite.
        """
        from .train import DeviceData, Trainer

        epochs = count_argument("epochs", epochs)
        batch_size = count_argument("batch_size", batch_size)
        hooks = list(callbacks or [])

        def on_epoch(metrics: dict[str, Any]) -> None:
            for hook in hooks:
                hook(metrics)

        train = self._checked_set(DeviceData(self, x, y), "")
        test = None
        if validation is not None:
            test = self._checked_set(DeviceData(self, *validation), "validation ")
        trainer = Trainer(self, train, test, batch_size=batch_size,
                          epochs=epochs, seed=seed, on_epoch=on_epoch, progress=progress)
        return trainer.fit()

    @on_device
    def _checked_set(self, data: Any, which: str) -> Any:
        """``data`` (a :class:`~mlp.train.DeviceData`) once its rows, values and labels are
        checked: a few reductions and read-backs for the whole set; ``which`` prefixes the
        names in messages (``"validation "``)."""
        self._check_rows(data.x, f"{which}x")
        self._check_values(data.x, data.y, which)
        return data

    @on_device
    def predict(self, x: Any, batch_size: int = 4096) -> Array:
        """Predicted class indices ``(N,)`` on the device (inputs as for :meth:`fit`; at
        least one row, no NaN or infinity, checked once per call)."""
        xp = self.xp
        parts = [xp.argmax(out, axis=1) for out in self._outputs(x, batch_size)]
        return xp.concat(parts) if len(parts) > 1 else parts[0]

    @on_device
    def predict_proba(self, x: Any, batch_size: int = 4096) -> Array:
        """Class probabilities ``(N, C)`` in the model dtype on the device (rows sum to 1;
        inputs as for :meth:`fit`)."""
        xp = self.xp
        parts = [xp.asarray(out, copy=True) if self.output == "softmax"
                 else xp.exp(log_softmax(out, xp)) for out in self._outputs(x, batch_size)]
        return xp.concat(parts) if len(parts) > 1 else parts[0]

    def to_device(self, x: Any) -> Array:
        """``x`` as an array of the model's library: its own arrays pass through, host data
        (NumPy arrays, lists) is copied onto its device."""
        try:
            if array_namespace(x) is self.xp:
                return x
        except TypeError:
            pass
        return self.backend.asarray(x)

    def input_scale(self, dtype: Any) -> float:
        """The factor turning inputs of ``dtype`` into features (:func:`mlp.inputs.input_scale`)."""
        return input_scale(self.xp, dtype)

    def _outputs(self, x: Any, batch_size: int) -> Iterator[Array]:
        """The network's outputs on ``x``, batch by batch (each valid until the next)."""
        batch_size = count_argument("batch_size", batch_size)
        x = self.to_device(x)
        scale = None if x.dtype == self.dtype else self.input_scale(x.dtype)
        self._check_rows(x, "x")
        self._check_finite(x)
        for xb in self._batches(x, batch_size, scale):
            yield self.layers.forward(self._check_input(xb, finite=False))

    def _batches(self, x: Array, batch_size: int, scale: float | None) -> Iterator[Array]:
        """Row blocks of ``x``; with ``scale``, converted to ``x * scale`` in the model dtype
        into one reused buffer (each block valid until the next)."""
        n, ops = x.shape[0], self.backend.ops
        for i in range(0, n, batch_size):
            xb = x[i : min(i + batch_size, n), ...]  # the standard has no slices past the end
            if scale is not None:
                xb = ops.to_float(xb, scale, self.dtype, out=self._converted(xb.shape))
            yield xb

    def _converted(self, shape: tuple[int, ...]) -> Array | None:
        """A reusable ``shape`` buffer in the model dtype for converted inputs (``None``
        where the operations allocate per call); grown when a larger one is asked for."""
        if not self.backend.ops.inplace:
            return None
        buf = self._input_buffer
        if buf is None or buf.shape[0] < shape[0] or tuple(buf.shape[1:]) != tuple(shape[1:]):
            buf = self._input_buffer = self.backend.ops.buffer(tuple(shape), self.dtype)
        return buf[: shape[0], ...]

    @on_device
    def evaluate(
        self, x: Array, y: Array, batch_size: int = 4096, scale: float | None = None
    ) -> dict[str, float]:
        """Mean loss and accuracy (host floats) over ``x (N, D)`` and integer labels ``y (N,)``.

        With ``scale``, ``x`` holds raw integer features (e.g. uint8 pixels) that are converted
        batch by batch to ``x * scale`` in the model dtype, so the whole set is never copied.
        Checked once per call: at least one row, no NaN or infinity, labels ``(N,)`` integers
        in ``[0, sizes[-1])`` (``ValueError``; ``TypeError`` for labels that are no integers).
        """
        xp = self.xp
        batch_size = count_argument("batch_size", batch_size)
        self._check_rows(x, "x")
        n = x.shape[0]
        self._check_values(x, y)
        total_loss = xp.zeros((), dtype=self.dtype, device=self.backend.device)
        correct = xp.zeros((), dtype=xp.int64, device=self.backend.device)
        for i, xb in zip(range(0, n, batch_size), self._batches(x, batch_size, scale),
                         strict=True):
            yb = y[i : i + xb.shape[0]]
            out = self.layers.forward(self._check_input(xb, finite=False))
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
            self._check_finite(x)
        return x

    def _check_rows(self, x: Array, what: str) -> None:
        """``x`` is a 2-D set with at least one row."""
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"expected {what} of shape (N, {self.sizes[0]}), "
                             f"got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"{what} has 0 rows: at least one sample is needed")

    def _check_values(self, x: Array, y: Array, which: str = "") -> None:
        """No NaN or infinity in floating ``x`` and ``y`` holds ``x.shape[0]`` integer labels
        in ``[0, classes)``: one reduction and one read-back for both (per call of :meth:`fit`
        or :meth:`evaluate`, not per batch). ``which`` prefixes the names in messages."""
        xp, classes, n = self.xp, self.sizes[-1], x.shape[0]
        if tuple(y.shape) != (n,):
            raise ValueError(f"expected {which}labels of shape ({n},), got {tuple(y.shape)}")
        if not xp.isdtype(y.dtype, "integral"):
            raise TypeError(f"{which}labels must be integer class indices, not {y.dtype}")
        info = xp.iinfo(y.dtype)
        outside = xp.zeros(y.shape, dtype=xp.bool, device=self.backend.device)
        if info.min < 0:
            outside = xp.logical_or(outside, y < 0)
        if classes <= info.max:
            outside = xp.logical_or(outside, y >= classes)
        parts = [xp.sum(xp.astype(outside, xp.int64))]
        if xp.isdtype(x.dtype, "real floating"):
            parts.append(xp.sum(xp.astype(~xp.isfinite(x), xp.int64)))
        bad = [int(v) for v in self.backend.to_numpy(xp.stack(parts)).tolist()]
        if len(bad) > 1 and bad[1]:
            raise ValueError(f"{which}inputs hold {bad[1]} NaN or infinite value(s) of "
                             f"{x.shape[0] * x.shape[1]}; clean or impute them first")
        if bad[0]:
            low, high = (int(v) for v in self.backend.to_numpy(
                xp.stack([xp.min(y), xp.max(y)])).tolist())
            raise ValueError(f"{which}labels must be class indices in [0, {classes}): "
                             f"{bad[0]} of {n} are not (values from {low} to {high})")

    def _check_finite(self, x: Array) -> None:
        """No NaN or infinity in floating ``x``: one reduction and one read-back per call (so
        per call of :meth:`predict`, not per batch)."""
        xp = self.xp
        if not xp.isdtype(x.dtype, "real floating"):
            return
        bad = int(self.backend.to_numpy(xp.sum(xp.astype(~xp.isfinite(x), xp.int64))))
        if bad:
            raise ValueError(f"inputs hold {bad} NaN or infinite value(s) of "
                             f"{x.shape[0] * x.shape[1]}; clean or impute them first")

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


def parameter_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every parameter of ``MLP(**config)``, without allocating arrays."""
    layers = build_layers(**{k: v for k, v in config.items() if k != "dtype"})
    return {f"{i}.{key}": shape for i, layer in enumerate(layers)
            for key, shape in layer.param_shapes().items()}
