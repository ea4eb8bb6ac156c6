"""Linear: the fully connected (FC) layer at the end of the lecture's stack."""

from __future__ import annotations

import math

import numpy as np

from cnnkit.errors import ShapeError
from cnnkit.functional.engine import current
from cnnkit.nn.checks import check_array, check_dtype_matches, positive_int
from cnnkit.nn.context import keep
from cnnkit.nn.registry import register_layer
from cnnkit.nn.spec_args import Arg, Flag, Whole
from cnnkit.nn.weighted import WeightedLayer


@register_layer("FC", aliases={"LINEAR": {}})
class Linear(WeightedLayer):
    """y = x @ weight.T + bias: input (N, in_features) -> output (N, out_features).

    ``weight`` is (out_features, in_features), ``bias`` (out_features,); PyTorch's default
    initialisation, uniform in +-1/sqrt(in_features), drawn from ``rng``.
    """

    flat_input = True  # architecture strings put a FLATTEN before the first one
    spec_args = (
        Arg(
            "in_features", "in", Whole(), infer=lambda shape: math.prod(shape[1:]), meaning="values"
        ),
        Arg(
            "out_features",
            "out",
            Whole(),
            positional=True,
            meaning="its output size",
            label="the FC output size",
        ),
        Arg("bias", "bias", Flag(), True),
    )
    spec_example = "FC(10)"
    torch_classes = ("Linear",)

    def torch_module(self, convert):
        return convert.torch_layer(self)

    @classmethod
    def from_torch_module(cls, module, convert):
        return cls(**convert.arguments(cls, module))

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        dtype=np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.in_features = positive_int("Linear", "in_features", in_features)
        self.out_features = positive_int("Linear", "out_features", out_features)
        shape = (self.out_features, self.in_features)
        self._init_parameters("Linear", shape, self.in_features, bias, dtype, rng)

    def get_config(self) -> dict:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
        }

    def extra_repr(self) -> str:
        text = f"{self.in_features}, {self.out_features}"
        return text if self.bias is not None else text + ", bias=False"

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(N, in_features) -> (N, out_features)."""
        if len(input_shape) != 2:
            hint = " insert Flatten() before it" if len(input_shape) > 2 else ""
            raise ShapeError(
                f"{self!r}: expected a 2-D input (N, {self.in_features}), got shape "
                f"{tuple(input_shape)};{hint or ' add a batch axis with x[None]'}"
            )
        if input_shape[1] != self.in_features:
            raise ShapeError(
                f"{self!r}: expected {self.in_features} input features (N, {self.in_features}), "
                f"got {input_shape[1]} in shape {tuple(input_shape)}; "
                f"use Linear({input_shape[1]}, {self.out_features})"
            )
        return (input_shape[0], self.out_features)

    def forward(self, x):
        """x (N, in_features) -> y (N, out_features)."""
        check_array(self, x, 2, f"(N, {self.in_features})", "insert Flatten() before it")
        check_dtype_matches(self, x, self.dtype)
        self.output_shape(x.shape)
        engine = current()
        bias = None if self.bias is None else self.bias.data
        y, saved = engine.linear_forward(x, self.weight.data, bias)
        keep(self._local.call, engine, saved)
        return y

    def backward(self, dy):
        """dy (N, out_features) -> dx (N, in_features); adds dw and db into the grads."""
        call = self._local.call
        engine, saved = call.saved
        dx, dw, db = engine.linear_backward(dy, saved, input_grad=call.needs_input_grad)
        self._accumulate(dw, db)
        return dx

    # -- what the summary and the explanations ask ------------------------------------------------
    def macs(self, input_shape) -> int:
        return self.in_features * self.out_features

    def connections(self, input_shape) -> tuple[int, int]:
        return self.in_features, self.in_features

    def field_after(self, field):
        return None  # every output sees every input

    def memory(self, input_shape, dtype_bytes: int, layout):
        """It keeps its input (IN values, usually a view of the previous output)."""
        return self.out_features * dtype_bytes, self.in_features * dtype_bytes, None

    def explain(self, input_shape) -> str:
        count = sum(p.size for p in self.parameters())
        return (
            f"FC: each of the {self.out_features} outputs is a weighted sum of all "
            f"{self.in_features:,} inputs plus a bias (no sparsity, no sharing): "
            f"{self.out_features}*({self.in_features} + 1) = {count:,} parameters."
        )

    # -- ONNX (cnnkit.interop): Gemm with transB=1; reads Gemm and MatMul (+ Add) -----------
    onnx_ops = ("Gemm", "MatMul")

    def onnx_nodes(self, graph, x):
        return graph.add_node("Gemm", [x, *graph.add_arrays(self, "weight", "bias")], transB=1)

    @classmethod
    def from_onnx(cls, node):
        w, b = node.linear_weights()  # (out, in) and (out,) or None
        layer = node.build(cls, w.shape[1], w.shape[0], bias=b is not None)
        return node.load(layer, weight=w, bias=b)
