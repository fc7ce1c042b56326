"""scikit-learn estimators: :class:`MLPClassifier` and :class:`MLPRegressor`.

Drop-in counterparts of :mod:`sklearn.neural_network`'s estimators (the same parameter names and
meanings where the concept exists, the same fitted attributes), trained by this project's
network on any backend. Needs the ``sklearn`` extra (``pip install ".[sklearn]"``).

Array API dispatch: with ``sklearn.set_config(array_api_dispatch=True)`` and ``backend="auto"``,
``X`` and ``y`` from array-api-strict, PyTorch or CuPy stay in their library and on their device:
the network trains on the matching backend, and the fitted arrays (``coefs_``,
``intercepts_``, ``classes_``) and the outputs live there. Without dispatch, inputs are
converted to NumPy as scikit-learn's own estimators convert them.

Differences from scikit-learn's estimators:

- ``solver``: ``"adam"`` and ``"sgd"`` (no ``"lbfgs"``); ``learning_rate``: ``"constant"``
  only (``schedule=`` takes any :mod:`mlp.schedules` schedule instead); no ``power_t``,
  ``max_fun``, ``sample_weight``.
- ``alpha`` is applied as the optimizer's L2 weight decay ``alpha / batch_size``, as
  scikit-learn scales it per batch, but to the intercepts too.
- The classifier always ends in a softmax over ``len(classes_)`` outputs (two for a binary
  problem; scikit-learn uses one logistic unit), so ``out_activation_`` is ``"softmax"``.
  Multilabel targets are not supported.
- ``warm_start`` and ``partial_fit`` continue with the first fit's optimizer (its moments and
  settings); scikit-learn builds a new optimizer for each ``fit``. A pickled estimator
  continues training with a fresh optimizer state.
- The regressor's loss is the mean squared error over all outputs; ``loss_`` reports half of it,
  plus the penalty, as scikit-learn does.
- Extra parameters: ``backend`` (``"auto"``: from the input's namespace under array API
  dispatch, else NumPy), ``device``, ``dtype`` (``None``: the input's floating dtype, else
  float64), ``dropout`` and ``schedule``.
"""
from __future__ import annotations

from .classifier import MLPClassifier
from .regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
