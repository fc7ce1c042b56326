"""What the classifier and the regressor share: scikit-learn's parameters and their checks,
the network they build, the training epochs with scikit-learn's stopping rule, and the fitted
attributes."""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

import backends

from .._xp import Array, array_namespace
from ..losses import SoftmaxCrossEntropy
from ..model import Network
from ..optimizers import SGD, Adam
from ..steps import choose
from .arrays import float_name, following, on_model, placement, to_host

ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": "identity"}
SOLVERS = ("adam", "sgd")


class BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, training, fitted attributes."""

    #: The network's loss; whether ``y`` may have several columns; whether it holds classes.
    _loss_class: type = SoftmaxCrossEntropy
    _multi_output = True
    _classes = False

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: Any = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001,
                 max_iter: int = 200, shuffle: bool = True, random_state: Any = None,
                 tol: float = 1e-4, verbose: bool = False, warm_start: bool = False,
                 momentum: float = 0.9, nesterovs_momentum: bool = True,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 n_iter_no_change: int = 10, backend: str = "auto", device: Any = None,
                 dtype: str | None = None, dropout: float = 0.0, schedule: Any = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.dropout = dropout
        self.schedule = schedule

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        tags.target_tags.multi_output = self._multi_output
        tags.target_tags.single_output = True
        return tags

    # --- checks ---------------------------------------------------------------------------

    def _check_parameters(self) -> list[int]:
        sizes = ([self.hidden_layer_sizes] if isinstance(self.hidden_layer_sizes, Integral)
                 else list(self.hidden_layer_sizes))
        if any(not isinstance(s, Integral) or s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got "
                             f"{self.hidden_layer_sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not supported: choose one of "
                             f"{', '.join(ACTIVATIONS)}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver {self.solver!r} is not supported: choose one of "
                             f"{', '.join(SOLVERS)} (this estimator has no lbfgs)")
        if self.learning_rate != "constant":
            raise ValueError(f"learning_rate={self.learning_rate!r} is not supported: only "
                             "'constant'; pass a schedule from mlp.schedules as schedule=")
        for name, low, high in (("alpha", 0.0, math.inf), ("learning_rate_init", 0.0, math.inf),
                                ("tol", 0.0, math.inf), ("momentum", 0.0, 1.0),
                                ("beta_1", 0.0, 1.0), ("beta_2", 0.0, 1.0),
                                ("epsilon", 0.0, math.inf), ("dropout", 0.0, 1.0),
                                ("validation_fraction", 0.0, 1.0)):
            value = getattr(self, name)
            if not isinstance(value, Real) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
        for name in ("max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.batch_size != "auto" and (not isinstance(self.batch_size, Integral)
                                          or self.batch_size < 1):
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got "
                             f"{self.batch_size!r}")
        return [int(s) for s in sizes]

    def _validate(self, X: Any, y: Any = "no_validation", reset: bool = True) -> tuple[Any, Any]:
        """``X`` (and ``y``, unless ``"no_validation"``) checked, in their own namespace."""
        dtypes: tuple[Any, ...] = ("float64", "float32")
        if get_config().get("array_api_dispatch"):
            try:
                xp = array_namespace(X)
                dtypes = (xp.float64, xp.float32)
            except TypeError:  # lists and the like: converted to NumPy
                pass
        if isinstance(y, str) and y == "no_validation":
            return validate_data(self, X, reset=reset, dtype=dtypes), None
        X, y = validate_data(self, X, y, reset=reset, multi_output=self._multi_output,
                             dtype=dtypes, y_numeric=not self._classes)
        return X, following(X, y)

    # --- the network ----------------------------------------------------------------------

    def _backend(self, X: Any) -> backends.Backend:
        """Where the network of a fit on ``X`` runs: ``backend``/``device`` as given, else X's
        library and device under array API dispatch, else NumPy."""
        if self.backend != "auto":
            return backends.get(self.backend, self.device)
        if not get_config().get("array_api_dispatch"):
            return backends.get(None, self.device)
        found = backends.for_array(X)
        return found if self.device is None else backends.get(found.name, self.device)

    def _build(self, backend: backends.Backend, dtype: str, n_features: int,
               seed: int) -> Network:
        """A fresh network ``n_features -> hidden_layer_sizes -> n_outputs_`` with the solver's
        optimizer; ``alpha`` becomes the weight decay ``alpha / self._batch``."""
        sizes = self._check_parameters()
        if self.solver == "adam":
            optimizer = Adam(self.learning_rate_init, betas=(self.beta_1, self.beta_2),
                             eps=self.epsilon, weight_decay=self.alpha / self._batch,
                             schedule=self.schedule)
        else:
            optimizer = SGD(self.learning_rate_init, momentum=self.momentum,
                            nesterov=self.nesterovs_momentum and self.momentum > 0,
                            weight_decay=self.alpha / self._batch, schedule=self.schedule)
        model = Network([n_features, *sizes, self.n_outputs_],
                        activation=ACTIVATIONS[self.activation], dropout=self.dropout,
                        loss=self._loss_class(), optimizer=optimizer, backend=backend,
                        dtype=dtype, seed=seed)
        choose(model)
        return model

    def _batch_size(self, n: int) -> int:
        """Samples per step for a set of ``n``: scikit-learn's ``"auto"`` is 200."""
        return min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)

    # --- training -------------------------------------------------------------------------

    def _fit(self, X: Any, T: Any, incremental: bool) -> BaseMLP:
        """Train on ``X (N, n_features_in_)`` and the network's targets ``T`` (``(N,)`` int64
        class indices or ``(N, n_outputs_)`` values, of any namespace): ``max_iter`` epochs, or
        one when ``incremental``. A first fit, or one without ``warm_start``, starts afresh."""
        rng = check_random_state(self.random_state)
        if not (incremental or self.warm_start) or not hasattr(self, "coefs_"):
            dtype = self.dtype or float_name(X)
            self._batch = self._batch_size(X.shape[0])
            self._model = self._build(self._backend(X), dtype, X.shape[1],
                                      int(rng.randint(2**31 - 1)))
            self.n_iter_, self.t_, self.loss_curve_ = 0, 0, []
            self._best_loss, self.best_loss_ = math.inf, math.inf
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = -math.inf if self.early_stopping else None
            self._no_improvement, self._best = 0, None
        model = self._network()
        early = self.early_stopping and not incremental  # as scikit-learn: not in partial_fit
        with model.backend.activate():
            x, t = on_model(model, X, model.dtype), on_model(model, T)
            x_val = t_val = None
            if early:
                x, x_val, t, t_val = self._split(x, t, rng)
            self._epochs(model, x, t, x_val, t_val, rng, 1 if incremental else self.max_iter,
                         incremental)
            self._publish()
        return self

    def _split(self, x: Array, t: Array, rng: Any) -> tuple[Array, Array, Array, Array]:
        """``x`` and ``t`` cut into training and validation rows (``validation_fraction`` of
        them; stratified by class for the classifier)."""
        n = x.shape[0]
        host_t = self._model.backend.to_numpy(t)
        stratify = host_t if self._classes and len(np.unique(host_t)) > 1 else None
        train, val = train_test_split(np.arange(n), test_size=self.validation_fraction,
                                      random_state=rng, stratify=stratify)
        if len(train) == 0 or len(val) == 0:
            raise ValueError(f"validation_fraction={self.validation_fraction} leaves an empty "
                             f"training or validation set of {n} samples")
        take = self._rows
        return take(x, train), take(x, val), take(t, train), take(t, val)

    def _rows(self, a: Array, idx: Any) -> Array:
        """The rows ``idx`` (host integers) of ``a``, on the network's device."""
        model = self._model
        return model.xp.take(a, model.backend.asarray(np.asarray(idx, dtype=np.int64)), axis=0)

    def _epochs(self, model: Network, x: Array, t: Array, x_val: Any, t_val: Any, rng: Any,
                epochs: int, incremental: bool) -> None:
        """Up to ``epochs`` epochs of shuffled mini-batches, each followed by the stopping rule
        (:meth:`_converged`); early stopping ends on the best validation score's parameters."""
        xp, n = model.xp, x.shape[0]
        batch = self._batch_size(n)
        squares = self.alpha * 0.5 / self._batch
        take = model.ops.take_rows
        for _ in range(epochs):
            # One permutation per epoch crosses to the device; the batches are its slices.
            order = model.backend.asarray(rng.permutation(n) if self.shuffle else np.arange(n))
            total = xp.zeros((), dtype=model.dtype, device=model.backend.device)
            for lo in range(0, n, batch):
                idx = order[lo:min(lo + batch, n)]
                loss = model.train_step(take(x, idx), take(t, idx))
                total = total + loss * model.loss.sum_factor(idx.shape[0])
            loss = float(model.backend.to_numpy(total)) / n
            if not math.isfinite(loss):
                raise ValueError(f"the loss became {loss} in iteration {self.n_iter_ + 1}: "
                                 "lower learning_rate_init, or scale the inputs")
            weights = float(model.backend.to_numpy(xp.sum(xp.stack(
                [xp.sum(w * w) for name, w in model.parameters().items()
                 if name.endswith(".W")]))))
            loss = self._reported_loss(loss) + squares * weights
            self.n_iter_ += 1
            self.t_ += n
            self.loss_curve_.append(loss)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            if self._converged(model, loss, x_val, t_val, x_val is not None) or incremental:
                break
        else:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          "and the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=4)
        if x_val is not None and self._best is not None:
            model.store.load_flat(model.xp.asarray(self._best, copy=True))

    def _reported_loss(self, loss: float) -> float:
        return loss

    def _converged(self, model: Network, loss: float, x_val: Any, t_val: Any,
                   early: bool) -> bool:
        """scikit-learn's stopping rule after an epoch: ``n_iter_no_change`` epochs in a row
        without improving the best validation score (``early``) or loss by ``tol``."""
        if early:
            score = self._validation_score(model, x_val, t_val)
            self.validation_scores_.append(score)
            improved = score > self.best_validation_score_ + self.tol
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best = model.xp.asarray(model.store.flat, copy=True)
        else:
            improved = loss < self._best_loss - self.tol
        self._best_loss = min(self._best_loss, loss)
        self._no_improvement = 0 if improved else self._no_improvement + 1
        if self._no_improvement >= self.n_iter_no_change:
            if self.verbose:
                what = "Validation score" if early else "Training loss"
                print(f"{what} did not improve more than tol={self.tol} for "
                      f"{self.n_iter_no_change} consecutive epochs. Stopping.")
            return True
        return False

    def _publish(self) -> None:
        """The fitted attributes scikit-learn's estimators have, from the network."""
        model = self._model
        params = model.parameters()
        copy = lambda a: model.xp.asarray(a, copy=True)  # noqa: E731
        linears = sorted({int(name.split(".")[0]) for name in params})
        self.coefs_ = [copy(params[f"{i}.W"]) for i in linears]
        self.intercepts_ = [copy(params[f"{i}.b"]) for i in linears]
        self.n_layers_ = len(self.coefs_) + 1
        self.loss_ = self.loss_curve_[-1]
        self.best_loss_ = None if self.early_stopping else self._best_loss

    def _network(self) -> Network:
        """The fitted network; after unpickling, built again where it was fitted, with the
        fitted parameters (and a fresh optimizer state)."""
        if getattr(self, "_model", None) is None:
            check_is_fitted(self, "coefs_")
            first = self.coefs_[0]
            backend = (backends.for_array(first) if self.backend == "auto"
                       else backends.get(self.backend, self.device))
            model = self._build(backend, float_name(first), int(first.shape[0]), seed=0)
            linears = [i for i, layer in enumerate(model.layers) if "W" in layer.param_shapes()]
            arrays = {}
            for i, w, b in zip(linears, self.coefs_, self.intercepts_, strict=True):
                arrays[f"{i}.W"], arrays[f"{i}.b"] = to_host(w), to_host(b)
            model.load_state_dict(arrays)
            self._model = model
        return self._model

    def _outputs(self, X: Any, method: str) -> Array:
        model = self._network()
        self._check_namespace(X, method)
        X, _ = self._validate(X, reset=False)
        with model.backend.activate():
            return model.forward(on_model(model, X, model.dtype))

    def _check_namespace(self, X: Any, method: str) -> None:
        """Under array API dispatch, ``X`` is of the library and device the fit was."""
        if not get_config().get("array_api_dispatch"):
            return
        (xp, where), (fit_xp, fit_where) = placement(X), placement(self.coefs_[0])
        if xp is not fit_xp or where != fit_where:
            raise ValueError(
                f"{type(self).__name__}.{method}() must use the same namespace and device as "
                f"fit: fitted with {fit_xp.__name__} on {fit_where}, called with "
                f"{xp.__name__} on {where}")

    def __getstate__(self) -> dict[str, Any]:
        """The estimator without its network (rebuilt from ``coefs_`` when needed); the
        fitted arrays stay in their library, on their device."""
        state = dict(self.__dict__)
        state.pop("_model", None)
        if "_best" in state:
            state["_best"] = None
        return state
