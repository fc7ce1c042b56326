"""Optimizers against their published update equations on tiny hand-computed cases, and the
in-place fast paths against the portable array-API code."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from array_api_compat import array_namespace

import backends
from backends import Backend, GenericOps, kernels
from backends.inplace_ops import InplaceOps
from backends.ops import AdamConstants
from mlp.layers.base import Layer
from mlp.optimizers import SGD, Adam, AdamW, optimizer_from_config
from mlp.params import ParameterStore
from mlp.schedules import Constant, Cosine, LinearWarmup, StepDecay

P0 = [1.0, -2.0, 0.5]
G1 = [0.5, -1.0, 2.0]
G2 = [1.0, 0.5, -1.0]


class Vector(Layer):
    """A layer that is nothing but one parameter vector ``w``."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def param_shapes(self):
        return {"w": (self.n,)}

    def init_params(self, backend, rng, dtype):
        return {"w": backend.zeros((self.n,), dtype)}


OPT_BACKENDS = [
    pytest.param((name, ops), id=f"{name}-{ops}",
                 marks=[pytest.mark.gpu] if name == "cupy" else [])
    for name in ("numpy", "array_api_strict", "torch", "jax", "cupy")
    for ops in ("backend-ops", "generic-ops")
] + [pytest.param(("numpy", "inplace-portable-update"), id="numpy-inplace-portable-update")]


@pytest.fixture(params=OPT_BACKENDS)
def opt_backend(request, get_backend):
    """Each backend with its own operations and with the portable ones (the reference the fast
    paths must match); and NumPy's in-place layers with the portable update (no Numba)."""
    name, ops = request.param
    backend = get_backend(name)
    if ops == "backend-ops":
        return backend
    if ops == "generic-ops":
        return backend.with_ops(GenericOps(backend.xp, backend.device))
    return backend.with_ops(InplaceOps(backend.xp, np, backend.device, kernels=False))


class Harness:
    """One parameter vector in a :class:`ParameterStore`, gradients set by hand."""

    def __init__(self, b: Backend, optimizer, p0=P0, dtype="float64") -> None:
        if dtype not in b.dtypes:
            pytest.skip(f"{b} has no {dtype}")
        self.b, self.layer = b, Vector(len(p0))
        self.store = ParameterStore([self.layer], b, dtype)
        self.store.load_flat(b.asarray(np.array(p0), dtype))
        self.optimizer = optimizer
        optimizer.bind(self.store)

    def step(self, grad) -> np.ndarray:
        self.layer.grads["w"] = self.b.asarray(np.array(grad, dtype=np.float64), self.store.dtype)
        self.optimizer.step()
        return self.params()

    def params(self) -> np.ndarray:
        return np.array(self.b.to_numpy(self.layer.params["w"]), dtype=np.float64)


# --- SGD: p -= lr * step (PyTorch's formulation) ---------------------------------------

SGD_CASES = {
    # g; p1 = p0 - 0.1 g1 = [0.95, -1.9, 0.3]; p2 = p1 - 0.1 g2
    "plain": (dict(lr=0.1), [0.95, -1.9, 0.3], [0.85, -1.95, 0.4]),
    # v1 = g1; v2 = 0.9 g1 + g2 = [1.45, -0.4, 0.8]
    "momentum": (dict(lr=0.1, momentum=0.9), [0.95, -1.9, 0.3], [0.805, -1.86, 0.22]),
    # step1 = g1 + 0.9 v1 = 1.9 g1; step2 = g2 + 0.9 v2 = [2.305, 0.14, -0.28]
    "nesterov": (dict(lr=0.1, momentum=0.9, nesterov=True), [0.905, -1.81, 0.12],
                 [0.6745, -1.824, 0.148]),
    # g1' = g1 + 0.1 p0 = [0.6, -1.2, 2.05]; g2' = g2 + 0.1 p1 = [1.094, 0.312, -0.9705]
    "weight-decay": (dict(lr=0.1, weight_decay=0.1), [0.94, -1.88, 0.295],
                     [0.8306, -1.9112, 0.39205]),
    # v1 = g1'; v2 = 0.9 g1' + g2' = [1.634, -0.768, 0.8745]
    "momentum-weight-decay": (dict(lr=0.1, momentum=0.9, weight_decay=0.1),
                              [0.94, -1.88, 0.295], [0.7766, -1.8032, 0.20755]),
}


