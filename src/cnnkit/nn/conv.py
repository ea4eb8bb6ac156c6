"""Conv2d: the lecture's convolutional layer (D filters of size F x F, stride S, zero padding P),
with PyTorch's dilation, groups (depthwise) and padding modes."""

from __future__ import annotations

import math

import numpy as np

from cnnkit import shapes
from cnnkit.errors import ShapeError
from cnnkit.functional.engine import current
from cnnkit.functional.fast import direct, grouped, plan
from cnnkit.functional.fast.layout import NCHW
from cnnkit.functional.padding import PADDING_MODES
from cnnkit.nn.checks import (
    check_array,
    check_dtype_matches,
    check_rounding,
    int_pair,
    positive_int,
    short,
)
from cnnkit.nn.context import keep
from cnnkit.nn.conv_checks import (  # noqa: F401 (nearest_groups is re-exported)
    _channel_message,
    _check_padding_fits,
    _dilation,
    _grouping,
    _groups,
    _padding_mode,
    _resolve_padding,
    nearest_groups,
)
from cnnkit.nn.registry import register_layer
from cnnkit.nn.spec_args import Arg, Choice, Flag, Padding, Size, Whole
from cnnkit.nn.weighted import WeightedLayer

NO_PADDING = ((0, 0), (0, 0))


