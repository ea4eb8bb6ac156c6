"""2-D convolution (cross-correlation, as in PyTorch): forward beside backward.

Each output unit is the lecture's computational unit: the dot product of one filter with one
input region, plus that filter's bias. All units of a depth slice share the filter (parameter
sharing), so backward sums every unit's weight gradient over the slice and over the batch.
"""

from __future__ import annotations

from typing import NamedTuple

from cnnkit.backend import get_array_module
from cnnkit.functional.windows import Sides, col2im, im2col


class ConvCache(NamedTuple):
    """What :func:`conv2d_backward` needs, and nothing more."""

    cols: object  # (C, KH, KW, N, OH, OW): the regions each unit read
    w: object  # (D, C, KH, KW)
    input_shape: tuple[int, int, int, int]
    stride: tuple[int, int]
    padding: Sides
    has_bias: bool


def conv2d_forward(x, w, b, *, stride: tuple[int, int], padding: Sides):
    """y[n, d] = sum over regions of w[d] * x[n] + b[d].

    Shapes: x (N, C, H, W), w (D, C, KH, KW), b (D,) or None -> y (N, D, OH, OW) with
    OH = (H + top + bottom - KH)//SH + 1 and OW likewise. Returns ``(y, cache)``.
    """
    n = x.shape[0]
    d = w.shape[0]
    cols = im2col(x, w.shape[2:], stride, padding)
    oh, ow = cols.shape[4:]
    units = w.reshape(d, -1) @ cols.reshape(-1, n * oh * ow)  # (D, N*OH*OW)
    if b is not None:
        units += b[:, None]
    xp = get_array_module(x)
    y = xp.ascontiguousarray(units.reshape(d, n, oh, ow).transpose(1, 0, 2, 3))  # (N, D, OH, OW)
    return y, ConvCache(cols, w, x.shape, stride, padding, b is not None)


def conv2d_backward(dy, cache: ConvCache):
    """Gradients of :func:`conv2d_forward`: ``(dx, dw, db)``; ``db`` is None without a bias.

    dy (N, D, OH, OW) -> dx (N, C, H, W), dw (D, C, KH, KW), db (D,). ``dw`` is the sum over
    every unit of the depth slice and every image of that unit's gradient, in one product.
    """
    cols, w, input_shape, stride, padding, has_bias = cache
    d = w.shape[0]
    dy_units = dy.transpose(1, 0, 2, 3).reshape(d, -1)  # (D, N*OH*OW)
    cols_2d = cols.reshape(-1, dy_units.shape[1])  # (C*KH*KW, N*OH*OW)
    dw = (dy_units @ cols_2d.T).reshape(w.shape)
    db = dy_units.sum(axis=1) if has_bias else None
    dcols = (w.reshape(d, -1).T @ dy_units).reshape(cols.shape)  # (C, KH, KW, N, OH, OW)
    dx = col2im(dcols, input_shape, stride, padding)
    return dx, dw, db
