"""The epoch peers: the same training epoch written the way users of other libraries write it.

* :func:`torch_users_epoch` — PyTorch as its users write it: the whole training set converted to
  a float32 tensor once, batches indexed from it (``X[idx]``), ``torch.nn`` + autograd +
  ``torch.optim.Adam``.
* :func:`torch_uint8_epoch` — PyTorch doing our exact work: each batch gathered from the uint8
  set and converted to float / 255 (:meth:`benchmarks.workloads.TorchPeer.epoch`).
* :class:`JaxPeer` — JAX with a ``jax.jit``-compiled train step (``jax.grad`` and Adam written
  out), batches indexed from a float32 array converted once. Optional: ``pip install jax``.

Each epoch function returns ``(seconds, mean loss)``; the time covers the batch loop only (the
permutation is drawn before it, as :class:`mlp.train.Trainer` does).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy

from .workloads import EPOCH_LR, TorchPeer, layer_shapes

#: How to install the optional JAX peer (CPU build; several hundred MB, so not in any extra).
JAX_INSTALL = "pip install jax"


def torch_users_epoch(peer: TorchPeer, x: Any, y: Any, batch: int, generator: Any) -> tuple[
        float, float]:
    """One shuffled epoch over float32 ``x (N, D)`` (already / 255) and int64 ``y (N,)``."""
    n = x.shape[0]
    perm = peer.torch.randperm(n, generator=generator)
    start = time.perf_counter()
    mean_loss, _ = peer.train(((x[idx], y[idx])
                               for idx in (perm[i : i + batch] for i in range(0, n, batch))), n)
    return time.perf_counter() - start, mean_loss


def torch_uint8_epoch(peer: TorchPeer, images: Any, labels: Any, batch: int,
                      generator: Any) -> tuple[float, float]:
    """One shuffled epoch gathering uint8 batches and converting each (our exact work)."""
    start = time.perf_counter()
    loss, _ = peer.epoch(images, labels, batch, generator)
    return time.perf_counter() - start, loss


class JaxPeer:
    """The MLP in JAX: He-initialised weights, ReLU, softmax cross-entropy, Adam, one jitted
    step ``(params, m, v, t, x, y) -> (params, m, v, loss)`` with the state buffers donated."""

    def __init__(self, sizes: Sequence[int], lr: float = EPOCH_LR, seed: int = 0) -> None:
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        rng = numpy.random.default_rng(seed)
        params = []
        for n_in, n_out in layer_shapes(sizes):
            w = rng.standard_normal((n_in, n_out)) * numpy.sqrt(2.0 / n_in)
            params.append((jnp.asarray(w, jnp.float32), jnp.zeros(n_out, jnp.float32)))
        self.params = params
        self.m = jax.tree_util.tree_map(jnp.zeros_like, params)
        self.v = jax.tree_util.tree_map(jnp.zeros_like, params)
        self.t = 0
        b1, b2, eps = 0.9, 0.999, 1e-8

        def loss_fn(params: Any, x: Any, y: Any) -> Any:
            h = x
            for w, b in params[:-1]:
                h = jax.nn.relu(h @ w + b)
            w, b = params[-1]
            logp = jax.nn.log_softmax(h @ w + b)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        def step(params: Any, m: Any, v: Any, t: Any, x: Any, y: Any) -> Any:
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            m = jax.tree_util.tree_map(lambda a, g: b1 * a + (1 - b1) * g, m, grads)
            v = jax.tree_util.tree_map(lambda a, g: b2 * a + (1 - b2) * g * g, v, grads)
            size = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
            params = jax.tree_util.tree_map(
                lambda p, a, s: p - size * a / (jnp.sqrt(s) + eps * jnp.sqrt(1 - b2**t)),
                params, m, v)
            return params, m, v, loss

        self.step = jax.jit(step, donate_argnums=(0, 1, 2))

    def epoch(self, x: Any, y: Any, batch: int, rng: numpy.random.Generator) -> tuple[
            float, float]:
        """One shuffled epoch over float32 ``x (N, D)`` and int32 ``y (N,)`` on the device;
        returns ``(seconds, mean loss)``."""
        jnp = self.jnp
        n = x.shape[0]
        perm = rng.permutation(n)
        loss_sum = jnp.zeros((), jnp.float32)
        start = time.perf_counter()
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            self.t += 1
            self.params, self.m, self.v, loss = self.step(
                self.params, self.m, self.v, jnp.float32(self.t), x[idx], y[idx])
            loss_sum = loss_sum + loss * idx.shape[0]
        mean_loss = float(loss_sum) / n
        return time.perf_counter() - start, mean_loss
