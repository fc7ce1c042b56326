"""The fused operations: each fast path gives the portable path's numbers bit for bit, and a
model trained on the fast paths matches one trained on the portable code."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from backends import GenericOps, kernels
from backends.inplace_ops import InplaceOps
from mlp import MLP, SGD, Adam, AdamW

DTYPES = ["float32", "float64"]


@pytest.fixture(params=["numba", "numpy"])
def fast_ops(request, numpy_backend) -> InplaceOps:
    """The NumPy backend's in-place operations, with the Numba loops and without."""
    if request.param == "numba" and not kernels.available():
        pytest.skip("the Numba kernels need numba (pip install '.[numba]')")
    ops = InplaceOps(numpy_backend.xp, np, kernels=request.param == "numba")
    assert (ops.kernels is not None) == (request.param == "numba")
    return ops


def _awkward(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Random values with the cases rounding and masking get wrong: signed zeros, NaN, ±inf,
    subnormals and huge magnitudes."""
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    info = np.finfo(dtype)
    specials = [0.0, -0.0, np.nan, np.inf, -np.inf, info.smallest_subnormal, -info.max]
    flat[: len(specials)] = specials
    return x


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_equals_generic(fast_ops, dtype, numpy_backend):
    x = _awkward((33, 17), dtype)
    u = np.random.default_rng(1).random(x.shape)
    generic = GenericOps(numpy_backend.xp)
    for rate in (0.0, 0.3, 0.5):
        with np.errstate(over="ignore"):  # -max / (1 - rate) overflows, on both paths alike
            expected = generic.dropout(x, u, rate)
            out = np.full_like(x, 7)
            got = fast_ops.dropout(x, u, rate, out=out)
        assert got is out and got.dtype == expected.dtype
        assert_array_equal(got, expected)
        assert_array_equal(np.signbit(got), np.signbit(expected))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_on_the_fast_path_drops_the_units_the_generator_gives(dtype, numpy_backend):
    """The reused-buffer draw is ``rng.random(shape) >= rate``, the host mask of every backend,
    and a dropout model trains to the same numbers on the fast and the portable operations."""
    x = np.random.default_rng(0).random((16, 12)).astype(dtype)
    y = np.random.default_rng(1).integers(0, 3, 16)
    kwargs = dict(sizes=[12, 9, 7, 3], dropout=0.4, dtype=dtype, seed=3, backend=numpy_backend)
    fast, portable = MLP(**kwargs), MLP(**kwargs, fast=False)
    assert fast.ops.inplace and not portable.ops.inplace
    for _ in range(3):
        assert_array_equal(fast.train_step(x, y), portable.train_step(x, y))
    assert_array_equal(fast.store.flat, portable.store.flat)
    layer = fast.layers[2]
    keep = np.random.default_rng(9).random(layer._u.shape) >= layer.rate
    layer.rng = np.random.default_rng(9)
    h = np.ones(layer._u.shape, dtype)
    assert_array_equal(layer.forward(h, train=True) != 0, keep)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 128, 257])
def test_bias_relu_and_its_backward_equal_generic(fast_ops, dtype, n, numpy_backend):
    generic = GenericOps(numpy_backend.xp)
    x, g = _awkward((n, 40), dtype, seed=n), _awkward((n, 40), dtype, seed=n + 1)
    b = np.random.default_rng(2).standard_normal(40).astype(dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, NaN: alike on both paths
        y = fast_ops.bias_relu(x, b, out=np.empty_like(x))
        assert_array_equal(y, generic.bias_relu(x, b))
        d, s = fast_ops.relu_grad_sum(g, y, out=np.empty_like(g), sums=np.empty(40, dtype))
        d_ref, s_ref = generic.relu_grad_sum(g, y)
    assert_array_equal(d, d_ref)
    assert_array_equal(s, s_ref)  # the same additions in the same order: equal, not close


def test_a_sequential_fuses_linear_relu_to_the_same_numbers(numpy_backend):
    from mlp.layers import Linear, ReLU, Sequential

    ops = numpy_backend.ops
    x = np.random.default_rng(0).standard_normal((9, 6))
    g = np.random.default_rng(1).standard_normal((9, 4))

    def chain():
        layers = [Linear(6, 5, init="normal", std=0.7, ops=ops), ReLU(ops=ops),
                  Linear(5, 4, init="normal", std=0.7, ops=ops)]
        for layer in layers:
            layer.build(numpy_backend, np.random.default_rng(3), "float64")
        return layers

    layers, apart = chain(), chain()
    net = Sequential(layers)
    assert net._fused(0) and not net._fused(1)
    y, dx = net.forward(x, train=True).copy(), net.backward(g).copy()
    h = x
    for layer in apart:
        h = layer.forward(h, train=True)
    assert_array_equal(y, h)
    for layer in reversed(apart):
        g = layer.backward(g)
    assert_array_equal(dx, g)
    for a, b in zip(layers, apart, strict=True):
        for name in a.grads:
            assert_array_equal(a.grads[name], b.grads[name])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy_equals_generic(fast_ops, dtype, smoothing, numpy_backend):
    from backends.ops import Buffers
    from mlp.losses import SoftmaxCrossEntropy

    generic = GenericOps(numpy_backend.xp)
    z = (np.random.default_rng(0).standard_normal((50, 7)) * 30).astype(dtype)
    labels = np.random.default_rng(1).integers(0, 7, 50)
    onehot = fast_ops.one_hot(labels, 7, z.dtype, out=np.full_like(z, 5))
    assert_array_equal(onehot, generic.one_hot(labels, 7, z.dtype))
    loss, grad = fast_ops.softmax_xent(z, onehot, 0.02, out=np.empty_like(z), scratch=Buffers())
    loss_ref, grad_ref = generic.softmax_xent(z, onehot, 0.02)
    assert loss.dtype == loss_ref.dtype and loss.shape == ()
    assert_array_equal(loss, loss_ref)
    assert_array_equal(grad, grad_ref)
    fast, portable = SoftmaxCrossEntropy(smoothing), SoftmaxCrossEntropy(smoothing)
    fast.ops = fast_ops
    for _ in range(2):  # the second call runs on the reused buffers
        assert_array_equal(fast.forward(z, labels), portable.forward(z, labels))
        assert_array_equal(fast.backward(), portable.backward())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_a_steady_training_step_allocates_no_arrays(dropout, dtype, numpy_backend):
    """On the NumPy backend's fast path every intermediate of a step lives in a reused buffer:
    what a step allocates does not grow with the batch, and is at most NumPy's own iteration
    buffer (``numpy.getbufsize()`` elements, which a broadcasting ufunc or a reduction fills)
    and a little bookkeeping; the portable path allocates each intermediate anew."""
    import tracemalloc

    if not kernels.available():
        pytest.skip("the Numba kernels need numba (pip install '.[numba]')")
    classes = 10
    peaks = {}
    for n in (4096, 65536):
        x = np.random.default_rng(0).random((n, 20)).astype(dtype)
        y = np.random.default_rng(1).integers(0, classes, n)
        for fast in (True, False):
            model = MLP([20, 32, 32, classes], dropout=dropout, seed=0, fast=fast,
                        backend=numpy_backend, dtype=dtype)
            for _ in range(2):
                model.train_step(x, y)
            tracemalloc.start()
            try:
                model.train_step(x, y)
                peaks[n, fast] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    itemsize = np.dtype(dtype).itemsize
    assert peaks[4096, False] > 4096 * classes * itemsize  # the measure sees arrays
    assert abs(peaks[65536, True] - peaks[4096, True]) <= 1024, peaks  # nothing of size N
    assert peaks[65536, True] <= np.getbufsize() * itemsize + 4096, peaks


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("u_dtype", DTYPES)
def test_cupy_dropout_kernel_equals_generic(dtype, u_dtype, get_backend):
    """CuPy's fused dropout kernel against the generic expression, bit for bit, with host
    (float64) and device (float32) uniforms and rates whose float32 rounding goes either way."""
    b = get_backend("cupy")
    generic = GenericOps(b.xp, b.device)
    x = b.asarray(_awkward((33, 17), dtype))
    u = b.asarray(np.random.default_rng(1).random((33, 17)), u_dtype)
    for rate in (0.0, 0.1, 0.2, 0.3, 0.5):
        expected = b.to_numpy(generic.dropout(x, u, rate))
        out = b.xp.full_like(x, 7)
        got = b.ops.dropout(x, u, rate, out=out)
        assert got is out
        assert_array_equal(b.to_numpy(got), expected)
        assert_array_equal(np.signbit(b.to_numpy(got)), np.signbit(expected))
        assert_array_equal(b.to_numpy(b.ops.dropout(x, u, rate)), expected)


# --- PyTorch on the CPU: TorchOps --------------------------------------------------------


@pytest.fixture(params=["numba", "torch"])
def torch_backend(request, get_backend):
    """The torch CPU backend on TorchOps, with the Numba loops and without."""
    b = get_backend("torch")  # or skip, saying why
    import torch

    from backends.torch_ops import TorchOps

    assert isinstance(b.ops, TorchOps), "the torch CPU backend should run on TorchOps"
    if request.param == "numba" and not kernels.available():
        pytest.skip("the Numba kernels need numba (pip install '.[numba]')")
    ops = TorchOps(b.xp, torch, b.device, kernels=request.param == "numba")
    assert (ops.kernels is not None) == (request.param == "numba")
    return b.with_ops(ops)


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_ops_equal_generic(dtype, torch_backend):
    """Every TorchOps method against GenericOps on the same tensors, bit for bit (signed zeros,
    NaN, infinities and subnormals included), writing into the ``out=`` it is given."""
    import torch

    b = torch_backend
    generic, fast = GenericOps(b.xp, b.device), b.ops
    x, g = (b.asarray(_awkward((33, 17), dtype, seed=s)) for s in (0, 1))
    w = b.asarray(np.random.default_rng(2).standard_normal((17, 5)), dtype)
    bias = b.asarray(np.random.default_rng(3).standard_normal(17), dtype)
    u = b.asarray(np.random.default_rng(4).random((33, 17)), "float64")
    idx = b.asarray(np.array([3, 0, 32, 3]))
    pixels = torch.as_tensor(np.random.default_rng(5).integers(0, 256, (33, 17)),
                             dtype=torch.uint8)
    labels = b.asarray(np.random.default_rng(6).integers(0, 5, 33))

    def check(name, want, got_fn, shape, out_dtype=x.dtype):
        out = torch.full(shape, 7, dtype=out_dtype)
        got = got_fn(out)
        assert got.data_ptr() == out.data_ptr(), f"{name} did not write into out"
        assert_array_equal(b.to_numpy(got), b.to_numpy(want), err_msg=name)
        assert_array_equal(np.signbit(b.to_numpy(got)), np.signbit(b.to_numpy(want)),
                           err_msg=name)

    with np.errstate(all="ignore"):
        check("matmul", generic.matmul(x, w), lambda o: fast.matmul(x, w, out=o), (33, 5))
        check("add", generic.add(x, g), lambda o: fast.add(x, g, out=o), (33, 17))
        check("relu", generic.relu(x), lambda o: fast.relu(x, out=o), (33, 17))
        check("relu_grad", generic.relu_grad(g, x), lambda o: fast.relu_grad(g, x, out=o),
              (33, 17))
        check("bias_relu", generic.bias_relu(x, bias), lambda o: fast.bias_relu(x, bias, out=o),
              (33, 17))
        d, sums = generic.relu_grad_sum(g, x)
        check("relu_grad_sum", d, lambda o: fast.relu_grad_sum(g, x, out=o)[0], (33, 17))
        check("sum_rows", generic.sum_rows(g), lambda o: fast.sum_rows(g, out=o), (17,))
        check("take_rows", generic.take_rows(x, idx), lambda o: fast.take_rows(x, idx, out=o),
              (4, 17))
        check("to_float", generic.to_float(pixels, 1 / 255, x.dtype),
              lambda o: fast.to_float(pixels, 1 / 255, x.dtype, out=o), (33, 17))
        for rate in (0.0, 0.3):
            check(f"dropout {rate}", generic.dropout(x, u, rate),
                  lambda o, r=rate: fast.dropout(x, u, r, out=o), (33, 17))
        check("one_hot", generic.one_hot(labels, 5, x.dtype),
              lambda o: fast.one_hot(labels, 5, x.dtype, out=o), (33, 5))
    z = b.asarray(np.random.default_rng(7).standard_normal((33, 5)) * 5, dtype)
    t = generic.one_hot(labels, 5, z.dtype) * 0.9 + 0.02
    loss, grad = generic.softmax_xent(z, t, 1 / 33)
    from backends.ops import Buffers

    got_loss, got_grad = fast.softmax_xent(z, t, 1 / 33, out=torch.empty_like(z),
                                           scratch=Buffers())
    assert float(got_loss) == float(loss)
    assert_array_equal(b.to_numpy(got_grad), b.to_numpy(grad))


OPTIMIZER_CASES = {
    "adam": lambda: Adam(2e-3),
    "adam-l2": lambda: Adam(2e-3, weight_decay=0.01),
    "adamw": lambda: AdamW(2e-3, weight_decay=0.05),
    "sgd": lambda: SGD(0.05),
    "momentum-wd": lambda: SGD(0.05, momentum=0.9, weight_decay=1e-3),
    "nesterov": lambda: SGD(0.05, momentum=0.9, nesterov=True),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", list(OPTIMIZER_CASES))
def test_torch_fast_and_portable_train_to_the_same_numbers(optimizer, dtype, torch_backend):
    """A model on TorchOps (in place) and on the portable operations: the same losses and
    parameters after every step, with dropout and label smoothing."""
    from mlp import SoftmaxCrossEntropy

    b = torch_backend
    x = b.asarray(np.random.default_rng(0).random((24, 12)), dtype)
    y = b.asarray(np.random.default_rng(1).integers(0, 3, 24))
    models = [MLP([12, 16, 16, 3], dropout=0.25, dtype=dtype, seed=3, backend=b, fast=fast,
                  optimizer=OPTIMIZER_CASES[optimizer](),
                  loss=SoftmaxCrossEntropy(label_smoothing=0.1)) for fast in (True, False)]
    assert models[0].ops.inplace and not models[1].ops.inplace
    for step in range(4):
        losses = [float(m.train_step(x, y)) for m in models]
        assert losses[0] == losses[1], f"loss at step {step}"
        assert_array_equal(b.to_numpy(models[0].store.flat), b.to_numpy(models[1].store.flat),
                           err_msg=f"parameters after step {step}")
