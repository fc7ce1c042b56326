"""The MLP end to end: gradients against finite differences, reproducibility across backends,
parameter round trips, inputs left untouched, prediction, evaluation and training."""

from __future__ import annotations

import numpy as np
import pytest
from array_api_compat import device

from backends import BackendError
from mlp import MLP, MSE, SGD, Adam, AdamW, CrossEntropy, SoftmaxCrossEntropy

SIZES = [5, 7, 6, 3]


def data(n=16, d=SIZES[0], classes=SIZES[-1], seed=0):
    r = np.random.default_rng(seed)
    return r.normal(size=(n, d)), r.integers(0, classes, size=n)


def make(b, fast=True, dtype="float64", **kwargs):
    kwargs.setdefault("sizes", SIZES)
    return MLP(backend=b, dtype=dtype, fast=fast, **kwargs)


@pytest.fixture(params=[True, False], ids=["fast", "generic"])
def fast(request):
    return request.param


# --- gradients ---------------------------------------------------------------------------

GRAD_CASES = {
    "tanh-softmax-ce": dict(activation="tanh"),
    "gelu-label-smoothing-sum": dict(activation="gelu",
                                     loss=SoftmaxCrossEntropy(0.1, reduction="sum")),
    "sigmoid-softmax-output": dict(activation="sigmoid", output="softmax", loss=CrossEntropy()),
    "leaky-relu-mse-no-output-bias": dict(activation="leaky_relu", output_bias=False, loss=MSE(),
                                          init="normal"),
}


@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_loss_and_grads_match_finite_differences(case, cpu_float64_backend, fast, to_host):
    b = cpu_float64_backend
    model = make(b, fast=fast, seed=3, **GRAD_CASES[case])
    x_host, y_host = data(n=6)
    x, y = b.asarray(x_host), b.asarray(y_host)
    loss, grads = model.loss_and_grads(x, y)
    grads = {k: to_host(b, v) for k, v in grads.items()}
    params = model.state_dict()
    assert set(grads) == set(params)
    for name, p in params.items():
        assert grads[name].shape == p.shape, name
    assert float(to_host(b, loss)) == pytest.approx(
        float(to_host(b, model.loss.forward(model.forward(x), y))), rel=1e-14)

    eps = 1e-6
    picks = np.random.default_rng(1)
    for name, p in params.items():
        for _ in range(3):
            i = tuple(int(picks.integers(0, s)) for s in p.shape)
            values = []
            for delta in (eps, -eps):
                moved = {k: v.copy() for k, v in params.items()}
                moved[name][i] += delta
                model.load_state_dict(moved)
                values.append(float(to_host(b, model.loss.forward(model.forward(x), y))))
            numeric = (values[0] - values[1]) / (2 * eps)
            assert grads[name][i] == pytest.approx(numeric, rel=1e-6, abs=1e-9), (name, i)
    model.load_state_dict(params)


# --- reproducibility -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_initial_weights_on_every_backend(dtype, cpu_float64_backend,
                                                         numpy_backend):
    reference = make(numpy_backend, dtype=dtype, seed=7, init="normal").state_dict()
    state = make(cpu_float64_backend, dtype=dtype, seed=7, init="normal").state_dict()
    assert list(state) == list(reference) == ["0.W", "0.b", "2.W", "2.b", "4.W", "4.b"]
    for name in reference:
        assert state[name].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(state[name], reference[name], err_msg=name)
    other = make(numpy_backend, dtype=dtype, seed=8, init="normal").state_dict()
    assert not np.array_equal(other["0.W"], reference["0.W"])


def _train(b, fast, optimizer, steps=10):
    model = make(b, fast=fast, seed=1, dropout=0.2, optimizer=optimizer)
    x_host, y_host = data(n=32, seed=5)
    x, y = b.asarray(x_host), b.asarray(y_host)
    losses = [float(b.to_numpy(model.train_step(x, y))) for _ in range(steps)]
    return losses, model.state_dict()


