"""array-api-mlp: a multilayer perceptron written once against the Python array API.

``mlp.MLP`` is the model (``fit``, ``predict``, ``predict_proba``, ``evaluate``); ``mlp.data``
loads the datasets, ``mlp.train`` holds the training loop (:class:`Trainer`) and
``mlp.checkpoint`` saves and restores models.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the submodule that defines it. Imported on first use, so that ``import mlp``
#: (and so the ``mlp`` command's start-up) does not load an array library before it is needed.
_EXPORTS = {
    **dict.fromkeys(("GELU", "Dropout", "Layer", "LeakyReLU", "Linear", "ReLU", "Sequential",
                     "Sigmoid", "Softmax", "Tanh"), "layers"),
    **dict.fromkeys(("MSE", "CrossEntropy", "SoftmaxCrossEntropy"), "losses"),
    "MLP": "fitting",
    "Network": "model",
    "build_layers": "architecture",
    **dict.fromkeys(("SGD", "Adam", "AdamW", "Optimizer"), "optimizers"),
    **dict.fromkeys(("Constant", "Cosine", "LinearWarmup", "StepDecay"), "schedules"),
    "Trainer": "train",
}
_SUBMODULES = ("architecture", "checkpoint", "data", "export", "train", "images", "inference",
               "layers", "losses", "model", "optimizers", "schedules", "sklearn", "steps")

__all__ = [*sorted(_EXPORTS), "checkpoint", "data", "train"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'mlp' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})
