"""Layers: finite-difference gradients in float64, float32 against a float64 reference,
read-only inputs, and the behaviour each layer documents."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backends
from mlp.layers import (
    GELU,
    Dropout,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    log_softmax,
)

N, D = 3, 4


class FixedMaskRng:
    """Stands in for a ``numpy.random.Generator``: the same numbers on every call, so a
    :class:`Dropout` drops the same units in every forward pass of a finite-difference check.
    The layers draw their masks on the host (``host_masks=True``), so a GPU backend drops the
    same units as the NumPy reference."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def random(self, size=None, out=None):
        return np.random.default_rng(self.seed).random(size, out=out)


def _linear(bias: bool, ops):
    return Linear(D, 5, bias=bias, init="normal", std=0.5, ops=ops)


#: Each entry builds the layer on ``ops`` (``None``: portable code from the input's namespace).
LAYERS = {
    "linear": lambda ops: _linear(True, ops),
    "linear-no-bias": lambda ops: _linear(False, ops),
    "relu": lambda ops: ReLU(ops=ops),
    "leaky_relu": lambda ops: LeakyReLU(0.1, ops=ops),
    "sigmoid": lambda ops: Sigmoid(ops=ops),
    "tanh": lambda ops: Tanh(ops=ops),
    "gelu": lambda ops: GELU(ops=ops),
    "softmax": lambda ops: Softmax(ops=ops),
    "dropout": lambda ops: Dropout(0.4, rng=FixedMaskRng(3), host_masks=True),
    "sequential": lambda ops: Sequential([
        Linear(D, 6, init="normal", std=0.5, ops=ops), Tanh(ops=ops),
        Dropout(0.3, rng=FixedMaskRng(5), host_masks=True),
        Linear(6, 6, init="normal", std=0.5, ops=ops),
        GELU(ops=ops), Linear(6, 3, bias=False, ops=ops), Softmax(ops=ops),
    ]),
    "sequential-relu": lambda ops: Sequential([
        Linear(D, 6, init="normal", std=0.5, ops=ops), ReLU(ops=ops),
        Linear(6, 2, init="normal", std=0.5, ops=ops), LeakyReLU(0.2, ops=ops),
        Linear(2, 3, ops=ops), Sigmoid(ops=ops),
    ]),
}
PARAM_LAYERS = ("linear", "linear-no-bias", "sequential", "sequential-relu")
KINKED = ("relu", "leaky_relu")


def param_slots(layer):
    """``(name, owning layer, key)`` for every parameter of ``layer``."""
    if isinstance(layer, Sequential):
        return [(f"{i}.{k}", sub, k) for i, sub in enumerate(layer) for k in sub.params]
    return [(k, layer, k) for k in layer.params]


def sample_input(name: str, rng: np.random.Generator) -> np.ndarray:
    if name in KINKED:
        # Keep |x| >= 0.1 so that x ± eps never crosses the kink at 0.
        return rng.choice([-1.0, 1.0], size=(N, D)) * rng.uniform(0.1, 2.0, size=(N, D))
    return rng.normal(size=(N, D))


def built(name: str, b, dtype: str = "float64", ops=None):
    layer = LAYERS[name](ops)
    return layer.build(b, np.random.default_rng(11), dtype)


def check_gradients(layer, b, x_host, to_host, numerical_gradient):
    """Input and parameter gradients of ``sum(forward(x) * r)`` against central differences."""
    def objective(x_np):
        return float(np.sum(to_host(b, layer.forward(b.asarray(x_np), train=True)) * r_host))

    y = layer.forward(b.asarray(x_host), train=True)
    r_host = np.random.default_rng(99).normal(size=tuple(y.shape))
    dx = to_host(b, layer.backward(b.asarray(r_host)))
    grads = {name: to_host(b, owner.grads[key]) for name, owner, key in param_slots(layer)}

    np.testing.assert_allclose(dx, numerical_gradient(objective, x_host), rtol=1e-6, atol=1e-8,
                               err_msg="input gradient")

    for name, owner, key in param_slots(layer):
        original = owner.params[key]

        def objective_p(p_np, owner=owner, key=key):
            owner.params[key] = b.asarray(p_np)
            return float(np.sum(to_host(b, layer.forward(b.asarray(x_host), train=True)) * r_host))

        numeric = numerical_gradient(objective_p, to_host(b, original))
        owner.params[key] = original
        assert grads[name].shape == tuple(original.shape)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8,
                                   err_msg=f"gradient of {name}")
    return dx, grads


@pytest.mark.parametrize("name", list(LAYERS))
def test_gradients_float64(name, cpu_float64_backend, rng, to_host, numerical_gradient):
    b = cpu_float64_backend
    layer = built(name, b)
    check_gradients(layer, b, sample_input(name, rng), to_host, numerical_gradient)


