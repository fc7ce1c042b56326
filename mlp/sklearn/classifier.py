"""The classifier: softmax cross-entropy over ``len(classes_)`` outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import get_config
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, unique_labels

from .._xp import Array, array_namespace, device
from ..layers import log_softmax
from ..model import Network
from .arrays import to_host
from .base import BaseMLP


class MLPClassifier(ClassifierMixin, BaseMLP):
    """A multilayer perceptron classifier trained with softmax cross-entropy (see the module
    docstring for its parameters and how they differ from scikit-learn's ``MLPClassifier``)."""

    _multi_output = False
    _classes = True

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train for ``max_iter`` epochs (or until converged); returns ``self``."""
        X, y = self._validate(X, y)
        check_classification_targets(y)
        if not (self.warm_start and hasattr(self, "classes_")):
            self._set_classes(y, like=y)
        return self._fit(X, self._encode(y), incremental=False)

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over ``(X, y)``; the first call needs ``classes`` (every label)."""
        first = not hasattr(self, "classes_")
        X, y = self._validate(X, y, reset=first)
        check_classification_targets(y)
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            self._set_classes(classes, like=y)
        return self._fit(X, self._encode(y), incremental=True)

    def _set_classes(self, classes: Any, like: Any) -> None:
        """``classes_``: the sorted labels of ``classes``; under array API dispatch in the
        namespace and on the device of ``like`` (``y``) where they are numbers."""
        labels = unique_labels(to_host(classes))
        if len(labels) < 2:
            raise ValueError(f"the classifier needs at least 2 classes, got 1 class: "
                             f"{labels.tolist()}")
        self.n_outputs_ = len(labels)
        self.out_activation_ = "softmax"
        self.classes_ = labels
        if get_config().get("array_api_dispatch") and labels.dtype.kind in "biuf":
            try:
                self.classes_ = array_namespace(like).asarray(labels, device=device(like))
            except TypeError:  # labels that are no array: host NumPy
                pass

    def _encode(self, y: Any) -> np.ndarray:
        """``y``'s labels as indices into ``classes_`` (host int64)."""
        labels, host = to_host(self.classes_), to_host(y)
        idx = np.minimum(np.searchsorted(labels, host), len(labels) - 1)
        if np.any(labels[idx] != host):
            raise ValueError(f"y holds labels not in classes_ {labels.tolist()}")
        return idx.astype(np.int64)

    def predict(self, X: Any) -> Any:
        """The class of each row of ``X``, from ``classes_``."""
        out = self._outputs(X, "predict")
        xp = array_namespace(out)
        idx = xp.argmax(out, axis=1)
        if isinstance(self.classes_, np.ndarray):
            return self.classes_[np.asarray(self._network().backend.to_numpy(idx))]
        return xp.take(self.classes_, idx)

    def predict_log_proba(self, X: Any) -> Any:
        """Log-probabilities ``(N, len(classes_))``."""
        out = self._outputs(X, "predict_log_proba")
        return log_softmax(out, array_namespace(out))

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities ``(N, len(classes_))`` (rows sum to 1)."""
        out = self._outputs(X, "predict_proba")
        xp = array_namespace(out)
        return xp.exp(log_softmax(out, xp))

    def _validation_score(self, model: Network, x: Array, t: Array) -> float:
        """Accuracy of the network on ``x (N, D)`` and class indices ``t (N,)``."""
        return model.evaluate(x, t)["accuracy"]
