"""Layers: the contract (:class:`Layer`), the registry of keywords, and every built-in layer.

Each layer module registers its own layer (``@register_layer("CONV")``); importing this package
registers them all. A user's layer is one class that subclasses :class:`Layer` and registers
itself the same way.
"""

from cnnkit.nn.activation import LeakyReLU, ReLU, Sigmoid, Tanh
from cnnkit.nn.adaptive import AdaptiveAvgPool2d
from cnnkit.nn.batchnorm import BatchNorm1d, BatchNorm2d
from cnnkit.nn.containers import Sequential
from cnnkit.nn.conv import Conv2d
from cnnkit.nn.dropout import Dropout, Dropout2d
from cnnkit.nn.layer import Layer
from cnnkit.nn.linear import Linear
from cnnkit.nn.loss import CrossEntropyLoss
from cnnkit.nn.modes import enable_grad, no_grad
from cnnkit.nn.normalize import Normalize
from cnnkit.nn.parameter import Parameter
from cnnkit.nn.pool import AvgPool2d, MaxPool2d
from cnnkit.nn.registry import register_layer
from cnnkit.nn.reshape import Flatten
from cnnkit.nn.residual import Residual

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Dropout2d",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "Normalize",
    "Parameter",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "enable_grad",
    "no_grad",
    "register_layer",
]
