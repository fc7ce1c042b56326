"""Layers with hand-written forward and backward passes."""

from .activations import ACTIVATIONS, GELU, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from .base import Layer
from .dropout import Dropout
from .linear import Linear
from .sequential import Sequential
from .softmax import Softmax, log_softmax

__all__ = [
    "ACTIVATIONS", "GELU", "Dropout", "Identity", "Layer", "LeakyReLU", "Linear", "ReLU",
    "Sequential", "Sigmoid", "Softmax", "Tanh", "log_softmax",
]
