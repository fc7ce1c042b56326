"""The regressor: identity output, mean squared error, one or several outputs."""

from __future__ import annotations

from typing import Any

from sklearn.base import RegressorMixin

from .._xp import Array, array_namespace
from ..losses import MSE
from ..model import Network
from .base import BaseMLP


class MLPRegressor(RegressorMixin, BaseMLP):
    """A multilayer perceptron regressor: identity output, mean squared error (see the module
    docstring for its parameters and how they differ from scikit-learn's ``MLPRegressor``)."""

    _loss_class = MSE

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        """Train for ``max_iter`` epochs (or until converged); returns ``self``."""
        X, y = self._validate(X, y)
        return self._fit(X, self._targets(y), incremental=False)

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over ``(X, y)``."""
        X, y = self._validate(X, y, reset=not hasattr(self, "coefs_"))
        return self._fit(X, self._targets(y), incremental=True)

    def _targets(self, y: Any) -> Any:
        one = y.ndim == 1
        outputs = 1 if one else int(y.shape[1])
        if hasattr(self, "n_outputs_") and (self.warm_start or hasattr(self, "coefs_")) and \
                outputs != self.n_outputs_ and hasattr(self, "_model"):
            raise ValueError(f"y has {outputs} outputs, the fitted network {self.n_outputs_}")
        self.n_outputs_, self.out_activation_, self._one = outputs, "identity", one
        xp = array_namespace(y)
        return xp.reshape(y, (-1, 1)) if one else y

    def _reported_loss(self, loss: float) -> float:
        return loss / 2  # scikit-learn's: half the mean squared error

    def predict(self, X: Any) -> Any:
        """The predicted values ``(N,)``, or ``(N, n_outputs_)`` for a multi-output fit."""
        out = self._outputs(X, "predict")
        xp = array_namespace(out)
        return xp.reshape(out, (-1,)) if self._one else out

    def _scoreon_model(self, model: Network, x: Array, t: Array) -> float:
        xp = model.xp
        d = model.forward(x) - xp.astype(t, model.dtype)
        t = xp.astype(t, model.dtype)
        residual = xp.sum(d * d)
        spread = xp.sum((t - xp.mean(t, axis=0)) ** 2)
        r, s = (float(model.backend.to_numpy(v)) for v in (residual, spread))
        return 1.0 - r / s if s > 0 else 0.0
