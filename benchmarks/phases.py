"""Where one training step's time goes: the step written out phase by phase with the model's own
objects (its parameters and gradient views, its backend operations, loss and optimizer), each
phase timed inside a sequence of real steps so that caches hold what they hold in training.

Needs a backend whose operations write in place (``model.ops.inplace``, e.g. NumPy): the
gradients are written into the model's gradient views, so the optimizer updates from them exactly
as :meth:`mlp.MLP.train_step` would. The model must be ``Linear -> ReLU -> ... -> Linear`` with
biases and the default :class:`~mlp.losses.SoftmaxCrossEntropy`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mlp import MLP
from mlp.layers import Linear

#: The phases, in the order a step runs them.
PHASES = (
    "batch gather + convert",
    "forward GEMMs",
    "bias + ReLU",
    "loss (softmax-CE forward + backward)",
    "backward GEMMs",
    "ReLU backward + bias gradients",
    "optimizer update",
    "bookkeeping (accuracy, loss read)",
)
#: The whole step as the library runs it (:meth:`mlp.MLP.train_step` and the trainer's
#: bookkeeping), timed in blocks alternating with the phase-by-phase steps.
STEP = "whole step (train_step + bookkeeping)"
GATHER, FWD_GEMM, BIAS_RELU, LOSS, BWD_GEMM, RELU_BWD, OPTIMIZER, BOOKKEEPING = PHASES


class _Clock:
    """Accumulates ``perf_counter`` time per phase: ``lap(name)`` charges the time since the
    previous lap to ``name``."""

    def __init__(self) -> None:
        self.totals = dict.fromkeys(PHASES, 0.0)
        self.last = time.perf_counter()

    def start(self) -> None:
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.totals[name] += now - self.last
        self.last = now


def _check(model: MLP) -> list[Linear]:
    if not model.ops.inplace:
        raise ValueError("the phase breakdown needs a backend with in-place operations (numpy)")
    linears = [layer for layer in model.layers if isinstance(layer, Linear)]
    kinds = [type(layer).__name__ for layer in model.layers]
    expected = ["Linear", "ReLU"] * (len(linears) - 1) + ["Linear"]
    if kinds != expected or not all(layer.bias for layer in linears):
        raise ValueError(f"the phase breakdown times Linear/ReLU stacks with biases, got {kinds}")
    return linears


def breakdown(model: MLP, images: Any, labels: Any, batch: int, steps: int,
              blocks: int = 5, scale: float = 1.0 / 255.0) -> dict[str, float]:
    """Seconds per step of each of :data:`PHASES`, and of :data:`STEP`.

    ``images (N, D)`` uint8 and ``labels (N,)`` int64 on the model's device; ``blocks`` times
    ``steps`` steps of each kind run alternately (phase by phase, then whole), each block on
    consecutive batches of a fixed random order. Each figure is the median over blocks.
    """
    linears = _check(model)
    ops, xp, dtype = model.ops, model.xp, model.dtype
    n_rows = int(images.shape[0])
    order = model.backend.asarray(model.backend.permutation(model.backend.rng(0), n_rows))
    widths = model.sizes
    buf = ops.buffer
    raw, xb, yb = buf((batch, widths[0]), images.dtype), buf((batch, widths[0]), dtype), \
        buf((batch,), labels.dtype)
    pre = [buf((batch, w), dtype) for w in widths[1:]]  # x @ W (+ b), per layer
    act = [buf((batch, w), dtype) for w in widths[1:-1]]  # ReLU outputs
    dact = [buf((batch, w), dtype) for w in widths[1:-1]]  # gradient at a ReLU's output
    dpre = [buf((batch, w), dtype) for w in widths[1:-1]]  # gradient at a ReLU's input

    def indices(b: int) -> Any:
        start = (b * batch) % (n_rows - batch + 1)
        return order[start : start + batch]

    def gather(idx: Any) -> tuple[Any, Any]:
        x = ops.to_float(ops.take_rows(images, idx, out=raw), scale, dtype, out=xb)
        return x, ops.take_rows(labels, idx, out=yb)

    def bookkeeping(out: Any, y: Any, loss: Any) -> None:
        hits = xp.sum(xp.astype(xp.argmax(out, axis=1) == y, xp.int64))
        float(model.backend.to_numpy(loss * float(batch)))
        int(model.backend.to_numpy(hits))

    def phased_step(b: int, clock: _Clock) -> None:
        clock.start()
        x, y = gather(indices(b))
        clock.lap(GATHER)
        inputs = [x]
        for i, layer in enumerate(linears):
            z = ops.matmul(inputs[-1], layer.params["W"], out=pre[i])
            clock.lap(FWD_GEMM)
            if i < len(act):  # a hidden layer: bias and ReLU in one pass, as Linear does
                inputs.append(ops.bias_relu(z, layer.params["b"], out=act[i]))
            else:
                z = ops.add(z, layer.params["b"], out=pre[i])
            clock.lap(BIAS_RELU)
        loss = model.loss.forward(z, y)
        g = model.loss.backward()
        clock.lap(LOSS)
        for i in reversed(range(len(linears))):
            layer = linears[i]
            ops.matmul(inputs[i].T, g, out=layer.grads["W"])
            clock.lap(BWD_GEMM)
            if i == len(linears) - 1:  # the hidden layers' bias gradients come with ReLU's
                ops.sum_rows(g, out=layer.grads["b"])
                clock.lap(RELU_BWD)
            if i == 0:
                break
            dh = ops.matmul(g, layer.params["W"].T, out=dact[i - 1])
            clock.lap(BWD_GEMM)
            g, _ = ops.relu_grad_sum(dh, inputs[i], out=dpre[i - 1],
                                     sums=linears[i - 1].grads["b"])
            clock.lap(RELU_BWD)
        model.optimizer.step()
        clock.lap(OPTIMIZER)
        bookkeeping(z, y, loss)
        clock.lap(BOOKKEEPING)

    def whole_step(b: int) -> None:
        x, y = gather(indices(b))
        loss, out = model.eager_step(x, y)  # train_step's own step, returning the outputs
        bookkeeping(out, y, loss)

    per_phase: dict[str, list[float]] = {name: [] for name in (*PHASES, STEP)}
    step_no = 0

    def block(run: Callable[[int], None]) -> float:
        nonlocal step_no
        start = time.perf_counter()
        for _ in range(steps):
            run(step_no)
            step_no += 1
        model.backend.synchronize()
        return (time.perf_counter() - start) / steps

    for _ in range(2):  # warm-up: buffers, caches, compiled kernels
        phased_step(step_no, _Clock())
        whole_step(step_no)
        step_no += 1
    for _ in range(blocks):
        clock = _Clock()
        block(lambda b, clock=clock: phased_step(b, clock))
        for name, total in clock.totals.items():
            per_phase[name].append(total / steps)
        per_phase[STEP].append(block(whole_step))
    return {name: sorted(values)[len(values) // 2] for name, values in per_phase.items()}
