"""Max and average pooling: forward beside backward, on the same sliding windows as convolution.

Padding follows PyTorch: max pooling pads with -inf (padding never wins), average pooling pads
with zeros that count in the divisor (``count_include_pad=True``).
"""

from __future__ import annotations

from typing import NamedTuple

from cnnkit.backend import get_array_module
from cnnkit.functional.windows import Sides, output_hw, pad, window_views


class MaxPoolCache(NamedTuple):
    winner: object  # (N, C, OH, OW) int: which kernel offset (i*KW + j) held each window's max
    input_shape: tuple[int, int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: Sides


class AvgPoolCache(NamedTuple):
    input_shape: tuple[int, int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: Sides


def _zeros_padded(dy, input_shape, padding: Sides):
    xp = get_array_module(dy)
    n, c, h, w = input_shape
    (top, bottom), (left, right) = padding
    return xp.zeros((n, c, h + top + bottom, w + left + right), dtype=dy.dtype)


def _unpad(padded, input_shape, padding: Sides):
    h, w = input_shape[2:]
    (top, _), (left, _) = padding
    return padded[:, :, top : top + h, left : left + w]


def max_pool2d_forward(x, *, kernel: tuple[int, int], stride: tuple[int, int], padding: Sides):
    """Largest value of each window: x (N, C, H, W) -> y (N, C, OH, OW). Returns ``(y, cache)``.

    On ties the first offset in row-major window order wins, and NaN propagates, as in PyTorch.
    """
    xp = get_array_module(x)
    padded = pad(x, padding, value=-xp.inf)
    y = None
    winner = None
    for i, j, view in window_views(padded, kernel, stride):
        if y is None:
            y = view.copy()
            # int16 keeps the cache small; only windows of more than 32,767 pixels need more.
            index_type = xp.int16 if kernel[0] * kernel[1] <= 2**15 else xp.int32
            winner = xp.zeros(y.shape, dtype=index_type)
            continue
        better = (view > y) | xp.isnan(view)
        xp.copyto(y, view, where=better)
        winner[better] = i * kernel[1] + j
    return y, MaxPoolCache(winner, x.shape, kernel, stride, padding)


def max_pool2d_backward(dy, cache: MaxPoolCache):
    """Route each window's gradient to the input that won it.

    dy (N, C, OH, OW) -> dx (N, C, H, W).
    """
    winner, input_shape, kernel, stride, padding = cache
    xp = get_array_module(dy)
    dpadded = _zeros_padded(dy, input_shape, padding)
    for i, j, view in window_views(dpadded, kernel, stride):
        view += xp.where(winner == i * kernel[1] + j, dy, 0)
    return _unpad(dpadded, input_shape, padding)


def avg_pool2d_forward(x, *, kernel: tuple[int, int], stride: tuple[int, int], padding: Sides):
    """Mean of each window (padding counts as zeros): x (N, C, H, W) -> y (N, C, OH, OW)."""
    padded = pad(x, padding)
    oh, ow = output_hw(padded.shape[2:], kernel, stride)
    xp = get_array_module(x)
    y = xp.zeros((*x.shape[:2], oh, ow), dtype=x.dtype)
    for _, _, view in window_views(padded, kernel, stride):
        y += view
    y /= kernel[0] * kernel[1]
    return y, AvgPoolCache(x.shape, kernel, stride, padding)


def avg_pool2d_backward(dy, cache: AvgPoolCache):
    """Spread each window's gradient evenly over it: dy (N, C, OH, OW) -> dx (N, C, H, W)."""
    input_shape, kernel, stride, padding = cache
    share = dy / (kernel[0] * kernel[1])
    dpadded = _zeros_padded(dy, input_shape, padding)
    for _, _, view in window_views(dpadded, kernel, stride):
        view += share
    return _unpad(dpadded, input_shape, padding)
