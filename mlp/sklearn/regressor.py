"""The regressor: identity output, mean squared error, one or several outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
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
        return self._fit(X, self._targets(y, incremental=False), incremental=False)

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over ``(X, y)``."""
        X, y = self._validate(X, y, reset=not hasattr(self, "coefs_"))
        return self._fit(X, self._targets(y, incremental=True), incremental=True)

    def _targets(self, y: Any, incremental: bool) -> Any:
        """``y`` as the network's target rows ``(N, n_outputs_)``; a fit that continues the
        fitted network (``partial_fit``, ``warm_start``) must keep its number of outputs."""
        one = y.ndim == 1
        outputs = 1 if one else int(y.shape[1])
        if (incremental or self.warm_start) and hasattr(self, "coefs_") and \
                outputs != self.n_outputs_:
            raise ValueError(f"y has {outputs} output(s), the fitted network "
                             f"{self.n_outputs_}: fit without warm_start to start again")
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

    def _validation_score(self, model: Network, x: Array, t: Array) -> float:
        """R² of the network on ``x (N, D)``, ``t (N, n_outputs_)``, averaged over the outputs
        as scikit-learn's ``score`` does (a constant output: 1 when predicted exactly, else
        0)."""
        xp = model.xp
        t = xp.astype(t, model.dtype)
        d = model.forward(x) - t
        sums = xp.stack([xp.sum(d * d, axis=0), xp.sum((t - xp.mean(t, axis=0)) ** 2, axis=0)])
        residual, spread = model.backend.to_numpy(sums)
        constant = np.where(residual == 0, 1.0, 0.0)
        r2 = np.where(spread > 0, 1.0 - residual / np.where(spread > 0, spread, 1.0), constant)
        return float(np.mean(r2))
