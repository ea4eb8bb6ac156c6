"""The primitives of the reference engine: padding, and every window of a padded input at
once with its adjoint. One pair serves convolution (:mod:`.reference_conv`) and pooling
(:mod:`.reference_pool`): :func:`windows` shows every window as a view (``sliding_window_view``:
nothing is copied), with its taps d apart when dilated, and :func:`fold` adds values back onto
the pixels they were read from.

>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> windows(x, (2, 2), (2, 2))[0, 0, 0, 1].tolist()  # unit (0, 1) reads rows 0-1, columns 2-3
[[2.0, 3.0], [6.0, 7.0]]
"""

from __future__ import annotations

from cnnkit.backend import get_array_module

ONE = (1, 1)


def pad(x, padding, value: float = 0.0):
    """x (N, C, H, W) surrounded by ``value``: (N, C, H + top + bottom, W + left + right)."""
    xp = get_array_module(x)
    (top, bottom), (left, right) = padding
    return xp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def unpad(x_padded, padding):
    """The inverse of :func:`pad`: the interior of (N, C, Hp, Wp)."""
    (top, bottom), (left, right) = padding
    hp, wp = x_padded.shape[2:]
    return x_padded[:, :, top : hp - bottom, left : wp - right]


def windows(x_padded, kernel, stride, dilation=ONE):
    """Every window of the padded input, as a view: (N, C, OH, OW, KH, KW). A window spans
    d(F - 1) + 1 inputs per axis and reads every d-th of them."""
    xp = get_array_module(x_padded)
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    spans = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    every = xp.lib.stride_tricks.sliding_window_view(x_padded, spans, axis=(2, 3))
    return every[:, :, ::sh, ::sw, ::dh, ::dw]  # windows at multiples of S, taps d apart


def fold(blocks, padded_shape, stride, dilation=ONE):
    """The adjoint of :func:`windows`: add each window's values (N, C, OH, OW, KH, KW) back
    onto the pixels it read; pixels in several windows receive the sum."""
    xp = get_array_module(blocks)
    oh, ow, kh, kw = blocks.shape[2:]
    (sh, sw), (dh, dw) = stride, dilation
    out = xp.zeros(padded_shape, dtype=blocks.dtype)
    for i in range(kh):  # the loops run over kernel taps only, never over pixels
        for j in range(kw):
            top, left = i * dh, j * dw  # where tap (i, j) of the first window lies
            rows = slice(top, top + sh * (oh - 1) + 1, sh)
            cols = slice(left, left + sw * (ow - 1) + 1, sw)
            out[:, :, rows, cols] += blocks[:, :, :, :, i, j]
    return out
