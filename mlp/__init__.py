"""array-api-mlp: a multilayer perceptron written once against the Python array API."""

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
from .model import MLP
from .optimizers import SGD, Adam, AdamW, Optimizer
from .schedules import Constant, Cosine, LinearWarmup, StepDecay

__version__ = "0.1.0"

__all__ = [
    "GELU", "MLP", "MSE", "SGD", "Adam", "AdamW", "Constant", "Cosine", "CrossEntropy",
    "Dropout", "Layer", "LeakyReLU", "Linear", "LinearWarmup", "Optimizer", "ReLU",
    "Sequential", "Sigmoid", "Softmax", "SoftmaxCrossEntropy", "StepDecay", "Tanh",
]
