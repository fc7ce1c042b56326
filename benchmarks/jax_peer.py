"""JAX rows for the benchmark report: our step on JAX, eager and compiled, beside the JAX-written
peer, the same MLP the idiomatic JAX way (``jax.grad`` of a ``jax.numpy`` loss, Adam written
out, the whole step under ``jax.jit``).

Each figure is the time of one training step (forward, loss, backward, Adam update) on a
fixed batch: the median over rounds, in which the three take turns, of the mean over a few
synchronised steps, after warm-up steps that include the compilation. Run
``python -m benchmarks.jax_peer`` for a Markdown table; :func:`measure` gives the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy

from .workloads import BENCH_LR, SIZES, layer_shapes


class JaxPeer:
    """The MLP written for JAX: ``(W, b)`` pairs, ReLU, mean softmax cross-entropy,
    ``jax.value_and_grad`` and Adam (PyTorch's defaults) in one ``jax.jit``-compiled step that
    donates the parameters and Adam's state to their successors, as our compiled step does.

    ``params`` (host arrays by name, as ``MLP.state_dict()`` gives them) sets the initial
    weights, so the peer and our model can start from the same point. :meth:`step` trains on a
    given batch (the per-step rows); :meth:`epoch` is the epoch contest's peer.
    """

    def __init__(self, sizes: Sequence[int], dtype: str, device: Any = None,
                 lr: float = BENCH_LR, params: dict[str, numpy.ndarray] | None = None,
                 seed: int = 0) -> None:
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.device = device if device is not None else jax.devices("cpu")[0]
        self.dtype = jnp.dtype(dtype)
        rng = numpy.random.default_rng(seed)
        layers = []
        for i, (n_in, n_out) in enumerate(layer_shapes(sizes)):
            w = (params[f"{2 * i}.W"] if params else
                 rng.standard_normal((n_in, n_out)) * numpy.sqrt(2.0 / n_in))
            b = params[f"{2 * i}.b"] if params else numpy.zeros(n_out)
            layers.append((self._put(w), self._put(b)))
        self.params = layers
        m, v = (jax.tree_util.tree_map(jnp.zeros_like, layers) for _ in range(2))
        self.state = (m, v, jnp.zeros((), dtype=jnp.int32, device=self.device))
        beta1, beta2, eps = 0.9, 0.999, 1e-8

        def loss_fn(params: Any, x: Any, y: Any) -> Any:
            h = x
            for i, (w, b) in enumerate(params):
                h = h @ w + b
                if i < len(params) - 1:
                    h = jax.nn.relu(h)
            logp = jax.nn.log_softmax(h, axis=1)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        def step(params: Any, state: Any, x: Any, y: Any) -> tuple[Any, Any, Any]:
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            m, v, t = state
            t = t + 1
            m = jax.tree_util.tree_map(lambda m, g: beta1 * m + (1 - beta1) * g, m, grads)
            v = jax.tree_util.tree_map(lambda v, g: beta2 * v + (1 - beta2) * g * g, v, grads)
            tf = t.astype(self.dtype)
            c1, c2 = 1 - beta1**tf, 1 - beta2**tf
            params = jax.tree_util.tree_map(
                lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), params, m, v)
            return params, (m, v, t), loss

        def gather_step(params: Any, state: Any, x_all: Any, y_all: Any,
                        idx: Any) -> tuple[Any, Any, Any]:
            # The batch is gathered inside the compiled step, as JAX users write it.
            return step(params, state, x_all[idx], y_all[idx])

        self._step = jax.jit(step, donate_argnums=(0, 1))
        self._gather_step = jax.jit(gather_step, donate_argnums=(0, 1))

    def _put(self, host: Any) -> Any:
        return self.jnp.asarray(numpy.asarray(host, dtype=self.dtype), device=self.device)

    def step(self, x: Any, y: Any) -> Any:
        """One training step; returns the loss (before the update)."""
        self.params, self.state, loss = self._step(self.params, self.state, x, y)
        return loss

    def synchronize(self) -> None:
        self.jax.block_until_ready((self.params, self.state))

    def epoch(self, x: Any, y: Any, batch: int, perm: numpy.ndarray) -> tuple[float, float]:
        """One epoch over the whole set ``x (N, D)`` (float, already / 255) and int32 ``y (N,)``
        on the device, in the order of the host permutation ``perm``: each jitted step gathers
        its batch from ``x`` and ``y``. The batch indices go to the device before the timed
        loop. Returns ``(seconds, mean loss)``."""
        jnp = self.jnp
        n = x.shape[0]
        batches = [jnp.asarray(perm[i : i + batch], dtype=jnp.int32, device=self.device)
                   for i in range(0, n, batch)]
        loss_sum = jnp.zeros((), dtype=self.dtype, device=self.device)
        start = time.perf_counter()
        for idx in batches:
            self.params, self.state, loss = self._gather_step(self.params, self.state, x, y, idx)
            loss_sum = loss_sum + loss * idx.shape[0]
        mean_loss = float(loss_sum) / n
        return time.perf_counter() - start, mean_loss


def _interleaved(steppers: dict[str, tuple[Callable[[], Any], Callable[[], None]]],
                 rounds: int, steps: int, warmup: int) -> dict[str, float]:
    """Median over ``rounds`` of each stepper's mean seconds per step over ``steps`` steps.

    The steppers take turns round by round, so a busy machine slows them alike."""
    for step, sync in steppers.values():
        for _ in range(warmup):
            step()
        sync()
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(rounds):
        for name, (step, sync) in steppers.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            sync()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def measure(size: str = "784-512-512-10", batch: int = 128, dtype: str = "float32",
            rounds: int = 15, steps: int = 10, warmup: int = 5) -> dict[str, float]:
    """Seconds per training step of our model on JAX eager and compiled, and of
    :class:`JaxPeer`, from the same initial weights on the same batch; with the ratios
    ``jit_x_peer`` and ``eager_x_peer``."""
    from mlp import MLP, Adam
    from mlp.steps import choose

    sizes = SIZES[size]
    rng = numpy.random.default_rng(0)
    x_host = rng.random((batch, sizes[0]))
    y_host = rng.integers(0, sizes[-1], batch)
    steppers = {}
    for name, jit in (("eager", False), ("jit", True)):
        model = MLP(sizes, backend="jax", dtype=dtype, optimizer=Adam(BENCH_LR))
        choose(model, jit=jit)
        x, y = model.backend.asarray(x_host, dtype), model.backend.asarray(y_host)
        steppers[name] = (lambda m=model, x=x, y=y: m.train_step(x, y),
                          model.backend.synchronize)
    initial = MLP(sizes, backend="numpy", dtype=dtype).state_dict()  # the models' own start
    peer = JaxPeer(sizes, dtype, lr=BENCH_LR, params=initial)
    px, py = peer._put(x_host), peer.jnp.asarray(y_host, device=peer.device)
    steppers["peer"] = (lambda: peer.step(px, py), peer.synchronize)
    eager = steppers.pop("eager")
    out = _interleaved(steppers, rounds, steps, warmup)  # the compared pair, side by side
    out.update(_interleaved({"eager": eager}, max(3, rounds // 5), steps, warmup))
    out["jit_x_peer"] = out["jit"] / out["peer"]
    out["eager_x_peer"] = out["eager"] / out["peer"]
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="784-100-10,784-512-512-10")
    parser.add_argument("--batches", default="128,1024")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    print("| size | batch | dtype | eager ms | jit ms | jax.grad peer ms | jit / peer |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        for batch in map(int, args.batches.split(",")):
            r = measure(size, batch, args.dtype, args.rounds)
            print(f"| {size} | {batch} | {args.dtype} | {1e3 * r['eager']:.2f} | "
                  f"{1e3 * r['jit']:.2f} | {1e3 * r['peer']:.2f} | {r['jit_x_peer']:.2f}x |")


if __name__ == "__main__":
    main()
