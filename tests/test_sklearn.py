"""The scikit-learn estimators: scikit-learn's own estimator checks, array API dispatch, and the
tools scikit-learn users put an estimator in (Pipeline, GridSearchCV, cross_val_score, clone,
CalibratedClassifierCV).

The module skips where scikit-learn is not installed; the ``sklearn`` nox session installs it
(oldest and newest allowed) and fails on any skip.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import warnings
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace

sklearn = pytest.importorskip("sklearn", reason="the estimators need scikit-learn (.[sklearn])")

from sklearn import config_context  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.calibration import CalibratedClassifierCV  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import backends  # noqa: E402
from mlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402
from mlp.sklearn.arrays import to_host  # noqa: E402

# --------------------------------------------------------------------------- estimator checks

ESTIMATORS = [
    MLPClassifier((32,), random_state=0),
    MLPClassifier((32,), solver="sgd", learning_rate_init=0.1, random_state=0),
    MLPClassifier((32,), dtype="float32", random_state=0),
    MLPRegressor((32,), random_state=0),
    MLPRegressor((32,), solver="sgd", random_state=0),
    MLPRegressor((32,), dtype="float32", random_state=0),
]


def _hardware_here(check: Any) -> bool:
    """Whether an array API check's namespace and device exist on this machine: checks for
    GPUs and accelerators that are absent are not generated (elsewhere a check never skips)."""
    keywords = getattr(check, "keywords", {})
    name = str(keywords.get("array_namespace", ""))
    device = str(keywords.get("device", keywords.get("device_name", "")) or "")
    for ns in (keywords.get("X_ns_and_device"), keywords.get("other_ns_and_device")):
        if ns is not None:
            name += f" {getattr(ns, 'xp', '')}"
            device += f" {getattr(ns, 'device', '')}"
    if "dpnp" in name or any(d in device for d in ("mps", "xpu")):
        return False
    if "cupy" in name:
        return _runs("cupy")
    if "cuda" in device:
        return _runs("torch", "cuda")
    return True


def _runs(name: str, device: str | None = None) -> bool:
    """Whether the backend ``name`` runs here on ``device`` (its library and hardware)."""
    if importlib.util.find_spec(name) is None:
        return False
    try:
        backends.get(name, device)
    except backends.BackendError:
        return False
    return True


EXPECTED_FAILED = {
    "check_regressor_multioutput": "dtype='float32' computes and predicts in float32 on "
                                   "purpose; scikit-learn expects float64 predictions here",
}


def _expected_failures(estimator: Any) -> dict[str, str]:
    """The checks an estimator is expected to fail, each with its reason."""
    if isinstance(estimator, MLPRegressor) and estimator.dtype == "float32":
        return EXPECTED_FAILED
    return {}


_checks = parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
_params = [p for p in _checks.args[1] if _hardware_here(p[1])]


@pytest.mark.parametrize(_checks.args[0], _params, **_checks.kwargs)
def test_scikit_learns_estimator_checks(estimator: Any, check: Any) -> None:
    """Every check scikit-learn runs on its own estimators (API, input validation, pickling,
    read-only inputs, subset and order invariance, idempotent fit, array API dispatch for
    every namespace installed here)."""
    if "array_api" in getattr(check, "func", check).__name__ and not os.environ.get(
            "SCIPY_ARRAY_API"):
        pytest.skip("the array API checks need SCIPY_ARRAY_API=1 (the sklearn session sets it)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# --------------------------------------------------------------------------- in users' tools


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, ...]:
    X, y = load_digits(return_X_y=True)
    return tuple(train_test_split(X, y, random_state=0, stratify=y))


def test_a_pipeline_with_a_scaler_learns_the_digits(digits) -> None:
    X_train, X_test, y_train, y_test = digits
    model = make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=50, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.95


def test_string_labels_come_back_as_strings(digits) -> None:
    X_train, X_test, y_train, _ = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    clf = MLPClassifier((32,), max_iter=5, random_state=0)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        clf.fit(X_train / 16, names[y_train])
    assert set(clf.predict(X_test)) <= set(names)
    assert list(clf.classes_) == sorted(names)
    assert clf.predict_proba(X_test).shape == (len(X_test), 10)


def test_grid_search_in_worker_processes_and_cross_validation(digits) -> None:
    X_train, _, y_train, _ = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=40, random_state=0))
    search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2]}, cv=2, n_jobs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X_train, y_train)
        scores = cross_val_score(clone(pipe), X_train, y_train, cv=3)
    # scikit-learn's own MLPClassifier scores 0.78 and 0.79 here (cv=2).
    assert search.best_score_ > 0.7
    assert len(scores) == 3 and scores.min() > 0.7


def test_calibrated_classifier() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=20, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        calibrated = CalibratedClassifierCV(pipe, cv=3).fit(X, y)
    proba = calibrated.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert np.allclose(proba.sum(axis=1), 1.0)


# --------------------------------------------------------------------------- behaviour


def test_fitted_attributes_are_scikit_learns(digits) -> None:
    X_train, _, y_train, _ = digits
    clf = MLPClassifier((20, 12), max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached"):
        clf.fit(X_train / 16, y_train)
    assert [c.shape for c in clf.coefs_] == [(64, 20), (20, 12), (12, 10)]
    assert [b.shape for b in clf.intercepts_] == [(20,), (12,), (10,)]
    assert (clf.n_layers_, clf.n_outputs_, clf.out_activation_) == (4, 10, "softmax")
    assert clf.n_iter_ == 3 and clf.t_ == 3 * len(X_train) and len(clf.loss_curve_) == 3
    assert clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.n_features_in_ == 64


def test_early_stopping_keeps_the_best_validation_score(digits) -> None:
    X_train, _, y_train, _ = digits
    clf = MLPClassifier((32,), early_stopping=True, n_iter_no_change=3, max_iter=100,
                        random_state=0).fit(X_train / 16, y_train)
    assert clf.n_iter_ < 100
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert len(clf.validation_scores_) == clf.n_iter_


def test_partial_fit_needs_the_classes_first(digits) -> None:
    X_train, X_test, y_train, y_test = digits
    clf = MLPClassifier((32,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X_train[:50], y_train[:50])
    clf.partial_fit(X_train[:50] / 16, y_train[:50], classes=np.arange(10))
    for _ in range(20):
        clf.partial_fit(X_train / 16, y_train)
    assert clf.n_iter_ == 21
    assert clf.score(X_test / 16, y_test) > 0.8


def test_a_fit_with_a_fixed_random_state_is_repeated_exactly(digits) -> None:
    X_train, X_test, y_train, _ = digits
    kwargs = {"hidden_layer_sizes": (16,), "max_iter": 3, "random_state": 7}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(**kwargs).fit(X_train, y_train).predict_proba(X_test)
        b = MLPClassifier(**kwargs).fit(X_train, y_train).predict_proba(X_test)
    np.testing.assert_array_equal(a, b)


def test_a_pickled_estimator_predicts_the_same(digits) -> None:
    X_train, X_test, y_train, _ = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((16,), max_iter=3, random_state=0).fit(X_train, y_train)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X_test), clf.predict_proba(X_test))


def test_the_regressor_fits_several_outputs() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = np.stack([X[:, 0] - 2 * X[:, 1], X[:, 2] * 0.5], axis=1)
    reg = MLPRegressor((32,), max_iter=300, random_state=0).fit(X, y)
    assert reg.predict(X).shape == (300, 2)
    assert reg.score(X, y) > 0.9
    assert reg.out_activation_ == "identity" and reg.n_outputs_ == 2


@pytest.mark.parametrize(("params", "message"), [
    ({"solver": "lbfgs"}, "solver 'lbfgs' is not supported"),
    ({"learning_rate": "adaptive"}, "learning_rate='adaptive' is not supported"),
    ({"activation": "softplus"}, "activation 'softplus' is not supported"),
    ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes must be positive integers"),
    ({"alpha": -1.0}, r"alpha must be a number in \[0.0, inf\]"),
    ({"batch_size": 0}, "batch_size must be 'auto' or a positive integer"),
])
def test_unsupported_options_are_one_clear_error(params: dict[str, Any], message: str) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    with pytest.raises(ValueError, match=message):
        MLPClassifier(**params).fit(X[:20], y[:20])


# --------------------------------------------------------------------------- array API dispatch


def _namespaces() -> list[Any]:
    cases = [pytest.param("array_api_strict", None, id="array_api_strict")]
    cases.append(pytest.param("array_api_strict", "device1", id="array_api_strict-device1"))
    cases.append(pytest.param("torch", "cpu", id="torch-cpu"))
    cases.append(pytest.param("torch", "cuda", id="torch-cuda", marks=pytest.mark.gpu))
    cases.append(pytest.param("cupy", None, id="cupy", marks=pytest.mark.gpu))
    return cases


@pytest.mark.parametrize(("library", "device"), _namespaces())
def test_everything_follows_x_under_array_api_dispatch(library: str, device: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if not os.environ.get("SCIPY_ARRAY_API"):
        pytest.skip("array API dispatch needs SCIPY_ARRAY_API=1 (the sklearn session sets it)")
    xp = pytest.importorskip(library)
    if library == "array_api_strict" and device is not None:
        device = xp.Device(device)
    if library == "torch" and device == "cuda" and not xp.cuda.is_available():
        pytest.skip("no CUDA device")
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    Xd = xp.asarray(X, device=device) if device is not None else xp.asarray(X)
    yd = xp.asarray(y, device=device) if device is not None else xp.asarray(y)
    with config_context(array_api_dispatch=True), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((16,), max_iter=10, random_state=0).fit(Xd, yd)
        proba, labels = clf.predict_proba(Xd), clf.predict(Xd)
        as_float = array_namespace(yd).astype(yd, array_namespace(yd).float64)
        reg = MLPRegressor((16,), max_iter=10, random_state=0).fit(Xd, as_float)
        values = reg.predict(Xd)
    want = Xd.device
    for array in (*clf.coefs_, *clf.intercepts_, clf.classes_, proba, labels, *reg.coefs_,
                  values):
        assert type(array) is type(Xd) and array.device == want
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        host = MLPClassifier((16,), max_iter=10, random_state=0).fit(X, y)
    np.testing.assert_allclose(to_host(proba), host.predict_proba(X), rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- continuing a fit


def test_partial_fit_ignores_early_stopping_as_scikit_learn_does(digits) -> None:
    X_train, _, y_train, _ = digits
    clf = MLPClassifier((16,), early_stopping=True, random_state=0)
    clf.partial_fit(X_train / 16, y_train, classes=np.arange(10))
    clf.partial_fit(X_train / 16, y_train)
    assert clf.n_iter_ == 2 and clf.validation_scores_ == []


def test_a_warm_fit_with_early_stopping_goes_on(digits) -> None:
    X_train, _, y_train, _ = digits
    clf = MLPClassifier((16,), early_stopping=True, warm_start=True, max_iter=3,
                        n_iter_no_change=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train / 16, y_train)
        clf.fit(X_train / 16, y_train)
    assert clf.n_iter_ == 6 and len(clf.validation_scores_) == 6
    assert clf.best_loss_ is None and clf.best_validation_score_ == max(clf.validation_scores_)


def test_a_cold_refit_may_change_the_number_of_outputs() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    reg = MLPRegressor((8,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert reg.fit(X, X[:, 0]).predict(X).shape == (60,)
        assert reg.fit(X, X[:, :2]).predict(X).shape == (60, 2)
        with pytest.raises(ValueError, match=r"y has 1 output\(s\), the fitted network 2"):
            reg.partial_fit(X, X[:, 0])


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_an_unpickled_estimator_goes_on_from_its_fitted_parameters(digits, solver) -> None:
    X_train, X_test, y_train, y_test = digits
    clf = MLPClassifier((16,), solver=solver, learning_rate_init=0.02, random_state=0)
    clf.partial_fit(X_train / 16, y_train, classes=np.arange(10))
    for _ in range(14):
        clf.partial_fit(X_train / 16, y_train)
    assert clf.score(X_test / 16, y_test) > 0.8
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X_test / 16),
                                  clf.predict_proba(X_test / 16))
    again.partial_fit(X_train / 16, y_train)  # from the fitted parameters, not from scratch
    assert again.n_iter_ == 16
    assert type(again._network().optimizer).__name__ == {"adam": "Adam", "sgd": "SGD"}[solver]
    assert again.score(X_test / 16, y_test) > 0.8


def test_classes_given_as_a_list_follow_y_under_dispatch(digits) -> None:
    if not os.environ.get("SCIPY_ARRAY_API"):
        pytest.skip("array API dispatch needs SCIPY_ARRAY_API=1 (the sklearn session sets it)")
    strict = pytest.importorskip("array_api_strict")
    X_train, _, y_train, _ = digits
    Xd, yd = strict.asarray(X_train / 16), strict.asarray(y_train)
    with config_context(array_api_dispatch=True):
        clf = MLPClassifier((16,), random_state=0).partial_fit(Xd, yd, classes=list(range(10)))
        assert type(clf.classes_) is type(Xd)
        assert type(clf.predict(Xd)) is type(Xd)
