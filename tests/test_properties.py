"""Property-based tests: any architecture, batch size (1 included) and dtype gives outputs and
gradients of the right shape and dtype; malformed inputs are rejected with a clear error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends import GenericOps, kernels
from backends.inplace_ops import InplaceOps
from backends.ops import AdamConstants
from mlp import MLP, MSE, CrossEntropy, SoftmaxCrossEntropy
from mlp.layers import ACTIVATIONS, Linear

widths = st.lists(st.integers(1, 9), min_size=2, max_size=4)
batches = st.integers(1, 9)
activations = st.sampled_from(sorted(ACTIVATIONS))
seeds = st.integers(0, 2**32 - 1)


def _numba_ops(xp) -> InplaceOps:
    if not kernels.available():
        pytest.skip("the Numba kernels need numba (pip install '.[numba]')")
    return InplaceOps(xp, np, kernels=True)


@st.composite
def architectures(draw):
    return dict(sizes=draw(widths), activation=draw(activations),
                output=draw(st.sampled_from(["logits", "softmax"])),
                dropout=draw(st.sampled_from([0.0, 0.3])), bias=draw(st.booleans()),
                fast=draw(st.booleans()))


def _model(b, arch, dtype, seed):
    loss = CrossEntropy() if arch["output"] == "softmax" else SoftmaxCrossEntropy()
    return MLP(backend=b, dtype=dtype, seed=seed, loss=loss, **arch)


@given(arch=architectures(), n=batches, seed=seeds, data=st.data())
def test_shapes_dtypes_and_finite_values(backend, arch, n, seed, data):
    dtype = data.draw(st.sampled_from(backend.dtypes), label="dtype")
    model = _model(backend, arch, dtype, seed)
    d, c = arch["sizes"][0], arch["sizes"][-1]
    r = np.random.default_rng(seed)
    x = backend.asarray(r.normal(size=(n, d)), dtype)
    y_host = r.integers(0, c, size=n)
    y = backend.asarray(y_host)

    out = model.forward(x)
    assert tuple(out.shape) == (n, c)
    assert out.dtype == model.dtype
    out_host = backend.to_numpy(out)
    assert np.all(np.isfinite(out_host))
    if arch["output"] == "softmax":
        np.testing.assert_allclose(out_host.sum(axis=1), 1.0, rtol=1e-5)

    loss, grads = model.loss_and_grads(x, y)
    assert tuple(loss.shape) == () and loss.dtype == model.dtype
    assert np.isfinite(float(backend.to_numpy(loss)))
    params = model.parameters()
    assert list(grads) == list(params)
    for name, p in params.items():
        assert tuple(grads[name].shape) == tuple(p.shape), name
        assert grads[name].dtype == model.dtype, name
        assert np.all(np.isfinite(backend.to_numpy(grads[name]))), name

    step_loss = model.train_step(x, y)
    assert np.isfinite(float(backend.to_numpy(step_loss)))
    predicted = backend.to_numpy(model.predict(x, batch_size=n))
    assert predicted.shape == (n,)
    assert np.all((predicted >= 0) & (predicted < c))
    assert 0.0 <= model.evaluate(x, y, batch_size=n)["accuracy"] <= 1.0


def test_a_batch_of_one(backend):
    dtype = backend.dtypes[0]
    model = MLP([3, 4, 2], backend=backend, dtype=dtype, dropout=0.5)
    x = backend.asarray(np.array([[0.5, -1.0, 2.0]]), dtype)
    y = backend.asarray(np.array([1]))
    assert tuple(model.forward(x).shape) == (1, 2)
    losses = [float(backend.to_numpy(model.train_step(x, y))) for _ in range(20)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert tuple(model.predict(x, batch_size=1).shape) == (1,)
    assert model.evaluate(x, y, batch_size=1)["accuracy"] == 1.0


@given(arch=architectures(), n=batches, delta=st.sampled_from([-1, 1, 3]))
def test_wrong_feature_count_is_a_value_error(numpy_backend, arch, n, delta):
    model = _model(numpy_backend, arch, "float64", 0)
    d = arch["sizes"][0]
    if d + delta < 1:
        delta = 1
    with pytest.raises(ValueError, match=f"\\(N, {d}\\)"):
        model.forward(np.zeros((n, d + delta)))
    with pytest.raises(ValueError, match=f"\\(N, {d}\\)"):
        model.loss_and_grads(np.zeros((n, d + delta)), np.zeros(n, dtype=np.int64))
    with pytest.raises(ValueError, match=f"\\(N, {d}\\)"):
        model.forward(np.zeros((n, 1, d)))


@given(arch=architectures(), n=batches, wrong=st.sampled_from(["float32", "int64", "uint8"]))
def test_wrong_dtype_is_a_type_error(numpy_backend, arch, n, wrong):
    model = _model(numpy_backend, arch, "float64", 0)
    with pytest.raises(TypeError, match="float64"):
        model.forward(np.zeros((n, arch["sizes"][0]), dtype=wrong))


@given(n=batches, c=st.integers(1, 6), seed=seeds,
       loss=st.sampled_from(["sce", "sce-smooth", "ce", "mse"]),
       reduction=st.sampled_from(["mean", "sum"]), labels=st.booleans())
def test_losses_are_finite_with_output_shaped_gradients(cpu_float64_backend, n, c, seed, loss,
                                                        reduction, labels):
    b = cpu_float64_backend
    r = np.random.default_rng(seed)
    fn = {"sce": SoftmaxCrossEntropy(reduction=reduction),
          "sce-smooth": SoftmaxCrossEntropy(0.1, reduction), "ce": CrossEntropy(reduction),
          "mse": MSE(reduction)}[loss]
    out = r.random((n, c)) if loss == "ce" else r.normal(size=(n, c)) * 10
    target = r.integers(0, c, size=n) if labels else r.dirichlet(np.ones(c), size=n)
    value = fn.forward(b.asarray(out), b.asarray(target))
    grad = fn.backward()
    assert tuple(value.shape) == ()
    assert np.isfinite(float(b.to_numpy(value)))
    assert tuple(grad.shape) == (n, c)
    assert np.all(np.isfinite(b.to_numpy(grad)))
    if loss.startswith("sce"):
        # softmax(z) - t: both rows sum to one, so every gradient row sums to zero.
        np.testing.assert_allclose(b.to_numpy(grad).sum(axis=1), 0.0, atol=1e-12)
    with pytest.raises(ValueError, match=f"{n + 1} labels for {n} outputs"):
        fn.forward(b.asarray(out), b.asarray(r.integers(0, c, size=n + 1)))


@given(n=batches, n_in=st.integers(1, 9), n_out=st.integers(1, 9), bias=st.booleans(),
       data=st.data())
def test_linear_shapes(backend, n, n_in, n_out, bias, data):
    dtype = data.draw(st.sampled_from(backend.dtypes), label="dtype")
    layer = Linear(n_in, n_out, bias=bias).build(backend, np.random.default_rng(0), dtype)
    x = backend.asarray(np.ones((n, n_in)), dtype)
    y = layer.forward(x)
    assert tuple(y.shape) == (n, n_out) and y.dtype == x.dtype
    dx = layer.backward(backend.asarray(np.ones((n, n_out)), dtype))
    assert tuple(dx.shape) == (n, n_in) and dx.dtype == x.dtype
    assert tuple(layer.grads["W"].shape) == (n_in, n_out)
    assert ("b" in layer.grads) == bias


@given(n=st.integers(1, 3000), dtype=st.sampled_from(["float32", "float64"]),
       lr=st.floats(1e-5, 1.0), beta1=st.floats(0.0, 0.99), beta2=st.floats(0.0, 0.9999),
       step=st.integers(1, 1000), wd=st.sampled_from([0.0, 1e-4, 0.1]),
       decoupled=st.booleans(), seed=seeds)
def test_inplace_adam_equals_generic_for_any_hyperparameters(numpy_backend, n, dtype, lr, beta1,
                                                             beta2, step, wd, decoupled, seed):
    r = np.random.default_rng(seed)
    p, g, m = (r.normal(size=n).astype(dtype) for _ in range(3))
    v = r.random(n).astype(dtype)
    xp = numpy_backend.xp
    k = AdamConstants.of(lr, beta1, beta2, 1e-8, step, wd, decoupled)
    ref = GenericOps(xp).adam_update(p, g, m, v, k)
    got = _numba_ops(xp).adam_update(p.copy(), g, m.copy(), v.copy(), k)
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)


@given(n=st.integers(1, 3000), dtype=st.sampled_from(["float32", "float64"]),
       lr=st.floats(1e-5, 1.0), momentum=st.sampled_from([0.0, 0.5, 0.9]),
       nesterov=st.booleans(), wd=st.sampled_from([0.0, 1e-3]), seed=seeds)
def test_inplace_sgd_equals_generic_for_any_hyperparameters(numpy_backend, n, dtype, lr,
                                                            momentum, nesterov, wd, seed):
    nesterov = nesterov and momentum > 0
    r = np.random.default_rng(seed)
    p, g, vel = (r.normal(size=n).astype(dtype) for _ in range(3))
    xp = numpy_backend.xp
    for velocity in (None, vel):
        ref = GenericOps(xp).sgd_update(p, g, velocity, lr, momentum, nesterov, wd)
        start = None if velocity is None else velocity.copy()
        got = _numba_ops(xp).sgd_update(p.copy(), g, start, lr, momentum, nesterov, wd)
        np.testing.assert_array_equal(got[0], ref[0])
        if momentum:
            np.testing.assert_array_equal(got[1], ref[1])
