"""ReLU: max(x, 0) element-wise, the lecture's RELU layer."""

from __future__ import annotations

import math

import numpy as np

from cnnkit.backend import is_array
from cnnkit.errors import DTypeError
from cnnkit.functional.engine import current
from cnnkit.nn.context import keep
from cnnkit.nn.layer import Layer
from cnnkit.nn.registry import register_layer

MASK_BYTES = 1  # a bool per element says where the gradient passes


@register_layer("RELU")
class ReLU(Layer):
    """max(x, 0), any shape; the output shape is the input shape."""

    spec_args = ()

    def forward(self, x):
        if (type(x) is not np.ndarray and not is_array(x)) or x.dtype.kind != "f":
            got = x.dtype if is_array(x) else type(x).__name__
            raise DTypeError(
                f"ReLU(): expected a floating-point array, got {got}; "
                "convert with np.asarray(x, dtype=np.float32)"
            )
        engine = current()
        y, passes = engine.relu_forward(x, self._local.workspace)
        keep(self._local.call, engine, passes)
        return y

    def backward(self, dy):
        engine, passes = self._local.call.saved
        return engine.relu_backward(dy, passes, self._local.workspace)

    def get_config(self) -> dict:
        return {}

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def memory(self, input_shape, dtype_bytes: int, layout):
        elements = math.prod(input_shape[1:])
        return elements * dtype_bytes, elements * MASK_BYTES, layout

    def explain(self, input_shape) -> str:
        return (
            "RELU: max(x, 0) for every value on its own; the shape does not change and there "
            "are no parameters. Backward passes the gradient where x was positive."
        )
