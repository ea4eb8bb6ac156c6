"""cnnkit: convolutional neural networks from scratch on NumPy, explained and checked.

>>> import numpy as np, cnnkit
>>> model = cnnkit.Sequential(
...     cnnkit.Conv2d(1, 8, 3, padding=1, rng=np.random.default_rng(0)),
...     cnnkit.ReLU(),
...     cnnkit.MaxPool2d(2),
...     cnnkit.Flatten(),
...     cnnkit.Linear(8 * 4 * 4, 10, rng=np.random.default_rng(1)),
... )
>>> model.output_shape((64, 1, 8, 8))
(64, 10)
"""

from cnnkit.data import Dataset, load_dataset, load_optdigits
from cnnkit.errors import (
    CnnkitError,
    ConfigError,
    DataError,
    DTypeError,
    ShapeError,
    StateError,
    TrainingError,
)
from cnnkit.layers import AvgPool2d, Conv2d, Flatten, Layer, Linear, MaxPool2d, ReLU
from cnnkit.losses import CrossEntropyLoss
from cnnkit.model import Sequential, lecture_network
from cnnkit.optim import SGD, Adam, AdamW, make_optimizer, make_schedule
from cnnkit.parameter import Parameter
from cnnkit.spec import SpecError, from_spec
from cnnkit.summary import summarize
from cnnkit.train import Recipe, fit, load_run

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "AvgPool2d",
    "CnnkitError",
    "ConfigError",
    "Conv2d",
    "CrossEntropyLoss",
    "DTypeError",
    "DataError",
    "Dataset",
    "Flatten",
    "Layer",
    "Linear",
    "MaxPool2d",
    "Parameter",
    "ReLU",
    "Recipe",
    "Sequential",
    "ShapeError",
    "SpecError",
    "StateError",
    "TrainingError",
    "fit",
    "from_spec",
    "lecture_network",
    "load_dataset",
    "load_optdigits",
    "load_run",
    "make_optimizer",
    "make_schedule",
    "summarize",
]
