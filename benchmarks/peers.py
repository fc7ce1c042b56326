"""The epoch peers: the same training epoch written the way users of other libraries write it.

* :func:`torch_users_epoch` — PyTorch as its users write it: the whole training set converted to
  a float32 tensor once, batches indexed from it (``X[idx]``), ``torch.nn`` + autograd +
  ``torch.optim.Adam``.
* :func:`torch_uint8_epoch` — PyTorch doing our exact work: each batch gathered from the uint8
  set and converted to float / 255 (:meth:`benchmarks.workloads.TorchPeer.epoch`).
* :class:`benchmarks.jax_peer.JaxPeer` — JAX with a ``jax.jit``-compiled train step
  (``jax.value_and_grad`` and Adam written out) that gathers its batch from the float32 set,
  converted once, inside the step (:meth:`~benchmarks.jax_peer.JaxPeer.epoch`). Optional:
  ``pip install jax``.

Each epoch function returns ``(seconds, mean loss)``; the time covers the batch loop only. The
permutation is the caller's, drawn before (:func:`benchmarks.workloads.permutation`, the one
:class:`mlp.train.Trainer` draws), so a peer started from our initial weights
(:func:`benchmarks.workloads.initial_params`) trains on the same batches as we do and its
losses follow ours within float32 noise.
"""

from __future__ import annotations

import time
from typing import Any

from .workloads import TorchPeer

#: How to install the optional JAX peer (CPU build; several hundred MB, so not in any extra).
JAX_INSTALL = "pip install jax"


def torch_users_epoch(peer: TorchPeer, x: Any, y: Any, batch: int, perm: Any) -> tuple[
        float, float]:
    """One epoch over float32 ``x (N, D)`` (already / 255) and int64 ``y (N,)`` in the order of
    the int64 tensor ``perm``."""
    n = x.shape[0]
    start = time.perf_counter()
    mean_loss, _ = peer.train(((x[idx], y[idx])
                               for idx in (perm[i : i + batch] for i in range(0, n, batch))), n)
    return time.perf_counter() - start, mean_loss


def torch_uint8_epoch(peer: TorchPeer, images: Any, labels: Any, batch: int,
                      perm: Any) -> tuple[float, float]:
    """One epoch gathering uint8 batches in the order of ``perm`` and converting each (our
    exact work)."""
    start = time.perf_counter()
    loss, _ = peer.epoch(images, labels, batch, perm)
    return time.perf_counter() - start, loss
