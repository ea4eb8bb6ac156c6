"""Flatten: the volume (N, C, H, W) becomes a vector per example for the FC layer."""

from __future__ import annotations

import math

from cnnkit.backend import is_array
from cnnkit.errors import ConfigError, DTypeError, ShapeError
from cnnkit.functional.layout import NCHW, in_layout, layout_of
from cnnkit.layers.base import Layer, check_shape_like


class Flatten(Layer):
    """Merge axes ``start_dim..end_dim`` into one, as ``torch.nn.Flatten`` (default: all but N).

    (N, C, H, W) -> (N, C*H*W), in C, H, W order, so weights match PyTorch's after export.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        if not isinstance(start_dim, int) or not isinstance(end_dim, int):
            raise ConfigError(
                f"Flatten: start_dim and end_dim must be ints, got {start_dim!r}, {end_dim!r}"
            )
        self.start_dim = start_dim
        self.end_dim = end_dim
        self._input_shape = None
        self._input_layout = None

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
        self._input_shape = x.shape
        self._input_layout = layout_of(x) if x.ndim == 4 else None
        return x.reshape(self.output_shape(x.shape))

    def backward(self, dy):
        """The gradient, stored like the forward's input was (channels-last, say), so the layer
        before reads it on its fast path."""
        input_shape = self._cached(self._input_shape)
        check_shape_like(self, dy, self.output_shape(input_shape))
        dx = dy.reshape(input_shape)
        if self._input_layout not in (None, NCHW) and dx.ndim == 4:
            dx = in_layout(dx, self._input_layout)
        return dx
