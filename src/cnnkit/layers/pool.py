"""MaxPool2d and AvgPool2d: downsample each depth slice independently, with no parameters."""

from __future__ import annotations

from cnnkit import shapes
from cnnkit.errors import ConfigError, ShapeError
from cnnkit.functional.layout import Workspace
from cnnkit.functional.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from cnnkit.layers.base import Layer, check_array, check_rounding, check_shape_like, int_pair, short


class _Pool2d(Layer):
    """Shared shell: an F x F window (``kernel_size``) moved by S (``stride``, default F)."""

    _forward = None
    _backward = None

    def __init__(self, kernel_size, stride=None, padding=0, *, rounding: str = "strict") -> None:
        owner = type(self).__name__
        self.kernel_size = int_pair(owner, "kernel_size", kernel_size, minimum=1)
        self.stride = self.kernel_size if stride is None else int_pair(owner, "stride", stride, 1)
        self.padding = int_pair(owner, "padding", padding, minimum=0)
        for axis, (p, k) in enumerate(zip(self.padding, self.kernel_size, strict=True)):
            if p > k // 2:
                raise ConfigError(
                    f"{owner}(kernel_size={short(self.kernel_size)}): padding must be at most half "
                    f"the window ({k}//2 = {k // 2}) so every window holds an input value, "
                    f"got padding={self.padding[axis]}; use padding<={k // 2}"
                )
        self.rounding = check_rounding(owner, rounding)
        self._cache = None
        self._workspace = Workspace()  # result memory reused from call to call

    @property
    def sides(self):
        return tuple((p, p) for p in self.padding)

    def extra_repr(self) -> str:
        text = f"kernel_size={short(self.kernel_size)}"
        if self.stride != self.kernel_size:
            text += f", stride={short(self.stride)}"
        if self.padding != (0, 0):
            text += f", padding={short(self.padding)}"
        if self.rounding != "strict":
            text += f", rounding={self.rounding!r}"
        return text

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(N, C, H, W) -> (N, C, OH, OW) with OH = (H - F + 2P)/S + 1."""
        if len(input_shape) != 4:
            raise ShapeError(
                f"{self!r}: expected a 4-D input (N, C, H, W), got shape {tuple(input_shape)}"
            )
        n, c, h, w = input_shape
        oh, ow = shapes.output_hw(
            self,
            (h, w),
            self.kernel_size,
            self.stride,
            self.sides,
            rounding=self.rounding,
            window="window",
            max_padding=(self.kernel_size[0] // 2, self.kernel_size[1] // 2),
        )
        return (n, c, oh, ow)

    def forward(self, x):
        """x (N, C, H, W) -> y (N, C, OH, OW)."""
        check_array(self, x, 4, "(N, C, H, W)")
        self.output_shape(x.shape)
        y, self._cache = type(self)._forward(
            x,
            kernel=self.kernel_size,
            stride=self.stride,
            padding=self.sides,
            workspace=self._workspace,
        )
        self._output_shape = y.shape
        return y

    def backward(self, dy):
        """dy (N, C, OH, OW) -> dx (N, C, H, W)."""
        cache = self._cached(self._cache)
        check_shape_like(self, dy, self._output_shape)
        return type(self)._backward(dy, cache, self._workspace)


class MaxPool2d(_Pool2d):
    """Largest value of each window; backward routes the gradient to that value's position.

    Padding is -inf (never chosen) and may be at most half the window, as in PyTorch.
    """

    _forward = staticmethod(max_pool2d_forward)
    _backward = staticmethod(max_pool2d_backward)


class AvgPool2d(_Pool2d):
    """Mean of each window; zero padding counts in the divisor (PyTorch's default)."""

    _forward = staticmethod(avg_pool2d_forward)
    _backward = staticmethod(avg_pool2d_backward)
