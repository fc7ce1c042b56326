"""The captured training step (:mod:`mlp.steps.captured`): the same numbers as the eager step.

On a CPU the capture is emulated: ``capture(fn)`` runs ``fn`` once (the step then undoes it,
as it must where a capture runs the work) and every replay runs it again, writing its results
into the arrays the first run returned, as a replayed graph writes into its own. That checks
everything but the recording itself: the fed inputs and per-step scalars, the copy-back of
parameters and optimizer state, one graph per batch shape, recapturing after the arrays are
replaced. The ``gpu`` test captures a real CUDA graph with PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from optimizer_support import SoftSign

import backends
from mlp import MLP, SGD, Adam, AdamW, Optimizer
from mlp.schedules import Cosine
from mlp.steps import choose

SIZES = [12, 16, 16, 4]


class StepOnly(SGD):
    """An optimizer written the old way: its own ``step``, no update rule."""

    update = Optimizer.update

    def step(self) -> None:
        self.steps += 1


def _emulated_capture(calls: list[int]) -> Any:
    def capture(fn: Any) -> tuple[Any, Any]:
        calls.append(1)
        # NumPy returns a 0-d result as a scalar; a graph's results are arrays.
        result = tuple(np.array(r) if isinstance(r, np.generic) else r for r in fn())

        def replay() -> None:
            for kept, fresh in zip(result, fn(), strict=True):
                kept[...] = fresh

        return replay, result

    return capture


def _capturing(backend: backends.Backend, calls: list[int]) -> backends.Backend:
    """``backend`` with the emulated capture."""
    clone = backend.with_ops(backend.ops)
    clone._capture = _emulated_capture(calls)
    return clone


OPTIMIZERS = {
    "adam-cosine": lambda: Adam(3e-3, schedule=Cosine(20)),
    "adamw": lambda: AdamW(3e-3, weight_decay=0.1),
    "sgd-nesterov": lambda: SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "sgd": lambda: SGD(0.05),
    "users-own": lambda: SoftSign(3e-3),
}


def _batches(backend: backends.Backend, dtype: str) -> list[tuple[Any, Any]]:
    rng = np.random.default_rng(0)
    out = []
    for n in (8, 8, 8, 5, 8, 8, 5, 8):  # a smaller batch captures a second graph
        out.append((backend.asarray(rng.standard_normal((n, SIZES[0])), dtype),
                    backend.asarray(rng.integers(0, SIZES[-1], n))))
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_a_replayed_step_gives_the_eager_numbers(name, optimizer, dtype, get_backend):
    base = get_backend(name)
    calls: list[int] = []
    backend = _capturing(base, calls)
    kwargs = dict(sizes=SIZES, dtype=dtype, seed=1, fast=False)
    eager = MLP(**kwargs, backend=base, optimizer=OPTIMIZERS[optimizer]())
    graph = MLP(**kwargs, backend=backend, optimizer=OPTIMIZERS[optimizer]())
    choose(graph, cuda_graph=True)
    to_numpy = base.to_numpy
    for i, (x, y) in enumerate(_batches(base, dtype)):
        want, want_out = eager.eager_step(x, y)
        got, got_out = graph.step(x, y)
        assert float(to_numpy(got)) == float(to_numpy(want)), f"loss at step {i}"
        np.testing.assert_array_equal(to_numpy(got_out), to_numpy(want_out))
        np.testing.assert_array_equal(to_numpy(graph.store.flat), to_numpy(eager.store.flat),
                                      err_msg=f"parameters after step {i}")
    for k, v in eager.optimizer.state().items():
        np.testing.assert_array_equal(to_numpy(graph.optimizer.state()[k]), to_numpy(v))
    assert graph.optimizer.steps == eager.optimizer.steps == 8
    assert len(calls) == 2  # batches of 8 and of 5; the first step ran eagerly
    assert (graph.step.captures, graph.step.replays) == (2, 7)


def test_replacing_the_parameters_captures_again(get_backend):
    base = get_backend("numpy")
    calls: list[int] = []
    graph = MLP(SIZES, backend=_capturing(base, calls), fast=False)
    choose(graph, cuda_graph=True)
    eager = MLP(SIZES, backend=base, fast=False)
    batches = _batches(base, "float32")
    for x, y in batches[:3]:
        graph.train_step(x, y)
        eager.train_step(x, y)
    fresh = MLP(SIZES, backend=base, fast=False, seed=5)
    graph.load_state_dict(fresh.state_dict())
    eager.load_state_dict(fresh.state_dict())
    for x, y in batches[:3]:
        graph.train_step(x, y)
        eager.train_step(x, y)
    np.testing.assert_array_equal(graph.store.flat, eager.store.flat)
    assert len(calls) == 2
    assert (graph.step.captures, graph.step.replays) == (2, 5)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"dropout": 0.2}, "does not support dropout"),
        ({"optimizer": StepOnly(0.1)}, "StepOnly defines none"),
    ],
)
def test_what_cannot_be_captured_is_refused(kwargs, reason, get_backend):
    backend = _capturing(get_backend("numpy"), [])
    with pytest.raises(ValueError, match=reason):
        choose(MLP(SIZES, backend=backend, **kwargs), cuda_graph=True)


def test_backends_without_graphs_say_so(get_backend):
    with pytest.raises(ValueError, match="has no CUDA graphs; use --backend torch --device cuda"):
        choose(MLP(SIZES, backend=get_backend("numpy")), cuda_graph=True)


def test_a_backend_that_cannot_capture_now_says_why(get_backend):
    backend = _capturing(get_backend("numpy"), [])
    backend._capture_check = lambda: "the direct products are unavailable (OSError: none)"
    with pytest.raises(ValueError, match=r"CUDA graph: the direct products are unavailable"):
        choose(MLP(SIZES, backend=backend), cuda_graph=True)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("library", ["torch:cuda", "cupy"])
def test_a_cuda_graph_replays_the_eager_step_bit_for_bit(library, optimizer, dtype,
                                                         get_backend):
    """A real CUDA graph (PyTorch on CUDA, CuPy) against the eager step on the same device."""
    base = get_backend(library)
    kwargs = dict(sizes=[784, 256, 256, 10], dtype=dtype, seed=1, backend=base)
    eager = MLP(**kwargs, optimizer=OPTIMIZERS[optimizer]())
    graph = MLP(**kwargs, optimizer=OPTIMIZERS[optimizer]())
    choose(graph, cuda_graph=True)
    rng = np.random.default_rng(0)
    for i, n in enumerate((128, 128, 128, 96, 128, 96, 128)):
        x = base.asarray(rng.random((n, 784)), dtype)
        y = base.asarray(rng.integers(0, 10, n))
        want = float(base.to_numpy(eager.train_step(x, y)))
        got = float(base.to_numpy(graph.train_step(x, y)))
        assert got == want, f"loss at step {i}"
        np.testing.assert_array_equal(base.to_numpy(graph.store.flat),
                                      base.to_numpy(eager.store.flat),
                                      err_msg=f"parameters after step {i}")
    # The first step ran eagerly; batches of 128 and of 96 captured one graph each.
    assert (graph.step.captures, graph.step.replays) == (2, 6)


@pytest.mark.gpu
def test_cupy_without_its_direct_products_refuses_graphs_saying_why(get_backend, monkeypatch):
    ops = get_backend("cupy").ops
    monkeypatch.setattr(ops, "_gemm", None)
    monkeypatch.setattr(ops, "gemm_failure", "OSError: no libcublas.so")
    with pytest.raises(ValueError, match=r"direct cuBLAS matrix products are unavailable "
                       r"\(OSError: no libcublas.so\), and CuPy does not allow its own"):
        choose(MLP(SIZES, backend=get_backend("cupy")), cuda_graph=True)