@pytest.mark.parametrize("name", list(LAYERS))
def test_gradients_float64_inplace_numpy(name, numpy_backend, rng, to_host, numerical_gradient):
    """The same check with the layers on NumPy's in-place fast path (as inside a model)."""
    b = numpy_backend
    layer = built(name, b, ops=b.ops)
    check_gradients(layer, b, sample_input(name, rng), to_host, numerical_gradient)


@pytest.mark.parametrize("name", PARAM_LAYERS)
def test_parameter_gradients_are_not_zero(name, numpy_backend, rng, to_host):
    """Guards the gradient check itself: parameters must actually get non-trivial gradients."""
    b = numpy_backend
    layer = built(name, b)
    y = layer.forward(b.asarray(sample_input(name, rng)), train=True)
    layer.backward(b.asarray(np.ones(tuple(y.shape))))
    slots = param_slots(layer)
    assert slots
    for pname, owner, key in slots:
        assert np.any(to_host(b, owner.grads[key]) != 0), pname


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_matches_float64_numpy_reference(name, dtype, backend, rng, to_host,
                                         assert_matches_reference, lacks_dtype):
    if lacks_dtype(backend, dtype):
        return
    ref_b = backends.get("numpy")
    x_host = sample_input(name, rng)
    ref = built(name, ref_b)
    y_ref = to_host(ref_b, ref.forward(ref_b.asarray(x_host), train=True))
    r_host = rng.normal(size=y_ref.shape)
    dx_ref = to_host(ref_b, ref.backward(ref_b.asarray(r_host)))

    layer = built(name, backend, dtype)
    ref_slots = {name_: (owner, key) for name_, owner, key in param_slots(ref)}
    for pname, owner, key in param_slots(layer):
        ref_owner, ref_key = ref_slots[pname]
        owner.params[key] = backend.asarray(to_host(ref_b, ref_owner.params[ref_key]), dtype)
    x = backend.asarray(x_host, dtype)
    y = layer.forward(x, train=True)
    dx = layer.backward(backend.asarray(r_host, dtype))

    assert y.dtype == x.dtype and dx.dtype == x.dtype
    assert_matches_reference(to_host(backend, y), y_ref, dtype, "forward")
    assert_matches_reference(to_host(backend, dx), dx_ref, dtype, "input gradient")
    for pname, owner, key in param_slots(layer):
        ref_owner, ref_key = ref_slots[pname]
        assert owner.grads[key].dtype == x.dtype
        assert_matches_reference(to_host(backend, owner.grads[key]),
                                 to_host(ref_b, ref_owner.grads[ref_key]), dtype, pname)


