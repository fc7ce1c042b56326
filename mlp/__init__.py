"""array-api-mlp: a multilayer perceptron written once against the Python array API.

``mlp.MLP`` is the model (``fit``, ``predict``, ``predict_proba``, ``evaluate``); ``mlp.data``
loads the datasets, ``mlp.train`` holds the training loop (:class:`Trainer`) and
``mlp.checkpoint`` saves and restores models.
"""

from . import checkpoint, data, train
from .layers import (
    GELU,
    Dropout,
    Layer,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from .losses import MSE, CrossEntropy, SoftmaxCrossEntropy
from .model import MLP, build_layers
from .optimizers import SGD, Adam, AdamW, Optimizer
from .schedules import Constant, Cosine, LinearWarmup, StepDecay
from .train import Trainer

__version__ = "0.1.0"

__all__ = [
    "GELU", "MLP", "MSE", "SGD", "Adam", "AdamW", "Constant", "Cosine", "CrossEntropy",
    "Dropout", "Layer", "LeakyReLU", "Linear", "LinearWarmup", "Optimizer", "ReLU",
    "Sequential", "Sigmoid", "Softmax", "SoftmaxCrossEntropy", "StepDecay", "Tanh", "Trainer",
    "build_layers", "checkpoint", "data", "train",
]
