"""Flatten: the volume (N, C, H, W) becomes a vector per example for the FC layer."""

from __future__ import annotations

import math

from cnnkit.backend import is_array
from cnnkit.errors import ConfigError, DTypeError, ShapeError
from cnnkit.functional.fast.layout import NCHW, NHWC, in_layout, layout_of
from cnnkit.nn.layer import Layer
from cnnkit.nn.registry import register_layer
from cnnkit.nn.spec_args import Arg


@register_layer("FLATTEN")
class Flatten(Layer):
    """Merge axes ``start_dim..end_dim`` into one, as ``torch.nn.Flatten`` (default: all but N).

    (N, C, H, W) -> (N, C*H*W), in C, H, W order, so weights match PyTorch's after export.
    """

    spec_args = (Arg("start_dim", "start_dim", default=1), Arg("end_dim", "end_dim", default=-1))
    torch_classes = ("Flatten",)

    def torch_module(self, convert):
        return convert.torch_layer(self)

    @classmethod
    def from_torch_module(cls, module, convert):
        """Only ``torch.nn.Flatten()``: the layers after it take (N, features)."""
        why = "cnnkit's FC, BN1D and DROPOUT after a FLATTEN take (N, features), the batch kept"
        convert.require(module, "start_dim", 1, why)
        convert.require(module, "end_dim", -1, why)
        return cls()

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        if not isinstance(start_dim, int) or not isinstance(end_dim, int):
            raise ConfigError(
                f"Flatten: start_dim and end_dim must be ints, got {start_dim!r}, {end_dim!r}"
            )
        self.start_dim = start_dim
        self.end_dim = end_dim

    def get_config(self) -> dict:
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}

    # -- ONNX (cnnkit.interop): Flatten(axis=1), or a Reshape; reads both to (N, -1) ---------
    onnx_ops = ("Flatten", "Reshape")

    def onnx_nodes(self, graph, x):
        shape = graph.shape(x)
        start, end = self._axes(len(shape))
        if (start, end) == (1, len(shape) - 1):
            return graph.add_node("Flatten", [x], axis=1)
        target = graph.add_initializer([0] * start + [-1, *shape[end + 1 :]], "shape")
        return graph.add_node("Reshape", [x, target])

    @classmethod
    def from_onnx(cls, node):
        if node.op == "Flatten":
            if node.attr("axis", 1) != 1:
                raise node.refuse("only axis=1 (keep the batch axis, merge the rest) is read")
            return node.build(cls)
        size, target = math.prod(node.input_shape[1:]), node.constant(1).astype(int).tolist()
        batch = target[0] == -1 or (target[0] == 0 and not node.attr("allowzero", 0))
        if len(target) != 2 or not batch or target[1] not in (-1, size) or target == [-1, -1]:
            raise node.refuse(
                f"reshapes to {target}; cnnkit reads a Reshape to (N, -1) only: [0, -1], "
                f"[-1, {size}] or [0, {size}], allowzero 0"
            )
        return node.build(cls)

    def extra_repr(self) -> str:
        if (self.start_dim, self.end_dim) == (1, -1):
            return ""
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"

    def _axes(self, ndim: int) -> tuple[int, int]:
        start = self.start_dim + ndim if self.start_dim < 0 else self.start_dim
        end = self.end_dim + ndim if self.end_dim < 0 else self.end_dim
        if not 0 <= start <= end < ndim:
            raise ShapeError(
                f"{self!r}: cannot merge axes {self.start_dim}..{self.end_dim} of a {ndim}-D input"
            )
        return start, end

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        start, end = self._axes(len(input_shape))
        merged = math.prod(input_shape[start : end + 1])
        return (*input_shape[:start], merged, *input_shape[end + 1 :])

    def forward(self, x):
        if not is_array(x):
            raise DTypeError(
                f"{self!r}: expected an array, got {type(x).__name__}; use np.asarray(x)"
            )
        self.save_for_backward(x.shape, layout_of(x) if x.ndim == 4 else None)
        return x.reshape(self.output_shape(x.shape))

    def backward(self, dy):
        """The gradient, stored like the forward's input was (channels-last, say), so the layer
        before reads it on its fast path."""
        input_shape, layout = self.saved_tensors
        dx = dy.reshape(input_shape)
        if layout not in (None, NCHW) and dx.ndim == 4:
            dx = in_layout(dx, layout)
        return dx

    def memory(self, input_shape, dtype_bytes: int, layout):
        """A view of its input when that is stored NCHW; a copy (the reshape of a transposed
        view) when the layer before stores it channels-last."""
        elements = math.prod(input_shape[1:])
        copies = layout == NHWC and len(input_shape) == 4
        return (elements * dtype_bytes if copies else 0), 0, None

    def explain(self, input_shape) -> str:
        out = self.output_shape(input_shape)
        return (
            f"FLATTEN: the {'x'.join(map(str, input_shape[1:]))} volume becomes one vector of "
            f"{out[1]:,} values per example (C, H, W order, as PyTorch), for the FC layer after "
            "it; nothing is computed."
        )
