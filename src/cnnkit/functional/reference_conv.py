"""The reference engine's convolution: im2col, one matrix product per group, col2im.

Every output unit is the lecture's computational unit: the dot product of one filter with the
region of the zero-padded input under it, plus that filter's bias. :func:`windows` shows every
region at once (a view through ``sliding_window_view``: nothing is copied), :func:`im2col`
flattens each into a row, and one matrix product with the filters computes every dot product.
Backward is two more products and :func:`fold`, the adjoint of :func:`windows`, which adds
each region's gradient back onto the pixels it was read from. The weight gradient's product
sums every unit's contribution over the depth slice and the batch: parameter sharing.

Two options of PyTorch's convolution change which inputs a unit reads:

* ``dilation`` d spaces the filter's taps d apart: a window spans d(F - 1) + 1 inputs and
  reads every d-th of them;
* ``groups`` g splits the C input channels and the D filters into g groups: the filters of
  group k read only the C/g channels of group k (w is (D, C/g, KH, KW)), one matrix product
  per group. ``groups == C`` is a depthwise convolution: each filter reads one depth slice.

Shapes: x (N, C, H, W), w (D, C/g, KH, KW), b (D,); padding is ((top, bottom), (left, right)).

>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> none = ((0, 0), (0, 0))
>>> y, saved = conv2d_forward(x, np.ones((1, 1, 2, 2)), None, stride=(2, 2), padding=none)
>>> y[0, 0].tolist()  # each unit: the sum of one 2x2 window
[[10.0, 18.0], [42.0, 50.0]]
>>> y, saved = conv2d_forward(x, np.ones((1, 1, 2, 2)), None, stride=(1, 1), padding=none,
...                           dilation=(2, 2))
>>> y[0, 0].tolist()  # taps 2 apart: x[0, 0] + x[0, 2] + x[2, 0] + x[2, 2], ...
[[20.0, 24.0], [36.0, 40.0]]
"""

from __future__ import annotations

from cnnkit.backend import get_array_module
from cnnkit.functional.primitives import ONE, fold, windows
from cnnkit.shapes import span, units


def im2col(x_padded, kernel, stride, dilation=ONE):
    """One row per computational unit, holding the region it reads: (N*OH*OW, C*KH*KW)."""
    every = windows(x_padded, kernel, stride, dilation)  # (N, C, OH, OW, KH, KW)
    n, c, oh, ow, kh, kw = every.shape
    return every.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)


def col2im(cols, padded_shape, kernel, stride, output_hw, dilation=ONE):
    """The adjoint of :func:`im2col`: rows (N*OH*OW, C*KH*KW) added back onto the pixels."""
    n, c = padded_shape[:2]
    (kh, kw), (oh, ow) = kernel, output_hw
    blocks = cols.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 1, 2, 4, 5)
    return fold(blocks, padded_shape, stride, dilation)


def _by_group(matrix, groups: int):
    """(M, G*K) -> (G, M, K): the columns of each group side by side become one matrix each."""
    m = matrix.shape[0]
    return matrix.reshape(m, groups, matrix.shape[1] // groups).transpose(1, 0, 2)


def _ungroup(stacked):
    """(G, M, K) -> (M, G*K): the inverse of :func:`_by_group`."""
    g, m, k = stacked.shape
    return stacked.transpose(1, 0, 2).reshape(m, g * k)


def conv2d_forward(x, w, b, *, stride, padding, dilation=ONE, groups=1, workspace=None, save=True):
    """y[n, d, i, j] = sum(w[d] * the window of unit (i, j) of image n, in the C/g channels of
    d's group) + b[d]."""
    xp = get_array_module(x)
    d, _, kh, kw = w.shape
    (top, bottom), (left, right) = padding
    x_padded = xp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, _, hp, wp = x_padded.shape
    oh = units(hp, span(kh, dilation[0]), stride[0])  # (I + 2P - d(F - 1) - 1)/S + 1
    ow = units(wp, span(kw, dilation[1]), stride[1])
    cols = im2col(x_padded, (kh, kw), stride, dilation)  # (N*OH*OW, C*KH*KW)
    filters = w.reshape(groups, d // groups, -1)  # (G, D/G, C/G*KH*KW)
    # (G, M, C/G*KH*KW) @ (G, C/G*KH*KW, D/G): every unit's dot products, group by group
    y = _ungroup(_by_group(cols, groups) @ filters.transpose(0, 2, 1))  # (N*OH*OW, D)
    if b is not None:
        y += b
    y = xp.ascontiguousarray(y.reshape(n, oh, ow, d).transpose(0, 3, 1, 2))  # (N, D, OH, OW)
    shapes = (x_padded.shape, (oh, ow))
    return y, (cols, w, shapes, stride, padding, dilation, groups, b is not None)


def conv2d_backward(dy, saved, *, workspace=None, input_grad=True):
    """(dx, dw, db) for dy (N, D, OH, OW); dx is None when ``input_grad`` is False."""
    cols, w, (padded_shape, output_hw), stride, padding, dilation, groups, has_bias = saved
    d = w.shape[0]
    filters = w.reshape(groups, d // groups, -1)  # (G, D/G, C/G*KH*KW)
    dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, d)  # (N*OH*OW, D), like the forward's y
    dy_groups = _by_group(dy_rows, groups)  # (G, M, D/G)
    # summed over every unit and image: sharing
    dw = (dy_groups.transpose(0, 2, 1) @ _by_group(cols, groups)).reshape(w.shape)
    db = dy_rows.sum(axis=0) if has_bias else None
    dx = None
    if input_grad:
        dcols = _ungroup(dy_groups @ filters)  # (N*OH*OW, C*KH*KW): each unit's share
        dx_padded = col2im(dcols, padded_shape, w.shape[2:], stride, output_hw, dilation)
        (top, bottom), (left, right) = padding
        hp, wp = padded_shape[2:]
        dx = dx_padded[:, :, top : hp - bottom, left : wp - right]
    return dx, dw, db