@pytest.mark.parametrize("fast", [False, True], ids=["generic", "inplace"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_read_only_inputs_are_not_modified(name, fast, numpy_backend, rng):
    b = numpy_backend
    layer = built(name, b, ops=b.ops if fast else None)
    x = sample_input(name, rng)
    x.setflags(write=False)
    x_before = x.copy()
    y = layer.forward(x, train=True)
    grad = np.ones(tuple(y.shape))
    grad.setflags(write=False)
    layer.forward(x, train=True)
    layer.backward(grad)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(grad, np.ones(tuple(y.shape)))


# --- documented behaviour --------------------------------------------------------------


def test_linear_forward_is_affine(numpy_backend):
    layer = Linear(2, 2).build(numpy_backend, np.random.default_rng(0), "float64")
    layer.params["W"] = np.array([[1.0, 2.0], [3.0, 4.0]])
    layer.params["b"] = np.array([0.5, -0.5])
    y = layer.forward(np.array([[1.0, 1.0], [2.0, 0.0]]))
    np.testing.assert_array_equal(y, [[4.5, 5.5], [2.5, 3.5]])


@pytest.mark.parametrize("init, std", [("he", math.sqrt(2 / 400)), ("glorot", math.sqrt(2 / 500)),
                                       ("normal", 0.3)])
def test_linear_init_scales(init, std, numpy_backend):
    layer = Linear(400, 100, init=init, std=0.3).build(
        numpy_backend, np.random.default_rng(0), "float64")
    assert layer.params["W"].shape == (400, 100)
    assert layer.params["b"].shape == (100,)
    assert abs(np.std(layer.params["W"]) / std - 1) < 0.02
    if init == "normal":
        assert np.std(layer.params["b"]) > 0.2
    else:
        np.testing.assert_array_equal(layer.params["b"], 0.0)


def test_linear_validation():
    with pytest.raises(ValueError, match="init"):
        Linear(2, 3, init="xavier-ish")
    with pytest.raises(ValueError, match="positive"):
        Linear(0, 3)
    with pytest.raises(RuntimeError, match="before forward"):
        Linear(2, 3).backward(np.zeros((1, 3)))


def test_linear_without_input_grad_returns_none(numpy_backend):
    layer = Linear(3, 2, input_grad=False).build(numpy_backend, np.random.default_rng(0),
                                                 "float64")
    layer.forward(np.ones((4, 3)))
    assert layer.backward(np.ones((4, 2))) is None
    np.testing.assert_allclose(layer.grads["W"], np.full((3, 2), 4.0))
    np.testing.assert_allclose(layer.grads["b"], np.full(2, 4.0))


def test_activation_values(cpu_float64_backend, to_host):
    b = cpu_float64_backend
    x = b.asarray(np.array([[-2.0, -0.5, 0.5, 1.0]]))
    expect = {
        ReLU(): [0.0, 0.0, 0.5, 1.0],
        LeakyReLU(0.1): [-0.2, -0.05, 0.5, 1.0],
        Sigmoid(): [1 / (1 + math.e**2), 1 / (1 + math.e**0.5), 1 / (1 + math.e**-0.5),
                    1 / (1 + math.e**-1)],
        Tanh(): [math.tanh(-2.0), math.tanh(-0.5), math.tanh(0.5), math.tanh(1.0)],
        # PyTorch's gelu(approximate="tanh") at the same points.
        GELU(): [-0.04540230591222494, -0.15428599017485606, 0.34571400982514394,
                 0.8411919906082768],
    }
    for layer, values in expect.items():
        np.testing.assert_allclose(to_host(b, layer.forward(x))[0], values, rtol=1e-12,
                                   err_msg=type(layer).__name__)


def test_sigmoid_and_softmax_are_stable_for_huge_inputs(cpu_float64_backend, to_host):
    b = cpu_float64_backend
    x = b.asarray(np.array([[-1000.0, 0.0, 1000.0]]))
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        s = to_host(b, Sigmoid().forward(x))
        p = to_host(b, Softmax().forward(x))
        logp = to_host(b, log_softmax(x, b.xp))
    np.testing.assert_allclose(s, [[0.0, 0.5, 1.0]], atol=1e-300)
    np.testing.assert_allclose(p, [[0.0, 0.0, 1.0]], atol=1e-300)
    np.testing.assert_allclose(logp, [[-2000.0, -1000.0, 0.0]])


def test_softmax_rows_sum_to_one(backend, rng, to_host):
    dtype = backend.dtypes[0]
    p = to_host(backend, Softmax().forward(backend.asarray(rng.normal(size=(5, 7)) * 10, dtype)))
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)


def test_dropout_train_and_eval(cpu_float64_backend, to_host):
    b = cpu_float64_backend
    x = b.asarray(np.ones((200, 50)))
    layer = Dropout(0.25, rng=np.random.default_rng(0))
    assert layer.forward(x, train=False) is x
    assert layer.backward(x) is x  # identity backward after an evaluation pass
    y = to_host(b, layer.forward(x, train=True))
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    assert abs(kept.mean() - 0.75) < 0.02
    g = to_host(b, layer.backward(b.asarray(np.full((200, 50), 2.0))))
    np.testing.assert_array_equal(g != 0, kept)
    np.testing.assert_allclose(g[kept], 2.0 / 0.75)


def test_dropout_mask_is_the_same_on_every_backend(cpu_float64_backend, to_host):
    b = cpu_float64_backend
    ones = np.ones((8, 9))
    ref = Dropout(0.5, rng=np.random.default_rng(4)).forward(ones, train=True)
    y = Dropout(0.5, rng=np.random.default_rng(4)).forward(b.asarray(ones), train=True)
    np.testing.assert_array_equal(to_host(b, y), ref)


def test_dropout_draws_from_the_generator_it_is_built_with(numpy_backend):
    ones = np.ones((8, 9))
    with pytest.raises(RuntimeError, match="Dropout needs a random generator"):
        Dropout(0.5).forward(ones, train=True)
    assert Dropout(0.5).forward(ones, train=False) is ones  # evaluation needs no generator
    layer = Dropout(0.5).build(numpy_backend, numpy_backend.rng(4))
    expected = Dropout(0.5, rng=np.random.default_rng(4)).forward(ones, train=True)
    np.testing.assert_array_equal(layer.forward(ones, train=True), expected)


def test_dropout_validation():
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="rate"):
        Dropout(-0.1)


def test_sequential_names_and_config(numpy_backend):
    seq = Sequential([Linear(3, 4), ReLU(), Linear(4, 2, bias=False)])
    seq.build(numpy_backend, np.random.default_rng(0), "float64")
    assert list(seq.named_param_shapes()) == ["0.W", "0.b", "2.W"]
    assert seq.named_param_shapes()["2.W"] == (4, 2)
    assert list(seq.named_params()) == ["0.W", "0.b", "2.W"]
    assert [c["type"] for c in seq.config()["layers"]] == ["Linear", "ReLU", "Linear"]
    assert len(seq) == 3 and isinstance(seq[1], ReLU)
