"""Activations, element-wise: ReLU (the lecture's RELU layer), LeakyReLU, Sigmoid and Tanh.

Each keeps for backward only what its derivative needs: ReLU and LeakyReLU a bool mask of
where x > 0, Sigmoid and Tanh their output y (sigmoid' = y (1 - y), tanh' = 1 - y^2). The
output shape is the input shape; there are no parameters.
"""

from __future__ import annotations

import math

import numpy as np

from cnnkit.backend import is_array
from cnnkit.errors import ConfigError, DTypeError
from cnnkit.functional.engine import current
from cnnkit.nn.context import keep
from cnnkit.nn.layer import Layer
from cnnkit.nn.registry import register_layer
from cnnkit.nn.spec_args import Arg, Number

MASK_BYTES = 1  # a bool per element says where the gradient passes


class _Elementwise(Layer):
    """What the activations share: a floating-point input, its shape kept, no parameters."""

    spec_args = ()
    keeps_output = False  # True: backward needs y (a float per element), else a bool mask

    def torch_module(self, convert):
        return convert.torch_layer(self)

    @classmethod
    def from_torch_module(cls, module, convert):
        return cls(**convert.arguments(cls, module))

    def _checked(self, x):
        if (type(x) is not np.ndarray and not is_array(x)) or x.dtype.kind != "f":
            got = x.dtype if is_array(x) else type(x).__name__
            raise DTypeError(
                f"{self!r}: expected a floating-point array, got {got}; "
                "convert with np.asarray(x, dtype=np.float32)"
            )
        return x

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_onnx(cls, node):  # ONNX (cnnkit.interop): the op in onnx_ops, no attributes
        return node.build(cls)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def memory(self, input_shape, dtype_bytes: int, layout):
        elements = math.prod(input_shape[1:])
        kept = elements * (dtype_bytes if self.keeps_output else MASK_BYTES)
        return elements * dtype_bytes, kept, layout


@register_layer("RELU")
class ReLU(_Elementwise):
    """max(x, 0), any shape; the output shape is the input shape."""

    onnx_ops = ("Relu",)

    def onnx_nodes(self, graph, x):
        return graph.add_node("Relu", [x])

    torch_classes = ("ReLU",)

    def forward(self, x):
        engine = current()
        y, passes = engine.relu_forward(self._checked(x), self._local.workspace)
        keep(self._local.call, engine, passes)
        return y

    def backward(self, dy):
        engine, passes = self._local.call.saved
        return engine.relu_backward(dy, passes, self._local.workspace)

    def explain(self, input_shape) -> str:
        return (
            "RELU: max(x, 0) for every value on its own; the shape does not change and there "
            "are no parameters. Backward passes the gradient where x was positive."
        )


@register_layer("LEAKYRELU")
class LeakyReLU(_Elementwise):
    """x where x > 0, ``negative_slope * x`` elsewhere (``torch.nn.LeakyReLU``)."""

    torch_classes = ("LeakyReLU",)

    spec_args = (Arg("negative_slope", "slope", Number(), 0.01, positional=True),)
    onnx_ops = ("LeakyRelu",)

    def onnx_nodes(self, graph, x):
        return graph.add_node("LeakyRelu", [x], alpha=self.negative_slope)

    @classmethod
    def from_onnx(cls, node):
        return node.build(cls, node.attr("alpha", 0.01))

    def __init__(self, negative_slope: float = 0.01) -> None:
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, int | float):
            raise ConfigError(f"LeakyReLU: negative_slope must be a number, got {negative_slope!r}")
        if not math.isfinite(negative_slope):
            raise ConfigError(f"LeakyReLU: negative_slope must be finite, got {negative_slope}")
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        engine = current()
        y, passes = engine.leaky_relu_forward(self._checked(x), self.negative_slope)
        keep(self._local.call, engine, passes)
        return y

    def backward(self, dy):
        engine, passes = self._local.call.saved
        return engine.leaky_relu_backward(dy, passes, self.negative_slope)

    def get_config(self) -> dict:
        return {"negative_slope": self.negative_slope}

    def explain(self, input_shape) -> str:
        return (
            f"LEAKYRELU: x where x > 0, {self.negative_slope:g} * x elsewhere, for every value "
            "on its own: negative inputs keep a small gradient instead of none. No parameters."
        )


class _Smooth(_Elementwise):
    """An activation whose backward needs only its output y (Sigmoid, Tanh): the engine's
    ``<function>_forward(x)`` and ``<function>_backward(dy, y)``."""

    keeps_output = True
    function = ""

    def onnx_nodes(self, graph, x):
        return graph.add_node(self.onnx_ops[0], [x])

    def forward(self, x):
        engine = current()
        y = getattr(engine, f"{self.function}_forward")(self._checked(x))
        keep(self._local.call, engine, y)
        return y

    def backward(self, dy):
        engine, y = self._local.call.saved
        return getattr(engine, f"{self.function}_backward")(dy, y)


@register_layer("SIGMOID")
class Sigmoid(_Smooth):
    """1 / (1 + e^-x), into (0, 1) (``torch.nn.Sigmoid``)."""

    torch_classes = ("Sigmoid",)

    function = "sigmoid"
    onnx_ops = ("Sigmoid",)

    def explain(self, input_shape) -> str:
        return (
            "SIGMOID: 1 / (1 + e^-x) for every value on its own, into (0, 1); its gradient "
            "y (1 - y) is at most 1/4 and vanishes for large |x|. No parameters."
        )


@register_layer("TANH")
class Tanh(_Smooth):
    """tanh(x), into (-1, 1) (``torch.nn.Tanh``)."""

    torch_classes = ("Tanh",)

    function = "tanh"
    onnx_ops = ("Tanh",)

    def explain(self, input_shape) -> str:
        return (
            "TANH: tanh(x) for every value on its own, into (-1, 1), zero-centred; its "
            "gradient 1 - y^2 vanishes for large |x|. No parameters."
        )
