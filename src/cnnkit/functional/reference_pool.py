"""The reference engine's pooling: max and average pooling, forward beside backward, with
PyTorch's options, written to be read (re-exported by :mod:`cnnkit.functional.reference`).

Each window's values come from one view of the padded input (``sliding_window_view``, as in
convolution): a window of F taps ``dilation`` apart spans d(F - 1) + 1 inputs, and its taps
are every d-th of them. ``ceil_mode`` rounds the number of windows up (PyTorch's rule, see
:func:`cnnkit.shapes.ceil_units`); the last window may then run past the bottom/right padding,
so the input is padded further there: with -inf for max pooling (never the max), with zeros
for average pooling, whose divisor (:func:`avg_divisors`) leaves those positions out.

Shapes: x (N, C, H, W); padding ((top, bottom), (left, right)); kernel, stride, dilation
(h, w) pairs.

>>> import numpy as np
>>> x = np.arange(25.0).reshape(1, 1, 5, 5)
>>> none = ((0, 0), (0, 0))
>>> y, _ = max_pool2d_forward(x, kernel=(2, 2), stride=(2, 2), padding=none, ceil_mode=True)
>>> y[0, 0].tolist()  # the third window of each axis holds only row (column) 4
[[6.0, 8.0, 9.0], [16.0, 18.0, 19.0], [21.0, 23.0, 24.0]]
"""

from __future__ import annotations

from cnnkit.backend import get_array_module
from cnnkit.functional.primitives import ONE, fold, pad, windows
from cnnkit.shapes import ceil_units, span, units


def pool_sides(input_hw, kernel, stride, padding, dilation=ONE, ceil_mode=False):
    """((OH, OW), the padding with ceil_mode's overflow added at the bottom and right):
    ``ceil_mode`` counts windows by PyTorch's rule, and the input is padded far enough that
    the last one fits; otherwise the windows are counted rounding down."""
    out, sides = [], []
    for size, k, s, (before, after), d in zip(
        input_hw, kernel, stride, padding, dilation, strict=True
    ):
        extent = span(k, d)
        if ceil_mode:
            count = ceil_units(size, extent, s, before, after)
        else:
            count = units(size, extent, s, (before, after))
        overflow = (count - 1) * s + extent - (size + before + after)
        out.append(count)
        sides.append((before, after + max(0, overflow)))
    return tuple(out), tuple(sides)


def _unpad(x_padded, sides, input_hw):
    (top, _), (left, _) = sides
    return x_padded[:, :, top : top + input_hw[0], left : left + input_hw[1]]


def _winners(flat):
    """The offset in each window whose value is the window's max: the first largest value in
    row-major order, as PyTorch picks; in a window holding NaN, its last NaN (PyTorch's running
    max lets each NaN replace the winner so far)."""
    xp = get_array_module(flat)
    winner = flat.argmax(axis=-1)
    nan = xp.isnan(flat)
    if nan.any():
        last_nan = flat.shape[-1] - 1 - nan[..., ::-1].argmax(axis=-1)
        winner = xp.where(nan.any(axis=-1), last_nan, winner)
    return winner


def max_pool2d_forward(
    x, *, kernel, stride, padding, dilation=ONE, ceil_mode=False, workspace=None
):
    """The largest value of each window (padding is -inf: it never wins)."""
    xp = get_array_module(x)
    _, sides = pool_sides(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    x_padded = pad(x, sides, -xp.inf)
    every = windows(x_padded, kernel, stride, dilation)  # (N, C, OH, OW, KH, KW)
    flat = every.reshape(*every.shape[:4], kernel[0] * kernel[1])  # (N, C, OH, OW, KH*KW): a copy
    winner = _winners(flat)  # (N, C, OH, OW)
    y = xp.take_along_axis(flat, winner[..., None], axis=-1)[..., 0]
    return y, (winner, x_padded.shape, kernel, stride, dilation, sides, x.shape[2:])


def max_pool2d_backward(dy, saved, workspace=None):
    """Each window's gradient goes to its winner; every other pixel of the window gets 0."""
    xp = get_array_module(dy)
    winner, padded_shape, (kh, kw), stride, dilation, sides, input_hw = saved
    chosen = winner[..., None] == xp.arange(kh * kw)  # (N, C, OH, OW, KH*KW) one-hot
    blocks = xp.where(chosen, dy[..., None], xp.zeros((), dy.dtype))
    dx_padded = fold(blocks.reshape(*dy.shape, kh, kw), padded_shape, stride, dilation)
    return _unpad(dx_padded, sides, input_hw)


def avg_divisors(size, kernel, stride, before, count, *, include_pad=True):
    """How many values each of ``count`` windows along one axis averages (PyTorch's rule):
    the window's positions inside the input and its padding (``include_pad``), or inside the
    input only; positions a ceil_mode window reads past the padding never count.

    >>> avg_divisors(6, 3, 2, 1, 4), avg_divisors(6, 3, 2, 1, 4, include_pad=False)
    ([3, 3, 3, 2], [2, 3, 3, 1])
    """
    found = []
    for o in range(count):
        start = o * stride - before  # in input coordinates: negative in the top padding
        end = min(start + kernel, size + before)
        if not include_pad:
            start, end = max(start, 0), min(end, size)
        found.append(end - start)
    return found


def avg_divisor(xp, dtype, input_hw, out_hw, kernel, stride, padding, ceil_mode, include_pad):
    """The divisor of every output: KH*KW where every window holds KH*KW counted positions
    (as without ceil_mode overflow, and with padding counted or absent), else an (OH, OW)
    array of :func:`avg_divisors` products."""
    (top, bottom), (left, right) = padding
    exact = include_pad or top == bottom == left == right == 0
    if exact and not ceil_mode:
        return kernel[0] * kernel[1]
    rows, columns = (
        avg_divisors(size, k, s, sides[0], count, include_pad=include_pad)
        for size, k, s, sides, count in zip(input_hw, kernel, stride, padding, out_hw, strict=True)
    )
    if set(rows) == {kernel[0]} and set(columns) == {kernel[1]}:
        return kernel[0] * kernel[1]
    return xp.asarray(rows, dtype=dtype)[:, None] * xp.asarray(columns, dtype=dtype)[None, :]


def avg_pool2d_forward(
    x, *, kernel, stride, padding, ceil_mode=False, count_include_pad=True, workspace=None
):
    """The mean of each window: its sum over :func:`avg_divisor` (zero padding counts in it
    with ``count_include_pad``, PyTorch's default)."""
    xp = get_array_module(x)
    out_hw, sides = pool_sides(x.shape[2:], kernel, stride, padding, ONE, ceil_mode)
    x_padded = pad(x, sides, 0.0)
    divisor = avg_divisor(
        xp, x.dtype, x.shape[2:], out_hw, kernel, stride, padding, ceil_mode, count_include_pad
    )
    y = windows(x_padded, kernel, stride).sum(axis=(4, 5)) / divisor
    saved = (x_padded.shape, kernel, stride, sides, divisor, x.shape[2:])
    return y.astype(x.dtype, copy=False), saved


def avg_pool2d_backward(dy, saved, workspace=None):
    """Each window's gradient spread evenly over the values it averaged."""
    xp = get_array_module(dy)
    padded_shape, (kh, kw), stride, sides, divisor, input_hw = saved
    share = (dy / divisor).astype(dy.dtype, copy=False)
    blocks = xp.broadcast_to(share[..., None, None], (*dy.shape, kh, kw))
    return _unpad(fold(blocks, padded_shape, stride), sides, input_hw)
