"""Conv2d: the lecture's convolutional layer (D filters of size F x F, stride S, zero padding P)."""

from __future__ import annotations

import math

import numpy as np

from cnnkit import shapes
from cnnkit.errors import ConfigError, ShapeError
from cnnkit.functional.engine import current
from cnnkit.functional.fast import plan
from cnnkit.nn.checks import (
    check_array,
    check_dtype_matches,
    check_rounding,
    int_pair,
    positive_int,
    short,
)
from cnnkit.nn.context import keep
from cnnkit.nn.registry import register_layer
from cnnkit.nn.spec_args import Arg, Choice, Flag, Padding, Size, Whole
from cnnkit.nn.weighted import WeightedLayer


def _resolve_padding(owner: str, padding, kernel: tuple[int, int], stride: tuple[int, int]):
    """``int | (h, w) | "same" | "valid"`` -> ((top, bottom), (left, right)).

    "same" keeps H x W at stride 1; an even filter needs one more row/column at the bottom and
    right than at the top and left, as in PyTorch.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ConfigError(
                    f"{owner}: padding='same' needs stride=1, got stride={short(stride)}; "
                    "use an explicit padding with stride > 1"
                )
            return tuple((total // 2, total - total // 2) for total in (k - 1 for k in kernel))
        raise ConfigError(
            f"{owner}: padding must be an int, an (h, w) pair, 'same' or 'valid', got {padding!r}"
        )
    ph, pw = int_pair(owner, "padding", padding, minimum=0)
    return (ph, ph), (pw, pw)


@register_layer("CONV")
class Conv2d(WeightedLayer):
    """D = ``out_channels`` filters, each C x F x F, slid with stride S over the zero-padded input.

    Shapes: input (N, C, H, W) -> output (N, D, OH, OW) with OH = (H - F + 2P)/S + 1.
    ``weight`` is (D, C, KH, KW), ``bias`` (D,). Initialised as PyTorch does, uniform in
    +-1/sqrt(C*KH*KW), drawn from ``rng``. ``rounding="floor"`` accepts sizes the formula does not
    divide evenly, like PyTorch; the default refuses them and shows the arithmetic.

    >>> conv = Conv2d(3, 96, kernel_size=11, stride=4, rng=np.random.default_rng(0))
    >>> conv.output_shape((1, 3, 227, 227))
    (1, 96, 55, 55)
    >>> sum(p.size for p in conv.parameters())
    34944
    """

    spec_args = (
        Arg("in_channels", None, Whole(), infer=lambda shape: shape[1]),
        Arg("out_channels", "D", Whole(), meaning="number of filters"),
        Arg("kernel_size", "F", Size(), meaning="filter size"),
        Arg("stride", "S", Size(), 1, always=True),
        Arg("padding", "P", Padding(), 0, always=True),
        Arg("bias", "bias", Flag(), True),
        Arg("rounding", "round", Choice("strict", "floor"), "strict"),
    )
    spec_example = "CONV(D=16, F=3)"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        bias: bool = True,
        *,
        dtype=np.float32,
        rng: np.random.Generator | None = None,
        rounding: str = "strict",
    ) -> None:
        owner = "Conv2d"
        self.in_channels = positive_int(owner, "in_channels", in_channels)
        self.out_channels = positive_int(owner, "out_channels", out_channels)
        self.kernel_size = int_pair(owner, "kernel_size", kernel_size, minimum=1)
        self.stride = int_pair(owner, "stride", stride, minimum=1)
        self.padding_mode = padding if isinstance(padding, str) else None
        self.sides = _resolve_padding(owner, padding, self.kernel_size, self.stride)
        self.padding = (self.sides[0][0], self.sides[1][0])
        self.rounding = check_rounding(owner, rounding)
        self.window = shapes.Window(self.kernel_size, self.stride, self.sides, self.rounding)
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self._init_parameters(owner, shape, fan_in, bias, dtype, rng)

    @classmethod
    def spec_problems(cls, config: dict) -> list[tuple[str, str]]:
        if config.get("padding") == "same" and config.get("stride") != (1, 1):
            return [("padding", "P=same needs S=1; give P as a number with S > 1")]
        return []

    def get_config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding_mode or self.padding,
            "bias": self.bias is not None,
            "rounding": self.rounding,
        }

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={short(self.kernel_size)}"
        if self.stride != (1, 1):
            text += f", stride={short(self.stride)}"
        if self.padding_mode is not None:
            text += f", padding={self.padding_mode!r}"
        elif self.padding != (0, 0):
            text += f", padding={short(self.padding)}"
        if self.bias is None:
            text += ", bias=False"
        if self.rounding != "strict":
            text += f", rounding={self.rounding!r}"
        return text

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(N, C, H, W) -> (N, D, OH, OW), or a ShapeError with the arithmetic and fixes."""
        owner = self  # formatted only into messages: repr is built only on an error
        if len(input_shape) != 4:
            raise ShapeError(
                f"{owner}: expected a 4-D input (N, C, H, W), got shape {tuple(input_shape)}"
            )
        n, c, h, w = input_shape
        if c != self.in_channels:
            raise ShapeError(_channel_message(self, tuple(input_shape)))
        oh, ow = self.window.output_hw(owner, (h, w))
        return (n, self.out_channels, oh, ow)

    def forward(self, x):
        """x (N, C, H, W) -> y (N, D, OH, OW)."""
        check_array(self, x, 4, "(N, C, H, W)")
        check_dtype_matches(self, x, self.dtype)
        self.output_shape(x.shape)
        engine = current()
        bias = None if self.bias is None else self.bias.data
        call = self._local.call
        save = call.record
        y, saved = engine.conv2d_forward(
            x,
            self.weight.data,
            bias,
            stride=self.stride,
            padding=self.sides,
            workspace=self._local.workspace,
            save=save,
        )
        if save:
            keep(call, engine, saved)
        return y

    def backward(self, dy):
        """dy (N, D, OH, OW) -> dx (N, C, H, W); adds dw and db into the parameters' grads.
        dx is not computed when the caller does not need it (a network's first layer)."""
        call = self._local.call
        engine, saved = call.saved
        dx, dw, db = engine.conv2d_backward(
            dy, saved, workspace=self._local.workspace, input_grad=call.needs_input_grad
        )
        self._accumulate(dw, db)
        return dx

    # -- what the summary and the explanations ask ------------------------------------------------
    def macs(self, input_shape) -> int:
        """OH*OW*D*F*F*C per example: one multiply-add per weight per unit."""
        out = self.output_shape(input_shape)
        return math.prod(out[1:]) * self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def unshared_parameters(self, input_shape) -> int:
        """A locally connected layer with its own filter per unit: OH*OW*D*(F*F*C + 1)."""
        out = self.output_shape(input_shape)
        return shapes.unshared_parameter_count(
            self.in_channels, self.out_channels, self.kernel_size, out[2:], self.bias is not None
        )

    def connections(self, input_shape) -> tuple[int, int]:
        """Inputs one unit reads (F*F*C), and what a fully connected unit would (C*H*W)."""
        kh, kw = self.kernel_size
        return self.in_channels * kh * kw, math.prod(input_shape[1:])

    def field_after(self, field):
        return self.window.field_after(field)

    def memory(self, input_shape, dtype_bytes: int, layout):
        """Output bytes, kept bytes and output layout per example, as the fast engine plans."""
        _, c, h, w = input_shape
        out = self.output_shape(input_shape)
        kernel, depth, bias = self.kernel_size, self.out_channels, self.bias is not None
        kept = plan.kept_bytes(
            c, kernel, depth, (h, w), self.stride, self.sides, layout, bias, dtype_bytes
        )
        return math.prod(out[1:]) * dtype_bytes, kept, plan.output_layout(c, kernel, depth, layout)

    def explain(self, input_shape) -> str:
        _, c, h, w = input_shape
        _, d, oh, ow = self.output_shape(input_shape)
        kh, kw = self.kernel_size
        formula = self.window.formula((h, w), (oh, ow))
        shared = sum(p.size for p in self.parameters())
        return (
            f"CONV: {d} filters of {kh}x{kw}x{c}, each slid with S={short(self.stride)} over the "
            f"input padded by P={short(self.padding)}: {formula} units per row and column, so "
            f"{h}x{w}x{c} -> {oh}x{ow}x{d}. Every unit is the dot product of one filter with the "
            f"{kh}x{kw}x{c} region under it, plus the filter's bias; the {oh * ow} units of a "
            f"depth slice share one filter: {shared:,} parameters, "
            f"{self.unshared_parameters(input_shape):,} without sharing."
        )


def _channel_message(layer: Conv2d, shape: tuple[int, ...]) -> str:
    c, expected = shape[1], layer.in_channels
    text = (
        f"{layer}: expected {expected} input channels (N, {expected}, H, W), got {c} channels in "
        f"shape {shape}"
    )
    if shape[3] == expected:
        return text + (
            "; the array looks channels-last (N, H, W, C): transpose it with "
            "x.transpose(0, 3, 1, 2)"
        )
    return text + f"; use Conv2d({c}, {layer.out_channels}, ...) or feed {expected}-channel input"
