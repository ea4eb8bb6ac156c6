"""Conv2d: the lecture's convolutional layer (D filters of size F x F, stride S, zero padding P)."""

from __future__ import annotations

import numpy as np

from cnnkit import shapes
from cnnkit.errors import ConfigError, ShapeError
from cnnkit.functional.conv import conv2d_backward, conv2d_forward
from cnnkit.functional.layout import Workspace
from cnnkit.functional.windows import Sides
from cnnkit.layers.base import (
    WeightedLayer,
    check_array,
    check_dtype_matches,
    check_rounding,
    check_shape_like,
    int_pair,
    positive_int,
    short,
)


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
        self.sides: Sides = _resolve_padding(owner, padding, self.kernel_size, self.stride)
        self.padding = (self.sides[0][0], self.sides[1][0])
        self.rounding = check_rounding(owner, rounding)
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self._init_parameters(owner, shape, fan_in, bias, dtype, rng)
        self._cache = None
        self._workspace = Workspace()  # scratch arrays reused from call to call

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
            raise ShapeError(
                f"{owner}: expected {self.in_channels} input channels "
                f"(N, {self.in_channels}, H, W), got {c} channels in shape {tuple(input_shape)}; "
                f"use Conv2d({c}, {self.out_channels}, ...) or feed "
                f"{self.in_channels}-channel input"
            )
        oh, ow = shapes.output_hw(
            owner, (h, w), self.kernel_size, self.stride, self.sides, rounding=self.rounding
        )
        return (n, self.out_channels, oh, ow)

    def forward(self, x):
        """x (N, C, H, W) -> y (N, D, OH, OW)."""
        check_array(self, x, 4, "(N, C, H, W)")
        check_dtype_matches(self, x, self.dtype)
        self.output_shape(x.shape)
        bias = None if self.bias is None else self.bias.data
        self._cache = None  # frees the previous columns before the new ones are built
        y, self._cache = conv2d_forward(
            x,
            self.weight.data,
            bias,
            stride=self.stride,
            padding=self.sides,
            workspace=self._workspace,
        )
        self._output_shape = y.shape
        return y

    def backward(self, dy):
        """dy (N, D, OH, OW) -> dx (N, C, H, W); adds dw and db into the parameters' grads."""
        cache = self._cached(self._cache)
        check_shape_like(self, dy, self._output_shape)
        dx, dw, db = conv2d_backward(dy, cache, workspace=self._workspace)
        self._accumulate(dw, db)
        return dx

    def backward_parameters(self, dy) -> None:
        """Like :meth:`backward`, without computing dx (the first layer of a training step)."""
        cache = self._cached(self._cache)
        check_shape_like(self, dy, self._output_shape)
        _, dw, db = conv2d_backward(dy, cache, workspace=self._workspace, input_grad=False)
        self._accumulate(dw, db)