@register_layer("CONV")
class Conv2d(WeightedLayer):
    """D = ``out_channels`` filters, each C/groups x F x F, slid with stride S over the padded
    input.

    Shapes: input (N, C, H, W) -> output (N, D, OH, OW) with OH = (H + 2P - d(F - 1) - 1)/S + 1
    (OH = (H - F + 2P)/S + 1 without dilation). ``weight`` is (D, C/groups, KH, KW), ``bias``
    (D,). ``dilation`` d spaces the filter's taps d apart; ``groups`` g splits the channels and
    filters into g groups, each filter reading the C/g channels of its group (``groups == C``:
    depthwise, one depth slice per filter); ``padding_mode`` fills the padding with zeros, or
    with the input reflected, replicated or wrapped around (as PyTorch). Initialised as
    PyTorch does, uniform in +-1/sqrt(C/g*KH*KW), drawn from ``rng``. ``rounding="floor"``
    accepts sizes the formula does not divide evenly, like PyTorch; the default refuses them
    and shows the arithmetic.

    >>> conv = Conv2d(3, 96, kernel_size=11, stride=4, rng=np.random.default_rng(0))
    >>> conv.output_shape((1, 3, 227, 227))
    (1, 96, 55, 55)
    >>> sum(p.size for p in conv.parameters())
    34944
    >>> Conv2d(32, 32, 3, padding=1, groups=32, rng=np.random.default_rng(0)).weight.shape
    (32, 1, 3, 3)
    """

    spec_args = (
        Arg("in_channels", None, Whole(), infer=lambda shape: shape[1]),
        Arg("out_channels", "D", Whole(), meaning="number of filters"),
        Arg("kernel_size", "F", Size(), meaning="filter size"),
        Arg("stride", "S", Size(), 1, always=True),
        Arg("padding", "P", Padding(), 0, always=True),
        Arg("dilation", "dilation", Size(), 1),
        Arg("groups", "groups", Whole(), 1),
        Arg("bias", "bias", Flag(), True),
        Arg("padding_mode", "padding_mode", Choice(*PADDING_MODES), "zeros"),
        Arg("rounding", "round", Choice("strict", "floor"), "strict"),
    )
    spec_example = "CONV(D=16, F=3)"
    torch_classes = ("Conv2d",)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
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
        self.dilation = _dilation(owner, dilation)
        self.groups = _groups(owner, groups, self.in_channels, self.out_channels)
        self.padding_mode = _padding_mode(owner, padding_mode)
        self._padding_word = padding if isinstance(padding, str) else None  # "same", "valid"
        self.sides = _resolve_padding(owner, padding, self.kernel_size, self.stride, self.dilation)
        self.padding = (self.sides[0][0], self.sides[1][0])
        self.rounding = check_rounding(owner, rounding)
        self.window = shapes.Window(
            self.kernel_size, self.stride, self.sides, self.rounding, dilation=self.dilation
        )
        per_filter = self.in_channels // self.groups  # input channels one filter reads
        fan_in = per_filter * self.kernel_size[0] * self.kernel_size[1]
        shape = (self.out_channels, per_filter, *self.kernel_size)
        self._init_parameters(owner, shape, fan_in, bias, dtype, rng)

    @classmethod
    def spec_problems(cls, config: dict) -> list[tuple[str, str]]:
        """What the string alone shows wrong (groups against C waits for the input shape)."""
        if config.get("padding") == "same" and config.get("stride") != (1, 1):
            return [("padding", "P=same needs S=1; give P as a number with S > 1")]
        groups, depth = config.get("groups", 1), config.get("out_channels")
        if isinstance(depth, int) and depth % groups:
            divisors = [g for g in range(1, min(depth, 64) + 1) if depth % g == 0]
            listed = ", ".join(map(str, divisors[:-1])) + f" or {divisors[-1]}"
            return [
                (
                    "groups",
                    f"groups={groups} must divide D={depth} and the input channels C; "
                    f"use one that divides both ({listed} divide D={depth})",
                )
            ]
        return []

    def torch_module(self, convert):
        """``torch.nn.Conv2d`` of the same config (``rounding`` only ever refuses sizes)."""
        return convert.torch_layer(self, drop=("rounding",))

    @classmethod
    def from_torch_module(cls, module, convert):
        return convert.rounded(
            lambda rounding: cls(**convert.arguments(cls, module), rounding=rounding)
        )

    def get_config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self._padding_word or self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
            "bias": self.bias is not None,
            "padding_mode": self.padding_mode,
            "rounding": self.rounding,
        }

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={short(self.kernel_size)}"
        if self.stride != (1, 1):
            text += f", stride={short(self.stride)}"
        if self._padding_word is not None:
            text += f", padding={self._padding_word!r}"
        elif self.padding != (0, 0):
            text += f", padding={short(self.padding)}"
        if self.dilation != (1, 1):
            text += f", dilation={short(self.dilation)}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
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
        if self.padding_mode != "zeros":
            _check_padding_fits(self, (h, w))
        return (n, self.out_channels, oh, ow)

    def forward(self, x):
        """x (N, C, H, W) -> y (N, D, OH, OW)."""
        check_array(self, x, 4, "(N, C, H, W)")
        check_dtype_matches(self, x, self.dtype)
        self.output_shape(x.shape)
        stride = self._effective_stride(x.shape[2:])
        engine = current()
        bias = None if self.bias is None else self.bias.data
        call = self._local.call
        save = call.record
        workspace, padding, pad_saved = self._local.workspace, self.sides, None
        if self.padding_mode != "zeros":  # pad explicitly, then convolve without padding
            x, pad_saved = engine.pad2d_forward(x, self.sides, self.padding_mode, workspace)
            padding = NO_PADDING
        y, saved = engine.conv2d_forward(
            x,
            self.weight.data,
            bias,
            stride=stride,
            padding=padding,
            dilation=self.dilation,
            groups=self.groups,
            workspace=workspace,
            save=save,
        )
        if save:
            keep(call, engine, saved, pad_saved)
        return y

    def _effective_stride(self, input_hw) -> tuple[int, int]:
        """The stride, or where a stride larger than the padded input leaves one window, the
        smallest stride that does: the same output, and the engines' steps stay in range
        (strict accepts S = 2**62 on an 8-pixel input: only one window fits either way)."""
        strides = []
        for size, sides, extent, stride in zip(
            input_hw, self.sides, self.window.spans, self.stride, strict=True
        ):
            left = size + sum(sides) - extent  # inputs after the first window
            strides.append(min(stride, left + 1))
        return tuple(strides)

    def backward(self, dy):
        """dy (N, D, OH, OW) -> dx (N, C, H, W); adds dw and db into the parameters' grads.
        dx is not computed when the caller does not need it (a network's first layer)."""
        call = self._local.call
        engine, saved, pad_saved = call.saved
        workspace = self._local.workspace
        dx, dw, db = engine.conv2d_backward(
            dy, saved, workspace=workspace, input_grad=call.needs_input_grad
        )
        self._accumulate(dw, db)
        if dx is not None and pad_saved is not None:
            dx = engine.pad2d_backward(dx, pad_saved, workspace)
        return dx

    # -- what the summary and the explanations ask ------------------------------------------------
    def macs(self, input_shape) -> int:
        """OH*OW*D*F*F*C/g per example: one multiply-add per weight per unit."""
        out = self.output_shape(input_shape)
        return math.prod(out[1:]) * self.window.taps * (self.in_channels // self.groups)

    def unshared_parameters(self, input_shape) -> int:
        """A locally connected layer with its own filter per unit: OH*OW*D*(F*F*C/g + 1)."""
        out = self.output_shape(input_shape)
        return shapes.unshared_parameter_count(
            self.in_channels // self.groups,
            self.out_channels,
            self.kernel_size,
            out[2:],
            self.bias is not None,
        )

    def connections(self, input_shape) -> tuple[int, int]:
        """Inputs one unit reads (F*F*C/g), and what a fully connected unit would (C*H*W)."""
        return self.window.taps * (self.in_channels // self.groups), math.prod(input_shape[1:])

    def field_after(self, field):
        return self.window.field_after(field)

    def memory(self, input_shape, dtype_bytes: int, layout):
        """Output bytes, kept bytes and output layout per example, as the fast engine plans.
        A padding mode other than zeros pads first, into a fresh NCHW array the convolution
        then reads without padding."""
        _, c, h, w = input_shape
        out_bytes = math.prod(self.output_shape(input_shape)[1:]) * dtype_bytes
        sides = self.sides
        if self.padding_mode != "zeros":
            (top, bottom), (left, right) = sides
            h, w, sides, layout = h + top + bottom, w + left + right, NO_PADDING, NCHW
        if self.groups != 1:
            kept = grouped.kept_bytes(c, (h, w), sides, dtype_bytes)
            return out_bytes, kept, grouped.output_layout(c, self.groups, layout)
        kernel, depth, bias = self.kernel_size, self.out_channels, self.bias is not None
        stride = self._effective_stride((h, w))
        rule = (c, depth, kernel, stride, self.dilation, self.groups, dtype_bytes, h * w)
        if direct.shape_applies(*rule):
            return out_bytes, direct.kept_bytes(c, (h, w), sides, dtype_bytes), NCHW
        kept = plan.kept_bytes(
            c, kernel, depth, (h, w), self.stride, sides, layout, bias, dtype_bytes, self.dilation
        )
        return out_bytes, kept, plan.output_layout(c, kernel, depth, layout)

    def explain(self, input_shape) -> str:
        _, c, h, w = input_shape
        _, d, oh, ow = self.output_shape(input_shape)
        (kh, kw), per_filter = self.kernel_size, c // self.groups
        formula = self.window.formula((h, w), (oh, ow))
        shared = sum(p.size for p in self.parameters())
        padded = f"padded by P={short(self.padding)}"
        if self.padding_mode != "zeros":
            padded += f" ({self.padding_mode}, not zeros)"
        region = f"{kh}x{kw}x{per_filter} region under it"
        if self.dilation != (1, 1):
            sh, sw = self.window.spans
            region = (
                f"{kh}x{kw}x{per_filter} taps, {short(self.dilation)} apart (dilation), of the "
                f"{sh}x{sw}x{per_filter} region under it"
            )
        return (
            f"CONV: {d} filters of {kh}x{kw}x{per_filter}, each slid with "
            f"S={short(self.stride)} over the input {padded}: {formula} units per row and "
            f"column, so {h}x{w}x{c} -> {oh}x{ow}x{d}.{_grouping(self.groups, c, d)} Every unit "
            f"is the dot product of one filter with the {region}, plus the filter's bias; the "
            f"{oh * ow} units of a depth slice share one filter: {shared:,} parameters, "
            f"{self.unshared_parameters(input_shape):,} without sharing."
        )

    # -- ONNX (cnnkit.interop): one Conv; a padding mode other than zeros is a Pad before it --
    onnx_ops = ("Conv",)

    def onnx_nodes(self, graph, x):
        attributes = graph.window(self, x)
        if self.padding_mode != "zeros":
            x = graph.pad(self, x, self.sides, self.padding_mode)
            attributes["pads"] = [0, 0, 0, 0]
        inputs = [x, *graph.add_arrays(self, "weight", "bias")]
        return graph.add_node("Conv", inputs, group=self.groups, **attributes)

    @classmethod
    def from_onnx(cls, node):
        w, b = node.constant(1), node.constant(2, optional=True)
        groups = int(node.attr("group", 1))
        window = node.window(w.shape[2:])
        c, d, mode = groups * w.shape[1], w.shape[0], node.padding_mode
        layer = node.build(
            cls, c, d, groups=groups, bias=b is not None, padding_mode=mode, **window
        )
        return node.load(layer, weight=w, bias=b)
