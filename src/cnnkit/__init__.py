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

from cnnkit.arch import (
    ARCHITECTURES,
    Architecture,
    SpecError,
    architecture_of,
    from_spec,
    lecture_network,
    lecture_spec,
    parse,
    to_spec,
)
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
from cnnkit.functional.engine import engine_name, use_engine
from cnnkit.gradients import gradcheck
from cnnkit.nn import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Dropout2d,
    Flatten,
    Layer,
    LeakyReLU,
    Linear,
    MaxPool2d,
    Normalize,
    Parameter,
    ReLU,
    Residual,
    Sequential,
    Sigmoid,
    Tanh,
    enable_grad,
    no_grad,
    register_layer,
)
from cnnkit.optim import SGD, Adam, AdamW, make_optimizer, make_schedule
from cnnkit.summary import summarize
from cnnkit.train import Recipe, fit, load_run

# Conversions (the torch and onnx extras), loaded on first use: importing cnnkit imports
# neither torch nor onnx.
_INTEROP = ("export_onnx", "from_torch", "import_onnx", "to_torch")


def __getattr__(name: str):
    if name in _INTEROP:
        from cnnkit import interop

        return getattr(interop, name)
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")


__all__ = [
    "ARCHITECTURES",
    "SGD",
    "Adam",
    "AdamW",
    "AdaptiveAvgPool2d",
    "Architecture",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "CnnkitError",
    "ConfigError",
    "Conv2d",
    "CrossEntropyLoss",
    "DTypeError",
    "DataError",
    "Dataset",
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
    "Recipe",
    "Residual",
    "Sequential",
    "ShapeError",
    "Sigmoid",
    "SpecError",
    "StateError",
    "Tanh",
    "TrainingError",
    "architecture_of",
    "enable_grad",
    "engine_name",
    "export_onnx",
    "fit",
    "from_spec",
    "from_torch",
    "gradcheck",
    "import_onnx",
    "lecture_network",
    "lecture_spec",
    "load_dataset",
    "load_optdigits",
    "load_run",
    "make_optimizer",
    "make_schedule",
    "no_grad",
    "parse",
    "register_layer",
    "summarize",
    "to_spec",
    "to_torch",
    "use_engine",
]
