"""AdaptiveAvgPool2d: average pooling to a fixed output size, whatever the input's (GAP).

The windows are PyTorch's: output row i averages input rows floor(i I / O) up to
ceil((i + 1) I / O), so 7x5 -> 3x2 works, with overlapping windows where O does not divide I.
``GAP`` in architecture strings is ``AdaptiveAvgPool2d(1)``: one mean per depth slice, and an
FC after it flattens the C values, as after any spatial layer.
"""

from __future__ import annotations

import math

from cnnkit.errors import ShapeError
from cnnkit.functional.engine import current
from cnnkit.nn.checks import check_array
from cnnkit.nn.context import keep
from cnnkit.nn.layer import Layer
from cnnkit.nn.registry import register_layer
from cnnkit.nn.spec_args import Arg, ArgError, Size


@register_layer("GAP")
class AdaptiveAvgPool2d(Layer):
    """Mean over adaptive windows to ``output_size`` (an int or an (h, w) pair)."""

    spec_args = (Arg("output_size", "out", Size(), 1),)
    onnx_ops = ("GlobalAveragePool",)

    def onnx_nodes(self, graph, x):  # ONNX (cnnkit.interop): an AveragePool unless 1x1
        if self.output_size == (1, 1):
            return graph.add_node("GlobalAveragePool", [x])
        return graph.add_node(
            "AveragePool", [x], **graph.uniform_windows(self, x, self.output_size)
        )

    @classmethod
    def from_onnx(cls, node):
        return node.build(cls, 1)

    torch_classes = ("AdaptiveAvgPool2d",)

    def torch_module(self, convert):
        return convert.torch_layer(self)

    @classmethod
    def from_torch_module(cls, module, convert):
        return cls(**convert.arguments(cls, module))

    def __init__(self, output_size=1) -> None:
        try:
            self.output_size = Size().read(output_size, repr(output_size), "output_size")
        except ArgError as error:
            raise ShapeError(f"AdaptiveAvgPool2d: {error}") from None

    def get_config(self) -> dict:
        return {"output_size": self.output_size}

    def extra_repr(self) -> str:
        h, w = self.output_size
        return str(h) if h == w else f"({h}, {w})"

    def output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ShapeError(
                f"{self!r}: expected a 4-D input (N, C, H, W), got shape {tuple(input_shape)}; "
                "it averages over each depth slice's H x W"
            )
        n, c, h, w = input_shape
        oh, ow = self.output_size
        if oh > h or ow > w:
            raise ShapeError(
                f"{self!r}: an output of {oh}x{ow} from an input of {h}x{w} would repeat "
                f"input values; use an output_size of at most {h}x{w}"
            )
        return (n, c, oh, ow)

    def forward(self, x):
        check_array(self, x, 4, "(N, C, H, W)")
        self.output_shape(x.shape)
        engine = current()
        y, saved = engine.adaptive_avg_pool2d_forward(x, self.output_size)
        keep(self._local.call, engine, saved)
        return y

    def backward(self, dy):
        engine, input_shape = self._local.call.saved
        return engine.adaptive_avg_pool2d_backward(dy, input_shape)

    def memory(self, input_shape, dtype_bytes: int, layout):
        out = self.output_shape(input_shape)
        return math.prod(out[1:]) * dtype_bytes, 0, layout

    def field_after(self, field):
        """The whole input for a 1x1 output; for larger outputs too (reported conservatively:
        a window's extent depends on the input size, which the field does not carry)."""
        return None

    def explain(self, input_shape) -> str:
        _, c, h, w = self.output_shape(input_shape)[:2] + tuple(input_shape[2:])
        oh, ow = self.output_size
        return (
            f"GAP (adaptive average pool): the mean of each of {oh}x{ow} windows that together "
            f"cover the {h}x{w} input, in each of the {c} depth slices on its own: "
            f"{h}x{w}x{c} -> {oh}x{ow}x{c}; no parameters."
        )