@pytest.mark.parametrize("case", list(SGD_CASES))
def test_sgd_hand_computed(case, opt_backend):
    kwargs, p1, p2 = SGD_CASES[case]
    h = Harness(opt_backend, SGD(**kwargs))
    np.testing.assert_allclose(h.step(G1), p1, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(h.step(G2), p2, rtol=1e-14, atol=1e-15)
    assert h.optimizer.steps == 2


# --- Adam / AdamW -----------------------------------------------------------------------
# m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²;  m^ = m / (1-b1^t);  v^ = v / (1-b2^t)
# p -= lr m^ / (sqrt(v^) + eps)          (Adam; L2 decay: g += wd p first)
# p = p (1 - lr wd) - lr m^ / (...)      (AdamW)
# Step 1 gives m^ = g, v^ = g², so p1 = p0 - lr g / (|g| + eps) ≈ p0 - lr sign(g).
# Step 2 (lr 0.1, betas 0.9/0.999): m2 = [0.145, -0.04, 0.08], v2 = [0.00124975, 0.001249,
# 0.004996], bias corrections 0.19 and 0.001999.

ADAM_CASES = {
    "adam": (Adam, 0.0, [0.900000002, -1.900000001, 0.4000000005],
             [0.8034818006385094, -1.873366297370903, 0.37336629670243154]),
    # g1' = g1 + 0.1 p0 = [0.6, -1.2, 2.05]: p1 = p0 - 0.1 g1' / (|g1'| + eps)
    "adam-l2": (Adam, 0.1, [0.9000000016666666, -1.9000000008333333, 0.4000000004878049],
                [0.8025029703202308, -1.8537472646427609, 0.37089514609880114]),
    # p1 = 0.99 p0 - 0.1 g1 / (|g1| + eps)
    "adamw": (AdamW, 0.1, [0.890000002, -1.880000001, 0.3950000005],
              [0.7845818006185094, -1.8345662973609032, 0.36441629669743153]),
}


@pytest.mark.parametrize("case", list(ADAM_CASES))
def test_adam_hand_computed(case, opt_backend):
    cls, wd, p1, p2 = ADAM_CASES[case]
    h = Harness(opt_backend, cls(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd))
    np.testing.assert_allclose(h.step(G1), p1, rtol=1e-13)
    np.testing.assert_allclose(h.step(G2), p2, rtol=1e-13)
    m, v = (np.asarray(opt_backend.to_numpy(a)) for a in (h.optimizer.m, h.optimizer.v))
    if wd == 0.0 or cls is AdamW:
        np.testing.assert_allclose(m, [0.145, -0.04, 0.08], rtol=1e-14)
        np.testing.assert_allclose(v, [0.00124975, 0.001249, 0.004996], rtol=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adamw_zero_gradient_only_shrinks(dtype, opt_backend):
    """With g = 0 AdamW's Adam part is zero: p1 = p0 (1 - lr wd) exactly, while Adam's L2
    decay turns the decay into a gradient and moves every weight by about lr."""
    h = Harness(opt_backend, AdamW(lr=0.01, weight_decay=0.5), dtype=dtype)
    np.testing.assert_allclose(h.step([0.0, 0.0, 0.0]), np.array(P0) * (1 - 0.005), rtol=1e-6)
    h = Harness(opt_backend, Adam(lr=0.01, weight_decay=0.5), dtype=dtype)
    np.testing.assert_allclose(h.step([0.0, 0.0, 0.0]), np.array(P0) - 0.01 * np.sign(P0),
                               rtol=1e-6)


def test_float32_updates_stay_float32(opt_backend):
    for opt in (SGD(lr=0.1, momentum=0.9, weight_decay=0.01), Adam(weight_decay=0.01), AdamW()):
        h = Harness(opt_backend, opt, dtype="float32")
        h.step(G1)
        h.step(G2)
        assert h.store.flat.dtype == opt_backend.dtype("float32"), type(opt).__name__
        assert h.layer.params["w"].dtype == opt_backend.dtype("float32")


def test_schedule_sets_each_steps_learning_rate(opt_backend):
    # lr 1, halved every step; g = 1: p = 0 - 1 - 0.5 - 0.25
    h = Harness(opt_backend, SGD(lr=1.0, schedule=StepDecay(1, 0.5)), p0=[0.0])
    assert h.optimizer.current_lr == 1.0
    for expected in (-1.0, -1.5, -1.75):
        np.testing.assert_allclose(h.step([1.0]), [expected], rtol=1e-15)
    assert h.optimizer.current_lr == 0.125


def test_adam_uses_warmup_learning_rate(opt_backend):
    # LinearWarmup(2): factors 0.5, 1.0; Adam's steps are ≈ lr * sign(g) while g is constant.
    h = Harness(opt_backend, Adam(lr=0.1, schedule=LinearWarmup(2)), p0=[0.0])
    np.testing.assert_allclose(h.step([3.0]), [-0.05], rtol=1e-7)
    np.testing.assert_allclose(h.step([3.0]), [-0.15], rtol=1e-7)


@pytest.mark.parametrize("make", [
    lambda: SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda: Adam(lr=0.1),
    lambda: AdamW(lr=0.1, weight_decay=0.2),
], ids=["sgd", "adam", "adamw"])
def test_state_round_trip_continues_identically(make, numpy_backend):
    grads = [G1, G2, [0.3, 0.2, -0.7]]
    straight = Harness(numpy_backend, make())
    for g in grads:
        expected = straight.step(g)
    first = Harness(numpy_backend, make())
    for g in grads[:2]:
        first.step(g)
    resumed = Harness(numpy_backend, make(), p0=first.params())
    state = {k: np.array(v) for k, v in first.optimizer.state().items()}
    resumed.optimizer.load_state(first.optimizer.steps, state)
    np.testing.assert_array_equal(resumed.step(grads[2]), expected)


def test_optimizer_validation():
    for bad, message in (
        (lambda: SGD(lr=0.0), "lr must be a finite number > 0, got 0.0"),
        (lambda: SGD(momentum=1.0), "momentum must be a finite number in [0, 1), got 1.0"),
        (lambda: SGD(nesterov=True), "Nesterov momentum needs momentum > 0"),
        (lambda: SGD(weight_decay=-1.0), "weight_decay must be a finite number >= 0, got -1.0"),
        (lambda: Adam(betas=(1.0, 0.999)), "betas must be in [0, 1), got (1.0, 0.999)"),
        (lambda: Adam(lr=-1e-3), "lr must be a finite number > 0, got -0.001"),
        (lambda: optimizer_from_config({"type": "RMSprop"}), "unknown optimizer 'RMSprop'"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            bad()


@pytest.mark.parametrize("opt", [
    SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4, schedule=StepDecay(10, 0.5)),
    Adam(lr=3e-4, betas=(0.8, 0.99), eps=1e-7, schedule=Cosine(100, 0.1)),
    AdamW(weight_decay=0.05, schedule=LinearWarmup(5, Cosine(50))),
    SGD(),
], ids=["sgd", "adam", "adamw", "default"])
def test_optimizer_config_round_trip(opt):
    config = json.loads(json.dumps(opt.config()))
    again = optimizer_from_config(config)
    assert type(again) is type(opt)
    assert again.config() == opt.config()
    for step in (0, 4, 7, 60, 200):
        again.steps = opt.steps = step
        assert again.current_lr == opt.current_lr
    assert isinstance(optimizer_from_config({"type": "Adam"}).schedule, Constant)


# --- fast paths give the same numbers ---------------------------------------------------

SIZES = [3, 1000, 70_003]
ADAM_SETTINGS = {
    "adam": dict(weight_decay=0.0, decoupled=False),
    "adam-l2": dict(weight_decay=0.01, decoupled=False),
    "adamw": dict(weight_decay=0.01, decoupled=True),
}
SGD_SETTINGS = {
    "plain": dict(momentum=0.0, nesterov=False, weight_decay=0.0),
    "weight-decay": dict(momentum=0.0, nesterov=False, weight_decay=1e-3),
    "momentum": dict(momentum=0.9, nesterov=False, weight_decay=0.0),
    "nesterov-weight-decay": dict(momentum=0.9, nesterov=True, weight_decay=1e-3),
}


def _state(n: int, dtype: str, seed: int):
    r = np.random.default_rng(seed)
    return [r.normal(size=n).astype(dtype) for _ in range(3)] + [
        (r.random(n) * 1e-2).astype(dtype)]


def _numba_ops(xp) -> InplaceOps:
    """The NumPy operations with the Numba kernels, which must exist when asked."""
    if not kernels.available():
        pytest.skip("the Numba kernels need numba (pip install '.[numba]')")
    ops = InplaceOps(xp, np, kernels=True)
    assert ops.kernels is not None
    return ops


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("setting", list(ADAM_SETTINGS))
def test_inplace_adam_equals_generic(setting, n, dtype, numpy_backend):
    xp = numpy_backend.xp
    fast, generic = _numba_ops(xp), GenericOps(xp)
    p, g, m, v = _state(n, dtype, seed=n)
    for step in (1, 2, 9):
        k = AdamConstants.of(1e-3, 0.9, 0.999, 1e-8, step, **ADAM_SETTINGS[setting])
        p_ref, m_ref, v_ref = generic.adam_update(p, g, m, v, k)
        out = fast.adam_update(p.copy(), g, m.copy(), v.copy(), k)
        for name, got, ref in zip("pmv", out, (p_ref, m_ref, v_ref), strict=True):
            assert got.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(got, ref, err_msg=f"{name} at step {step}")
        p, m, v = p_ref, m_ref, v_ref
        g = np.roll(g, 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("setting", list(SGD_SETTINGS))
def test_inplace_sgd_equals_generic(setting, n, dtype, numpy_backend):
    xp = numpy_backend.xp
    fast, generic = _numba_ops(xp), GenericOps(xp)
    p, g, _, _ = _state(n, dtype, seed=n + 1)
    velocity_ref = velocity = None
    g_before = g.copy()
    for step in range(3):
        p_ref, velocity_ref = generic.sgd_update(p, g, velocity_ref, 0.01,
                                                 **SGD_SETTINGS[setting])
        got, velocity = fast.sgd_update(p.copy(), g, velocity, 0.01, **SGD_SETTINGS[setting])
        np.testing.assert_array_equal(got, p_ref, err_msg=f"p at step {step}")
        if velocity_ref is not None:
            np.testing.assert_array_equal(velocity, velocity_ref, err_msg=f"velocity at {step}")
        np.testing.assert_array_equal(g, g_before)  # the gradient is read, never written
        p = p_ref
        g = np.roll(g, 1)
        g_before = g.copy()


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def inplace_backend(request):
    pytest.importorskip(request.param, reason=f"backend {request.param!r} needs it installed")
    try:
        b = backends.get(request.param)
    except backends.BackendError as exc:
        pytest.skip(str(exc))
    assert b.ops.inplace
    return b


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("setting", list(ADAM_SETTINGS))
def test_backend_adam_kernel_equals_generic(setting, dtype, inplace_backend):
    """The registered backend's own kernel (NumPy's Numba kernel, or CuPy's fused kernel, built
    without fused multiply-adds) gives the generic expression's numbers, bit for bit, over
    several steps."""
    b = inplace_backend
    generic = GenericOps(b.xp, b.device)
    p, g, m, v = (b.asarray(a) for a in _state(70_007, dtype, seed=3))
    p2, m2, v2 = (b.xp.asarray(a, copy=True) for a in (p, m, v))
    for step in (1, 2, 3, 9, 10):
        k = AdamConstants.of(1e-3, 0.9, 0.999, 1e-8, step, **ADAM_SETTINGS[setting])
        p, m, v = generic.adam_update(p, g, m, v, k)
        p2, m2, v2 = b.ops.adam_update(p2, g, m2, v2, k)
        for name, got, want in zip("pmv", (p2, m2, v2), (p, m, v), strict=True):
            assert got.dtype == b.dtype(dtype)
            np.testing.assert_array_equal(b.to_numpy(got), b.to_numpy(want),
                                          err_msg=f"{name} at step {step}")
        g = b.xp.flip(g)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("setting", list(SGD_SETTINGS))
def test_backend_sgd_kernel_equals_generic(setting, dtype, inplace_backend):
    """Every SGD variant: the backend's own kernel against the generic expression, bit for bit,
    over several steps (the first one creates the velocity)."""
    b = inplace_backend
    generic = GenericOps(b.xp, b.device)
    p, g, _, _ = (b.asarray(a) for a in _state(70_007, dtype, seed=4))
    p2 = b.xp.asarray(p, copy=True)
    velocity = velocity2 = None
    for step in range(4):
        g_before = b.to_host_copy(g)
        p, velocity = generic.sgd_update(p, g, velocity, 0.01, **SGD_SETTINGS[setting])
        p2, velocity2 = b.ops.sgd_update(p2, g, velocity2, 0.01, **SGD_SETTINGS[setting])
        assert p2.dtype == b.dtype(dtype)
        np.testing.assert_array_equal(b.to_numpy(p2), b.to_numpy(p), err_msg=f"p at {step}")
        assert (velocity2 is None) == (velocity is None)
        if velocity is not None:
            np.testing.assert_array_equal(b.to_numpy(velocity2), b.to_numpy(velocity),
                                          err_msg=f"velocity at step {step}")
        np.testing.assert_array_equal(b.to_numpy(g), g_before)  # read, never written
        g = b.xp.flip(g)


# --- gradients: a layer assigns them, the store takes them in, on every backend ------------


def test_an_assigned_gradient_is_the_one_the_optimizer_uses(backend):
    """A layer (or a user) that assigns a fresh gradient array instead of writing into the
    store's view: the update must use it, in place or not."""
    from mlp import MLP

    model = MLP([3, 4, 2], backend=backend, dtype=backend.dtypes[-1], optimizer=SGD(lr=0.1))
    x = backend.asarray(np.random.default_rng(0).normal(size=(5, 3)), model.dtype)
    model.loss_and_grads(x, backend.asarray(np.array([0, 1, 1, 0, 1])))
    before = backend.to_host_copy(model.parameters()["0.W"])
    model.layers[0].grads["W"] = backend.asarray(np.ones((3, 4)), model.dtype)
    model.optimizer.step()
    np.testing.assert_allclose(backend.to_numpy(model.parameters()["0.W"]), before - 0.1,
                               rtol=1e-6)


def test_a_gradient_of_the_wrong_shape_is_refused(numpy_backend):
    h = Harness(numpy_backend, SGD(lr=0.1))
    h.layer.grads["w"] = numpy_backend.asarray(np.ones((2, 3)), "float64")
    with pytest.raises(RuntimeError, match=r"gradient of 0.w has shape \(2, 3\), expected \(3,\)"):
        h.optimizer.step()


class Scale(Layer):
    """A custom layer written the obvious way: ``y = x * s``, gradients assigned."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def param_shapes(self):
        return {"s": (self.n,)}

    def init_params(self, backend, rng, dtype):
        return {"s": backend.normal(rng, (self.n,), 1.0, dtype)}

    def forward(self, x, train=False):
        self.x = x
        return x * self.params["s"]

    def backward(self, grad):
        self.grads["s"] = array_namespace(grad).sum(grad * self.x, axis=0)
        return grad * self.params["s"]


def _train_custom(b: Backend, make_optimizer, steps: int = 5) -> dict[str, np.ndarray]:
    from mlp import Linear, SoftmaxCrossEntropy

    layers = [Linear(4, 6, ops=b.ops), Scale(6), Linear(6, 3, ops=b.ops)]
    store = ParameterStore(layers, b, "float64")
    store.initialize(b.rng(3))
    optimizer = make_optimizer()
    optimizer.bind(store)
    loss = SoftmaxCrossEntropy()
    r = np.random.default_rng(4)
    for _ in range(steps):
        x = b.asarray(r.normal(size=(8, 4)), "float64")
        out = x
        for layer in layers:
            out = layer.forward(out, train=True)
        loss.forward(out, b.asarray(r.integers(0, 3, size=8)))
        grad = loss.backward()
        for layer in reversed(layers):
            grad = layer.backward(grad)
        optimizer.step()
    return {name: b.to_host_copy(v) for name, v in store.named().items()}


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.5, momentum=0.9), lambda: Adam(lr=0.05)],
                         ids=["sgd-momentum", "adam"])
def test_a_custom_layer_trains_identically_on_numpy_and_torch(make, numpy_backend):
    pytest.importorskip("torch", reason="the comparison needs torch", exc_type=ImportError)
    torch_backend = backends.get("torch")
    on_numpy, on_torch = _train_custom(numpy_backend, make), _train_custom(torch_backend, make)
    start = _train_custom(numpy_backend, make, steps=0)
    for name, value in on_numpy.items():
        assert not np.allclose(value, start[name]), f"{name} did not train"
        np.testing.assert_allclose(on_torch[name], value, rtol=1e-12, atol=1e-14, err_msg=name)
