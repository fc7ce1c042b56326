"""Losses: values from their formulas, finite-difference gradients in float64, float32 against
a float64 reference, target validation and config round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backends
from mlp.losses import MSE, CrossEntropy, SoftmaxCrossEntropy, loss_from_config

N, C = 4, 3
LABELS = np.array([0, 2, 1, 2])
ONE_HOT = np.eye(C)[LABELS]
SOFT = np.array([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]])

# id -> (loss factory, kind of output it takes, target)
CASES = {
    "sce-labels-mean": (lambda: SoftmaxCrossEntropy(), "logits", LABELS),
    "sce-labels-sum": (lambda: SoftmaxCrossEntropy(reduction="sum"), "logits", LABELS),
    "sce-onehot": (lambda: SoftmaxCrossEntropy(), "logits", ONE_HOT),
    "sce-soft-targets": (lambda: SoftmaxCrossEntropy(), "logits", SOFT),
    "sce-smoothing-labels": (lambda: SoftmaxCrossEntropy(label_smoothing=0.1), "logits", LABELS),
    "sce-smoothing-sum": (lambda: SoftmaxCrossEntropy(0.2, reduction="sum"), "logits", ONE_HOT),
    "ce-labels-mean": (lambda: CrossEntropy(), "probs", LABELS),
    "ce-labels-sum": (lambda: CrossEntropy(reduction="sum"), "probs", LABELS),
    "ce-soft-targets": (lambda: CrossEntropy(), "probs", SOFT),
    "mse-targets-mean": (lambda: MSE(), "any", SOFT),
    "mse-labels-sum": (lambda: MSE(reduction="sum"), "any", LABELS),
    "mse-labels-mean": (lambda: MSE(), "any", LABELS),
}


def sample_output(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "probs":
        # Positive and away from the clip at ``tiny``; rows need not sum to one.
        return rng.uniform(0.1, 0.9, size=(N, C))
    return rng.normal(size=(N, C)) * 2


def as_target(b, target: np.ndarray, dtype: str):
    return b.asarray(target) if target.dtype.kind == "i" else b.asarray(target, dtype)


@pytest.mark.parametrize("case", list(CASES))
def test_gradients_float64(case, cpu_float64_backend, rng, to_host, numerical_gradient):
    b = cpu_float64_backend
    factory, kind, target = CASES[case]
    loss = factory()
    t = as_target(b, target, "float64")
    out = sample_output(kind, rng)

    def objective(o):
        return float(to_host(b, loss.forward(b.asarray(o), t)))

    value = loss.forward(b.asarray(out), t)
    assert tuple(value.shape) == ()
    grad = to_host(b, loss.backward())
    np.testing.assert_allclose(grad, numerical_gradient(objective, out), rtol=1e-6, atol=1e-9)
    assert np.any(grad != 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_float64_numpy_reference(case, dtype, backend, rng, to_host,
                                         assert_matches_reference, lacks_dtype):
    if lacks_dtype(backend, dtype):
        return
    ref_b = backends.get("numpy")
    factory, kind, target = CASES[case]
    out = sample_output(kind, rng)
    ref = factory()
    ref_value = to_host(ref_b, ref.forward(out, as_target(ref_b, target, "float64")))
    ref_grad = to_host(ref_b, ref.backward())

    loss = factory()
    o = backend.asarray(out, dtype)
    value = loss.forward(o, as_target(backend, target, dtype))
    grad = loss.backward()
    assert value.dtype == o.dtype and grad.dtype == o.dtype
    assert_matches_reference(to_host(backend, value), ref_value, dtype, "loss")
    assert_matches_reference(to_host(backend, grad), ref_grad, dtype, "gradient")


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_softmax_cross_entropy_value(cpu_float64_backend, to_host):
    b = cpu_float64_backend
    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    labels = np.array([2, 0])
    # -log(e^3 / (e + e^2 + e^3)) and -log(1/3), averaged.
    expected = (math.log(math.e + math.e**2 + math.e**3) - 3 + math.log(3)) / 2
    got = float(to_host(b, SoftmaxCrossEntropy().forward(b.asarray(z), b.asarray(labels))))
    assert got == pytest.approx(expected, rel=1e-14)
    got_sum = SoftmaxCrossEntropy(reduction="sum").forward(b.asarray(z), b.asarray(labels))
    assert float(to_host(b, got_sum)) == pytest.approx(2 * expected, rel=1e-14)


def test_label_smoothing_target_rows(numpy_backend):
    s = 0.3
    z = np.array([[0.5, -1.0, 2.0]])
    loss = SoftmaxCrossEntropy(label_smoothing=s)
    value = loss.forward(z, np.array([1]))
    t = np.array([[s / 3, 1 - s + s / 3, s / 3]])
    assert float(value) == pytest.approx(-(t * _log_softmax(z)).sum(), rel=1e-14)
    p = np.exp(_log_softmax(z))
    np.testing.assert_allclose(loss.backward(), p - t, rtol=1e-14)


def test_softmax_cross_entropy_gradient_is_p_minus_onehot_over_n(numpy_backend):
    z = np.array([[1.0, 2.0, 0.5], [3.0, -1.0, 0.0]])
    loss = SoftmaxCrossEntropy()
    loss.forward(z, np.array([1, 0]))
    expected = (np.exp(_log_softmax(z)) - np.eye(3)[[1, 0]]) / 2
    np.testing.assert_allclose(loss.backward(), expected, rtol=1e-14)


def test_softmax_cross_entropy_is_finite_for_huge_logits(cpu_float64_backend, to_host):
    b = cpu_float64_backend
    z = b.asarray(np.array([[1000.0, -1000.0], [-1000.0, 1000.0]]))
    value = float(to_host(b, SoftmaxCrossEntropy().forward(z, b.asarray(np.array([1, 1])))))
    assert value == pytest.approx(1000.0)


def test_cross_entropy_value_and_zero_probability(cpu_float64_backend, to_host):
    b = cpu_float64_backend
    p = b.asarray(np.array([[0.2, 0.8], [0.5, 0.5]]))
    value = float(to_host(b, CrossEntropy().forward(p, b.asarray(np.array([1, 0])))))
    assert value == pytest.approx(-(math.log(0.8) + math.log(0.5)) / 2, rel=1e-14)
    zero = b.asarray(np.array([[0.0, 1.0]]))
    loss = CrossEntropy()
    value = float(to_host(b, loss.forward(zero, b.asarray(np.array([0])))))
    grad = to_host(b, loss.backward())
    assert math.isfinite(value) and value > 700  # -log(tiny) for float64 is about 708
    assert np.all(np.isfinite(grad))


def test_mse_value(cpu_float64_backend, to_host):
    b = cpu_float64_backend
    y = b.asarray(np.array([[1.0, 0.0], [0.5, 0.5]]))
    t = b.asarray(np.array([[0.0, 0.0], [0.5, 1.5]]))
    assert float(to_host(b, MSE().forward(y, t))) == pytest.approx((1 + 1) / 4)
    assert float(to_host(b, MSE(reduction="sum").forward(y, t))) == pytest.approx(2.0)
    # Integer labels are one-hot targets: row 0 -> [0, 1], row 1 -> [1, 0].
    value = MSE().forward(y, b.asarray(np.array([1, 0])))
    assert float(to_host(b, value)) == pytest.approx((1 + 1 + 0.25 + 0.25) / 4)


@pytest.mark.parametrize("factory", [SoftmaxCrossEntropy, CrossEntropy, MSE])
def test_target_shapes_are_checked(factory, numpy_backend):
    out = np.full((3, 4), 0.25)
    with pytest.raises(ValueError, match="labels"):
        factory().forward(out, np.array([0, 1]))
    with pytest.raises(ValueError, match="shape"):
        factory().forward(out, np.zeros((3, 5)))


def test_loss_validation():
    with pytest.raises(ValueError, match="reduction"):
        MSE(reduction="none")
    with pytest.raises(ValueError, match="label_smoothing"):
        SoftmaxCrossEntropy(label_smoothing=1.0)
    with pytest.raises(ValueError, match="unknown loss"):
        loss_from_config({"type": "Hinge"})


@pytest.mark.parametrize("loss", [SoftmaxCrossEntropy(0.1, "sum"), SoftmaxCrossEntropy(),
                                  CrossEntropy(reduction="sum"), MSE()])
def test_loss_config_round_trip(loss):
    import json

    config = json.loads(json.dumps(loss.config()))
    again = loss_from_config(config)
    assert type(again) is type(loss)
    assert again.config() == loss.config()
    out, t = np.array([[0.2, 0.8], [0.6, 0.4]]), np.array([1, 0])
    assert float(again.forward(out, t)) == float(loss.forward(out, t))
