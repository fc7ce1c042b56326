"""What the Python API refuses before it computes: non-finite inputs, labels outside the
classes, empty sets and counts that are not positive integers, each one clear error naming
what is wrong (and the model left as it was)."""

from __future__ import annotations

import numpy as np
import pytest

from mlp import MLP, checks

SIZES = [6, 5, 4]


def _data(n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    return r.normal(size=(n, SIZES[0])).astype(np.float32), r.integers(0, SIZES[-1], size=n)


def _model(b=None) -> MLP:
    return MLP(SIZES, backend=b, seed=0)


def _unchanged(model: MLP, before: dict[str, np.ndarray]) -> None:
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert model.optimizer.steps == 0


# --- non-finite inputs ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_fit_refuses_non_finite_inputs_before_training(bad: float) -> None:
    """A NaN vanishes in ReLU while turning the weights NaN, so the loss never shows it:
    ``fit`` checks the whole set once, before the first step."""
    x, y = _data()
    x[3, 4] = bad
    model = _model()
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"^inputs hold 1 NaN or infinite value\(s\) of 144"):
        model.fit(x, y, batch_size=8)
    _unchanged(model, before)


def test_fit_refuses_non_finite_validation_inputs() -> None:
    x, y = _data()
    xv = x.copy()
    xv[0, 0] = np.nan
    model = _model()
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"^validation inputs hold 1 NaN"):
        model.fit(x, y, batch_size=8, validation=(xv, y))
    _unchanged(model, before)


def test_fit_checks_the_inputs_once_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _data()
    model = _model()
    calls: list[tuple[int, ...]] = []
    check = checks.check_set
    monkeypatch.setattr(checks, "check_set",
                        lambda a, *args: (calls.append(tuple(a.shape)), check(a, *args)))
    model.fit(x, y, epochs=2, batch_size=8)
    assert calls == [x.shape]
    calls.clear()
    model.fit(x, y, epochs=2, batch_size=8, validation=(x[:10], y[:10]))
    # The validation set once before training, then by evaluate after each epoch.
    assert calls == [x.shape, (10, SIZES[0]), (10, SIZES[0]), (10, SIZES[0])]


def test_non_finite_inputs_on_every_backend(backend) -> None:
    x, y = _data()
    x[1, 1] = np.nan
    model = _model(backend)
    with pytest.raises(ValueError, match=r"^inputs hold 1 NaN"):
        model.fit(x, y)
    with pytest.raises(ValueError, match=r"^inputs hold 1 NaN"):
        model.evaluate(backend.asarray(x, model.dtype), backend.asarray(y))


# --- labels --------------------------------------------------------------------------------


def _labels(case: str) -> np.ndarray:
    y = _data()[1]
    if case == "all the class count":
        return np.full_like(y, SIZES[-1])
    if case == "all -1":
        return np.full_like(y, -1)
    y[5] = {"one too large": SIZES[-1], "one negative": -1, "one huge": 10**9}[case]
    return y


LABEL_CASES = ["all the class count", "all -1", "one too large", "one negative", "one huge"]


@pytest.mark.parametrize("case", LABEL_CASES)
def test_fit_refuses_labels_outside_the_classes(case: str) -> None:
    x, _ = _data()
    model = _model()
    before = model.state_dict()
    outside = r"^labels must be class indices in \[0, 4\): \d+ of 24 are not \(values from "
    with pytest.raises(ValueError, match=outside):
        model.fit(x, _labels(case), batch_size=8)
    _unchanged(model, before)


@pytest.mark.parametrize("case", ["one too large", "one negative"])
def test_fit_refuses_validation_labels_outside_the_classes(case: str) -> None:
    x, y = _data()
    model = _model()
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"^validation labels must be class indices in \[0, 4\)"):
        model.fit(x, y, batch_size=8, validation=(x, _labels(case)))
    _unchanged(model, before)


def test_fit_refuses_labels_that_are_not_integers() -> None:
    x, y = _data()
    with pytest.raises(TypeError, match=r"^labels must be integer class indices, not float64"):
        _model().fit(x, y + 0.5)
    with pytest.raises(TypeError, match=r"^labels must be integer class indices"):
        _model().fit(x, y, validation=(x, y + 0.5))


@pytest.mark.parametrize("case", LABEL_CASES)
def test_evaluate_refuses_labels_outside_the_classes(backend, case: str) -> None:
    x, _ = _data()
    model = _model(backend)
    y = backend.asarray(_labels(case))
    with pytest.raises(ValueError, match=r"^labels must be class indices in \[0, 4\): \d+ of 24"):
        model.evaluate(backend.asarray(x, model.dtype), y)


