"""Stateful layers: thin shells that validate, call the functional pair, and keep the cache."""

from cnnkit.layers.activation import ReLU
from cnnkit.layers.base import Layer
from cnnkit.layers.conv import Conv2d
from cnnkit.layers.linear import Linear
from cnnkit.layers.pool import AvgPool2d, MaxPool2d
from cnnkit.layers.reshape import Flatten

__all__ = ["AvgPool2d", "Conv2d", "Flatten", "Layer", "Linear", "MaxPool2d", "ReLU"]
