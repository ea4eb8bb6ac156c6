"""Sliding windows: padding, im2col and col2im, shared by convolution and both poolings.

The loops run over the KH x KW kernel offsets only; each iteration moves a whole strided
sub-grid of every image and channel at once, so the Python overhead is KH*KW steps per call.
"""

from __future__ import annotations

from collections.abc import Iterator

from cnnkit.backend import get_array_module

Sides = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))


def pad(x, padding: Sides, value: float = 0.0):
    """Pad the two spatial axes of (N, C, H, W) ``x``; returns ``x`` itself when nothing to pad."""
    (top, bottom), (left, right) = padding
    if top == bottom == left == right == 0:
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    padded = xp.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    padded[:, :, top : top + h, left : left + w] = x
    return padded


def output_hw(padded_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int]):
    """Floor of (I + 2P - F)/S + 1 per axis; the layers have already refused impossible ones."""
    return tuple((padded_hw[i] - kernel[i]) // stride[i] + 1 for i in range(2))


def window_views(padded, kernel: tuple[int, int], stride: tuple[int, int]) -> Iterator:
    """Yield ``(i, j, view)`` per kernel offset; ``view`` is (N, C, OH, OW): the input pixel that
    offset (i, j) of every window reads. A view, so writing into it writes the padded array."""
    kh, kw = kernel
    sh, sw = stride
    oh, ow = output_hw(padded.shape[2:], kernel, stride)
    for i in range(kh):
        for j in range(kw):
            yield i, j, padded[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]


def im2col(x, kernel: tuple[int, int], stride: tuple[int, int], padding: Sides):
    """Every region each computational unit reads, as columns: (C, KH, KW, N, OH, OW).

    Reshaped to (C*KH*KW, N*OH*OW), column ``(n, oh, ow)`` is the flattened receptive field of
    output unit (oh, ow) of image n, so one matrix product with the (D, C*KH*KW) filters gives
    every unit's dot product at once.
    """
    xp = get_array_module(x)
    n, c = x.shape[:2]
    padded = pad(x, padding)
    oh, ow = output_hw(padded.shape[2:], kernel, stride)
    cols = xp.empty((c, *kernel, n, oh, ow), dtype=x.dtype)
    for i, j, view in window_views(padded, kernel, stride):
        cols[:, i, j] = view.transpose(1, 0, 2, 3)  # (N, C, OH, OW) -> (C, N, OH, OW)
    return cols


def col2im(cols, input_shape: tuple[int, ...], stride: tuple[int, int], padding: Sides):
    """Adjoint of :func:`im2col`: add each column back onto the pixels it was read from.

    ``cols`` is (C, KH, KW, N, OH, OW); returns (N, C, H, W). Pixels read by several windows
    (overlapping windows) receive the sum of their contributions.
    """
    xp = get_array_module(cols)
    n, c, h, w = input_shape
    (top, bottom), (left, right) = padding
    kernel = cols.shape[1:3]
    padded = xp.zeros((n, c, h + top + bottom, w + left + right), dtype=cols.dtype)
    for i, j, view in window_views(padded, kernel, stride):
        view += cols[:, i, j].transpose(1, 0, 2, 3)  # (C, N, OH, OW) -> (N, C, OH, OW)
    return padded[:, :, top : top + h, left : left + w]