@pytest.mark.parametrize("opt", [
    lambda: Adam(lr=0.01, weight_decay=1e-3),
    lambda: SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
], ids=["adam", "sgd"])
def test_training_is_the_same_on_every_backend(opt, cpu_float64_backend, fast, numpy_backend):
    ref_losses, ref_state = _train(numpy_backend, True, opt())
    losses, state = _train(cpu_float64_backend, fast, opt())
    assert ref_losses[-1] < ref_losses[0]
    np.testing.assert_allclose(losses, ref_losses, rtol=0, atol=1e-10)
    for name in ref_state:
        np.testing.assert_allclose(state[name], ref_state[name], rtol=0, atol=1e-10)


# --- parameters ------------------------------------------------------------------------------


def test_state_dict_round_trip_is_exact(backend, to_host):
    dtype = backend.dtypes[-1]
    source = make(backend, dtype=dtype, seed=0, optimizer=SGD(lr=0.1))
    x_host, y_host = data()
    x, y = backend.asarray(x_host, dtype), backend.asarray(y_host)
    for _ in range(3):
        source.train_step(x, y)
    state = source.state_dict()
    target = make(backend, dtype=dtype, seed=99)
    target.load_state_dict(state)
    for name, value in target.state_dict().items():
        np.testing.assert_array_equal(value, state[name], err_msg=name)
    np.testing.assert_array_equal(to_host(backend, target.forward(x)),
                                  to_host(backend, source.forward(x)))
    # state_dict hands out copies: changing one does not touch the model.
    state["0.W"][...] = 0.0
    assert np.any(source.state_dict()["0.W"] != 0)


def test_state_dict_moves_between_backends(cpu_float64_backend, numpy_backend, to_host):
    source = make(numpy_backend, seed=4)
    target = make(cpu_float64_backend, seed=5)
    target.load_state_dict(source.state_dict())
    x_host, _ = data()
    np.testing.assert_allclose(to_host(cpu_float64_backend,
                                       target.forward(cpu_float64_backend.asarray(x_host))),
                               source.forward(x_host), rtol=1e-12, atol=1e-14)


