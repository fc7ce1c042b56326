"""The architecture of an :class:`~mlp.MLP`: the layers its sizes and options describe, and
the names and shapes of their parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import backends

from .layers import ACTIVATIONS, Dropout, Layer, Linear, Softmax

OUTPUTS = ("logits", "softmax")


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
    """The unbuilt layers of a network ``sizes[0] -> ... -> sizes[-1]``.

    Each hidden layer is ``Linear -> activation [-> Dropout]``; the last is ``Linear``, followed
    by a :class:`~mlp.layers.Softmax` when ``output="softmax"`` (pair it with
    :class:`~mlp.losses.CrossEntropy`, as the notebook did; the default ``"logits"`` pairs with
    the fused :class:`~mlp.losses.SoftmaxCrossEntropy`).

    Args:
        sizes: layer widths, inputs first, e.g. ``[784, 512, 512, 10]``.
        activation: one of ``relu``, ``leaky_relu``, ``sigmoid``, ``tanh``, ``gelu``,
            ``identity``.
        dropout: drop rate after each hidden activation (0 for none).
        init: ``he``, ``glorot`` or ``normal`` (see :class:`~mlp.layers.Linear`); default
            ``he`` for ReLU-like activations, ``glorot`` otherwise.
        bias, output_bias: biases on the hidden layers and on the output layer (default: as
            ``bias``).
        output: ``"logits"`` or ``"softmax"``.
        rng: the dropout layers' generator; ``ops``: the operations every layer runs on
            (``None``: portable code); ``backend`` and ``host_masks``: where dropout draws its
            masks (see :class:`~mlp.layers.Dropout`).

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


def parameter_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every parameter of ``MLP(**config)``, without allocating arrays."""
    layers = build_layers(**{k: v for k, v in config.items() if k != "dtype"})
    return {f"{i}.{key}": shape for i, layer in enumerate(layers)
            for key, shape in layer.param_shapes().items()}