def test_evaluate_and_train_step_refuse_labels_that_are_not_integers(backend) -> None:
    """A float label matches no class: the loss would be 0. The dtype check costs nothing, so
    ``train_step`` (and the loss itself) make it on every step."""
    x, y = _data()
    model = _model(backend)
    xd = backend.asarray(x, model.dtype)
    yf = backend.asarray(y.astype(np.float32) + 0.5)
    with pytest.raises(TypeError, match=r"^labels must be integer class indices"):
        model.evaluate(xd, yf)
    before = model.state_dict()
    with pytest.raises(TypeError, match=r"^labels must be integer class indices"):
        model.train_step(xd, yf)
    _unchanged(model, before)


def test_evaluate_refuses_labels_of_another_shape() -> None:
    x, y = _data()
    model = _model()
    with pytest.raises(ValueError, match=r"^expected labels of shape \(24,\), got \(23,\)"):
        model.evaluate(x, y[:-1])


def test_the_message_counts_the_labels_outside() -> None:
    x, y = _data()
    y[[2, 7]] = [-3, 9]
    with pytest.raises(ValueError, match=r"^labels must be class indices in \[0, 4\): 2 of 24 "
                                         r"are not \(values from -3 to 9\)$"):
        _model().evaluate(x, y)


def test_labels_of_a_narrow_dtype_for_many_classes() -> None:
    """uint8 labels cannot reach 300 classes: nothing to compare (nor to overflow)."""
    x, y = _data()
    model = MLP([SIZES[0], 300], seed=0)
    assert len(model.fit(x, (y * 60).astype(np.uint8), batch_size=8)) == 1
    with pytest.raises(ValueError, match=r"^labels must be class indices in \[0, 300\): 1 of"):
        model.evaluate(x, np.where(np.arange(24) == 3, 300, y).astype(np.int16))


def test_labels_at_the_edges_are_accepted() -> None:
    x, y = _data()
    y[0], y[1] = 0, SIZES[-1] - 1
    model = _model()
    assert len(model.fit(x, y.astype(np.uint8), batch_size=8, validation=(x, y))) == 1
    assert 0.0 <= model.evaluate(x, y)["accuracy"] <= 1.0


# --- empty sets ----------------------------------------------------------------------------


def test_empty_sets_are_refused() -> None:
    x, y = _data()
    model = _model()
    empty = "x has 0 rows: at least one sample is needed"
    with pytest.raises(ValueError, match=f"^{empty}"):
        model.predict(x[:0])
    with pytest.raises(ValueError, match=f"^{empty}"):
        model.predict_proba(x[:0])
    with pytest.raises(ValueError, match=f"^{empty}"):
        model.evaluate(x[:0], y[:0])
    with pytest.raises(ValueError, match=f"^{empty}"):
        model.fit(x[:0], y[:0])
    with pytest.raises(ValueError, match=f"^validation {empty}"):
        model.fit(x, y, validation=(x[:0], y[:0]))
    with pytest.raises(ValueError, match=r"^expected x of shape \(N, 6\), got \(24,\)"):
        model.predict(x[:, 0])


# --- counts --------------------------------------------------------------------------------

BAD_COUNTS = [0, -1, 2.5, 1.0, True, "8", None]


@pytest.mark.parametrize("value", BAD_COUNTS, ids=repr)
def test_fit_refuses_a_batch_size_that_is_no_positive_integer(value: object) -> None:
    x, y = _data()
    model = _model()
    with pytest.raises(ValueError, match=r"^batch_size must be an integer >= 1, got "):
        model.fit(x, y, batch_size=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^batch_size must be an integer >= 1, got "):
        model.predict(x, batch_size=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^batch_size must be an integer >= 1, got "):
        model.predict_proba(x, batch_size=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^batch_size must be an integer >= 1, got "):
        model.evaluate(x, y, batch_size=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [*BAD_COUNTS, 1.5], ids=repr)
def test_fit_refuses_epochs_that_are_no_positive_integer(value: object) -> None:
    x, y = _data()
    model = _model()
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"^epochs must be an integer >= 1, got "):
        model.fit(x, y, epochs=value)  # type: ignore[arg-type]
    _unchanged(model, before)


def test_numpy_integers_are_counts() -> None:
    x, y = _data()
    model = _model()
    history = model.fit(x, y, epochs=np.int64(2), batch_size=np.int32(8))
    assert [h["epoch"] for h in history] == [1, 2]
    assert model.optimizer.steps == 6
    assert model.predict(x, batch_size=np.uint8(5)).shape == (24,)