def test_load_state_dict_rejects_wrong_names_and_shapes(numpy_backend):
    model = make(numpy_backend)
    good = model.state_dict()
    missing = dict(good)
    del missing["2.b"]
    with pytest.raises(ValueError, match="missing"):
        model.load_state_dict(missing)
    with pytest.raises(ValueError, match="unexpected"):
        model.load_state_dict({**good, "9.W": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="shape"):
        model.load_state_dict({**good, "2.W": good["2.W"].T})
    with pytest.raises(ValueError, match=r"parameter 0.b has shape \(6,\), expected \(7,\)"):
        model.load_state_dict({**good, "0.b": good["0.b"][:-1]})
    np.testing.assert_array_equal(model.state_dict()["0.W"], good["0.W"])


def test_parameters_are_views_of_one_flat_buffer(numpy_backend):
    model = make(numpy_backend)
    assert model.store.size == sum(p.size for p in model.state_dict().values())
    for name, p in model.parameters().items():
        assert np.shares_memory(p, model.store.flat), name


def test_config_rebuilds_the_same_network(backend):
    model = make(backend, dtype="float32", activation="tanh", dropout=0.1, output="softmax",
                 bias=False, output_bias=True)
    again = MLP(**model.config(), backend=backend, seed=0)
    assert again.config() == model.config()
    for name, value in again.state_dict().items():
        np.testing.assert_array_equal(value, model.state_dict()[name])


def test_constructor_validation(numpy_backend):
    for kwargs, message in ((dict(sizes=[4]), "at least two positive widths, got \\[4\\]"),
                            (dict(sizes=[4, 0, 2]), "at least two positive widths"),
                            (dict(activation="swish"), "unknown activation 'swish'"),
                            (dict(output="probabilities"), "unknown output 'probabilities'")):
        with pytest.raises(ValueError, match=message):
            make(numpy_backend, **kwargs)


# --- inputs and outputs ---------------------------------------------------------------------


def test_forward_returns_an_array_the_caller_keeps(backend, to_host):
    dtype = backend.dtypes[0]
    model = make(backend, dtype=dtype)
    x1, x2 = (backend.asarray(data(seed=s)[0], dtype) for s in (1, 2))
    y1 = model.forward(x1)
    kept = to_host(backend, y1)
    y2 = model.forward(x2)
    np.testing.assert_array_equal(to_host(backend, y1), kept)
    assert not np.array_equal(to_host(backend, y2), kept)


def _read_only(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


def test_read_only_inputs_are_not_modified(numpy_backend, fast):
    model = make(numpy_backend, fast=fast, dropout=0.3)
    x_host, y_host = data()
    x, y = _read_only(x_host), _read_only(y_host)
    model.forward(x)
    model.forward(x, train=True)
    model.loss_and_grads(x, y)
    for _ in range(2):
        model.train_step(x, y)
    model.predict(x, batch_size=5)
    model.evaluate(x, y, batch_size=5)
    np.testing.assert_array_equal(x, x_host)
    np.testing.assert_array_equal(y, y_host)


def test_inputs_are_not_modified(backend, to_host):
    dtype = backend.dtypes[0]
    model = make(backend, dtype=dtype, dropout=0.3)
    x_host, y_host = data()
    x, y = backend.asarray(x_host, dtype), backend.asarray(y_host)
    before = to_host(backend, x)
    model.train_step(x, y)
    model.evaluate(x, y, batch_size=4)
    np.testing.assert_array_equal(to_host(backend, x), before)
    np.testing.assert_array_equal(to_host(backend, y), y_host)


def _check_predict_and_evaluate(b, n, batch_sizes, to_host):
    dtype = b.dtypes[-1]
    model = make(b, dtype=dtype, seed=2)
    x_host, y_host = data(n=n, seed=3)
    x, y = b.asarray(x_host, dtype), b.asarray(y_host)
    logits = to_host(b, model.forward(x))
    expected_loss = float(to_host(b, SoftmaxCrossEntropy().forward(model.forward(x), y)))
    expected_accuracy = float(np.mean(logits.argmax(axis=1) == y_host))
    assert 0 < expected_accuracy < 1  # both right and wrong predictions are counted
    for batch_size in batch_sizes:
        predicted = to_host(b, model.predict(x, batch_size=batch_size))
        np.testing.assert_array_equal(predicted, logits.argmax(axis=1))
        result = model.evaluate(x, y, batch_size=batch_size)
        assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)
        assert result["accuracy"] == pytest.approx(expected_accuracy)


def test_predict_and_evaluate(backend, to_host):
    _check_predict_and_evaluate(backend, 24, (6, 24), to_host)


def test_predict_and_evaluate_with_a_partial_last_batch(backend, to_host):
    _check_predict_and_evaluate(backend, 23, (5, 4096), to_host)


def test_evaluate_with_sum_reduction_reports_the_mean(numpy_backend):
    x, y = data(n=20)
    mean_model = make(numpy_backend, seed=2)
    sum_model = make(numpy_backend, seed=2, loss=SoftmaxCrossEntropy(reduction="sum"))
    assert sum_model.evaluate(x, y, batch_size=6)["loss"] == pytest.approx(
        mean_model.evaluate(x, y, batch_size=7)["loss"], rel=1e-12)


def test_bad_inputs_are_rejected(numpy_backend):
    model = make(numpy_backend)
    x, y = data()
    with pytest.raises(ValueError, match="shape"):
        model.forward(x[:, :-1])
    with pytest.raises(ValueError, match="shape"):
        model.forward(x[0])
    with pytest.raises(TypeError, match="float32"):
        model.forward(x.astype(np.float32))
    with pytest.raises(ValueError, match=f"{len(y) - 1} labels for {len(y)} outputs"):
        model.loss_and_grads(x, y[:-1])


def test_dropout_is_active_in_training_only(backend, to_host):
    dtype = backend.dtypes[0]
    model = make(backend, dtype=dtype, dropout=0.5, sizes=[5, 64, 3])
    x = backend.asarray(data()[0], dtype)
    evals = [to_host(backend, model.forward(x)) for _ in range(2)]
    np.testing.assert_array_equal(evals[0], evals[1])
    no_dropout = make(backend, dtype=dtype, sizes=[5, 64, 3])
    np.testing.assert_array_equal(evals[0], to_host(backend, no_dropout.forward(x)))
    trains = [to_host(backend, model.forward(x, train=True)) for _ in range(2)]
    assert not np.allclose(trains[0], evals[0])
    assert not np.allclose(trains[0], trains[1])


@pytest.mark.parametrize("opt", [
    lambda: SGD(lr=0.5), lambda: SGD(lr=0.1, momentum=0.9),
    lambda: SGD(lr=0.1, momentum=0.9, nesterov=True), lambda: Adam(lr=0.02),
    lambda: AdamW(lr=0.02, weight_decay=0.01),
], ids=["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_training_learns_an_easy_problem(opt, backend):
    """Three well separated Gaussian blobs: 60 full-batch steps must fit them."""
    dtype = backend.dtypes[0]
    r = np.random.default_rng(0)
    centres = np.array([[3.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 3.0, 0]])
    y_host = r.integers(0, 3, size=90)
    x_host = centres[y_host] + r.normal(scale=0.5, size=(90, 4))
    model = MLP([4, 16, 3], backend=backend, dtype=dtype, optimizer=opt(), seed=0)
    x, y = backend.asarray(x_host, dtype), backend.asarray(y_host)
    before = model.evaluate(x, y, batch_size=90)
    for _ in range(60):
        model.train_step(x, y)
    after = model.evaluate(x, y, batch_size=90)
    assert after["loss"] < 0.25 * before["loss"]
    assert after["accuracy"] >= 0.95


# --- backend errors ---------------------------------------------------------------------------


def test_float64_on_a_device_without_it_is_a_clear_error():
    pytest.importorskip("array_api_strict")
    with pytest.raises(BackendError, match="float64.*float32"):
        MLP(SIZES, backend="array_api_strict", device="no_float64", dtype="float64")
    model = MLP(SIZES, backend="array_api_strict", device="no_float64", dtype="float32")
    assert model.dtype_name == "float32"
    x_host, y_host = data()
    x, y = model.backend.asarray(x_host, "float32"), model.backend.asarray(y_host)
    first = float(model.backend.to_numpy(model.train_step(x, y)))
    for _ in range(5):
        last = float(model.backend.to_numpy(model.train_step(x, y)))
    assert last < first
    assert model.evaluate(x, y, batch_size=16)["loss"] < first


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(BackendError, match="unknown backend 'jax-ish'.*numpy"):
        MLP(SIZES, backend="jax-ish")
    with pytest.raises(BackendError, match="dtype"):
        MLP(SIZES, dtype="float16")


def test_model_uses_the_backend_it_is_given(backend):
    model = make(backend, dtype=backend.dtypes[0])
    assert model.backend.name == backend.name
    reference = backend.zeros((1,), backend.dtypes[0])
    for name, p in model.parameters().items():
        assert type(p) is type(reference), name
        assert p.dtype == reference.dtype, name
        assert device(p) == device(reference), name



# --- one architecture definition ------------------------------------------------------------


@pytest.mark.parametrize("config", [
    dict(sizes=[5, 7, 3]),
    dict(sizes=[5, 7, 6, 3], activation="tanh", dropout=0.2, output="softmax", bias=False,
         output_bias=True),
    dict(sizes=[4, 2], bias=False),
    dict(sizes=[4, 3, 2], output_bias=False, init="normal"),
], ids=["default", "softmax-dropout", "one-layer", "no-output-bias"])
def test_parameter_shapes_are_the_models(config, numpy_backend):
    from mlp.architecture import build_layers, parameter_shapes

    model = MLP(**config, backend=numpy_backend)
    assert parameter_shapes(model.config()) == model.store.shapes
    layers = build_layers(**config)
    assert [type(layer) for layer in layers] == [type(layer) for layer in model.layers]
    assert all(not layer.params for layer in layers)  # unbuilt: nothing allocated


def test_build_layers_validates_like_the_model():
    from mlp.architecture import build_layers

    for kwargs, message in (
        (dict(sizes=[4]), "at least two positive widths"),
        (dict(sizes=[4, 0, 2]), "at least two positive widths"),
        (dict(sizes=[4, 2], activation="swish"), "unknown activation 'swish'"),
        (dict(sizes=[4, 2], output="probabilities"), "unknown output 'probabilities'"),
        (dict(sizes=[4, 2], init="zero"), "unknown init 'zero'"),
    ):
        with pytest.raises(ValueError, match=message):
            build_layers(**kwargs)


def test_the_portable_path_is_a_new_backend_not_a_changed_one(numpy_backend):
    from backends import GenericOps

    model = make(numpy_backend, fast=False)
    assert type(model.backend.ops) is GenericOps and model.ops is model.backend.ops
    assert numpy_backend.ops.inplace  # the shared backend is untouched
    assert all(layer.ops is model.backend.ops for layer in model.layers
               if hasattr(layer, "ops") and layer.ops is not None)


# --- fit, predict_proba ------------------------------------------------------------------------


def pixels(n=60, d=SIZES[0], classes=SIZES[-1], seed=0):
    r = np.random.default_rng(seed)
    return r.integers(0, 256, size=(n, d), dtype=np.uint8), r.integers(0, classes, size=n)


def test_fit_returns_the_history_the_trainer_gives(numpy_backend):
    from mlp.train import DeviceData, Trainer

    x, y = pixels()
    seen = []
    history = make(numpy_backend, dropout=0.2).fit(
        x, y, epochs=3, batch_size=16, validation=(x[:20], y[:20]), callbacks=[seen.append],
        seed=5)
    model = make(numpy_backend, dropout=0.2)
    expected = Trainer(model, DeviceData(model, x, y), DeviceData(model, x[:20], y[:20]),
                       batch_size=16, epochs=3, seed=5).fit()
    assert seen == history and [h["epoch"] for h in history] == [1, 2, 3]
    for got, want in zip(history, expected, strict=True):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            assert got[key] == want[key], key


def test_fit_scales_pixels_and_takes_floats_as_they_are(backend):
    x, y = pixels()
    dtype = backend.dtypes[-1]
    from_pixels = make(backend, dtype=dtype).fit(x, y, epochs=2, batch_size=16)
    from_floats = make(backend, dtype=dtype).fit(x / 255.0, y, epochs=2, batch_size=16)
    for a, b in zip(from_pixels, from_floats, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    assert from_pixels[-1]["train_loss"] < from_pixels[0]["train_loss"]


def test_fit_refuses_inputs_it_cannot_use(numpy_backend):
    model = make(numpy_backend)
    x, y = pixels()
    with pytest.raises(TypeError, match="uint8 pixels or floating point"):
        model.fit(x.astype(np.int64), y)
    with pytest.raises(ValueError, match=r"labels of shape \(60,\)"):
        model.fit(x, y[:-1])
    with pytest.raises(ValueError, match=r"inputs of shape \(N, 5\)"):
        model.fit(x[:, :-1], y)
    with pytest.raises(TypeError, match="integer class indices"):
        model.fit(x, y.astype(np.float64))


@pytest.mark.parametrize("output", ["logits", "softmax"])
def test_predict_proba_gives_probabilities(output, backend, to_host):
    dtype = backend.dtypes[-1]
    loss = CrossEntropy() if output == "softmax" else None
    model = make(backend, dtype=dtype, output=output, loss=loss)
    x, _ = pixels(n=13)
    proba = model.predict_proba(x, batch_size=5)  # host uint8, three batches
    assert tuple(proba.shape) == (13, SIZES[-1]) and proba.dtype == model.dtype
    p = to_host(backend, proba)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(p.argmax(axis=1), to_host(backend, model.predict(x)))
    out = to_host(backend, model.forward(backend.asarray(x / 255.0, dtype)))
    expected = out if output == "softmax" else np.exp(out) / np.exp(out).sum(1, keepdims=True)
    np.testing.assert_allclose(p, expected, rtol=1e-5)


def test_import_mlp_reaches_data_training_and_checkpoints():
    import subprocess
    import sys

    code = ("import mlp; print(mlp.data.load.__name__, mlp.train.Trainer.__name__, "
            "mlp.Trainer is mlp.train.Trainer, mlp.checkpoint.save.__name__, "
            "mlp.checkpoint.restore.__name__, sorted(mlp.layers.ACTIVATIONS)[0], "
            "sorted(mlp.optimizers.OPTIMIZERS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["load", "Trainer", "True", "save", "restore", "gelu",
                           "['Adam',", "'AdamW',", "'SGD']"]
