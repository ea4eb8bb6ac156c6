"""Max and average pooling: forward beside backward, on the same sliding windows as convolution.

Padding follows PyTorch: max pooling pads with -inf (padding never wins), average pooling pads
with zeros that count in the divisor (``count_include_pad=True``, the default) or not. With
``ceil_mode`` the last window may run past the bottom/right padding: the input is padded
further there (-inf, or zeros left out of the divisor), as the reference engine does
(:func:`cnnkit.functional.reference_pool.pool_sides`). A dilated max pool reads its taps
``dilation`` apart: the strided views below simply start d apart.

Both are separable: a window's max (or sum) is the max (or sum) over its rows of each row's max
(or sum). So forward first reduces along W (KW strided views of the input), then along H (KH
strided views of that), with no index arrays and no copies of windows; the output keeps the
input's memory layout. Max pooling keeps one small integer per output, the kernel offset
i*KW + j of the window's winner: reducing along W first and keeping the first of equal values
at each step picks, like PyTorch, the first maximum in row-major window order. When windows tile
the input (stride = window, no padding, nothing left over) backward writes each input pixel
exactly once, with no zero-filling and no additions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from cnnkit.backend import get_array_module
from cnnkit.functional.fast import pool_kernels as kernels
from cnnkit.functional.fast.layout import NCHW, empty, layout_of
from cnnkit.functional.fast.windows import Sides, no_padding, padded
from cnnkit.functional.reference_pool import ONE, avg_divisor, pool_sides
from cnnkit.shapes import span


class MaxPoolCache(NamedTuple):
    """Where each window's max came from, in two small integer arrays (bool for 2 offsets)."""

    rows: object  # (N, C, OH, OW): which window row i held the window's max (None if KH = 1)
    columns: object  # (N, C, R, OW): which column j held the max of each row segment, for the
    # R = SH*(OH-1) + KH padded rows the windows read (None if KW = 1)
    input_shape: tuple[int, int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: Sides  # with ceil_mode's overflow at the bottom and right
    dilation: tuple[int, int] = ONE


class AvgPoolCache(NamedTuple):
    input_shape: tuple[int, int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: Sides  # with ceil_mode's overflow at the bottom and right
    divisor: object = None  # KH*KW, or (OH, OW) counts (ceil_mode, count_include_pad=False)


def _tiles(input_shape, kernel, stride, padding: Sides) -> bool:
    """Windows side by side covering every input pixel exactly once."""
    h, w = input_shape[2:]
    return (
        tuple(kernel) == tuple(stride)
        and no_padding(padding)
        and h % kernel[0] == 0
        and w % kernel[1] == 0
    )


def _spans(kernel, dilation) -> tuple[int, int]:
    return span(kernel[0], dilation[0]), span(kernel[1], dilation[1])


def _output_hw(padded_hw, kernel, stride, dilation=ONE) -> tuple[int, int]:
    """Windows per axis of an already padded input: (Hp - d(F - 1) - 1)//S + 1."""
    extents = _spans(kernel, dilation)
    return tuple((p - e) // s + 1 for p, e, s in zip(padded_hw, extents, stride, strict=True))


def _taps(source, kernel, stride, dilation=ONE):
    """Yield ``(i, j, view)`` per tap; ``view`` (N, C, OH, OW) is the pixel tap (i, j) of every
    window reads (a view of ``source``)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = _output_hw(source.shape[2:], kernel, stride, dilation)
    for i in range(kh):
        for j in range(kw):
            top, left = i * dh, j * dw
            yield (
                i,
                j,
                source[
                    :, :, top : top + sh * (oh - 1) + 1 : sh, left : left + sw * (ow - 1) + 1 : sw
                ],
            )


def _strided(x, axis: int, offset: int, step: int, count: int):
    """Elements offset, offset + step, ... (``count`` of them) along ``axis`` (2 or 3)."""
    index = [slice(None)] * 4
    index[axis] = slice(offset, offset + step * (count - 1) + 1, step)
    return x[tuple(index)]


def _index_type(xp, taps: int):
    """bool for two offsets, else the smallest integer type that counts them."""
    if taps == 2:
        return bool
    return xp.uint8 if taps <= 2**8 else xp.int16 if taps <= 2**15 else xp.int32


def max_pool_kept_bytes(channels, out_hw, kernel, stride, dilation=ONE) -> int:
    """Bytes per example that max pooling keeps for backward (see :class:`MaxPoolCache`);
    ``cnnkit.summary`` reports this figure."""
    oh, ow = out_hw
    read_rows = stride[0] * (oh - 1) + span(kernel[0], dilation[0])
    total = 0
    for taps, count in ((kernel[0], oh * ow), (kernel[1], read_rows * ow)):
        if taps > 1:
            total += channels * count * numpy.dtype(_index_type(numpy, taps)).itemsize
    return total


def _running_max(x, axis: int, taps: int, step: int, count: int, apart: int = 1):
    """Max over ``taps`` strided views along ``axis`` (starting ``apart`` elements apart), and
    which view held it (the first of equal values). Returns ``(values, index)``, index None for
    one view; NaN is not treated specially here (a NaN in a view makes the values NaN, which
    the caller checks)."""
    xp = get_array_module(x)
    first = _strided(x, axis, 0, step, count)
    if taps == 1:
        return first, None
    second = _strided(x, axis, apart, step, count)
    values = xp.maximum(first, second)
    better = xp.greater(second, first)
    if taps == 2:
        return values, better
    index = better.astype(_index_type(xp, taps))
    for tap in range(2, taps):
        view = _strided(x, axis, tap * apart, step, count)
        xp.greater(view, values, out=better)
        xp.maximum(values, view, out=values)
        xp.copyto(index, tap, where=better)
    return values, index


def max_pool2d_forward(
    x,
    *,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: Sides,
    dilation: tuple[int, int] = ONE,
    ceil_mode: bool = False,
    workspace=None,
):
    """Largest value of each window: x (N, C, H, W) -> y (N, C, OH, OW). Returns ``(y, cache)``.

    On ties the first offset in row-major window order wins, and NaN propagates, as in PyTorch.
    """
    xp = get_array_module(x)
    if ceil_mode:
        _, padding = pool_sides(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    compiled = None
    if dilation == ONE:
        compiled = kernels.max_pool_2x2(x, kernel, stride, padding, workspace)
    if compiled is not None:
        y, rows, columns, has_nan = compiled
        if has_nan:
            return _max_pool_with_nan(x, x.shape, kernel, stride, padding, dilation)
        return y, MaxPoolCache(rows, columns, x.shape, kernel, stride, padding, dilation)
    source = padded(x, padding, value=-xp.inf)
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = _output_hw(source.shape[2:], kernel, stride, dilation)
    read = source[:, :, : sh * (oh - 1) + span(kh, dh)]
    segments, columns = _running_max(read, 3, kw, sw, ow, dw)  # (N, C, R, OW)
    y, rows = _running_max(segments, 2, kh, sh, oh, dh)  # (N, C, OH, OW)
    if rows is None and columns is None:
        y = y.copy()
    if xp.isnan(y.sum()):
        return _max_pool_with_nan(source, x.shape, kernel, stride, padding, dilation)
    return y, MaxPoolCache(rows, columns, x.shape, kernel, stride, padding, dilation)


def _max_pool_with_nan(source, input_shape, kernel, stride, padding, dilation):
    """PyTorch's rule when NaN is present: a NaN replaces the running max, so the last NaN of a
    window wins. One pass per kernel offset in row-major order; the winner's offset is then
    split into its row and column as the cache stores them."""
    xp = get_array_module(source)
    (kh, kw), (sh, _), (dh, _) = kernel, stride, dilation
    y = None
    for i, j, view in _taps(source, kernel, stride, dilation):
        if y is None:
            y = view.copy()
            winner = xp.zeros(y.shape, dtype=xp.int64)
            continue
        better = (view > y) | xp.isnan(view)
        xp.copyto(y, view, where=better)
        winner[better] = i * kw + j
    oh, ow = y.shape[2:]
    rows = (winner // kw).astype(_index_type(xp, kh)) if kh > 1 else None
    columns = None
    if kw > 1:
        # Each row segment is read by the windows whose winning row it is; windows that share
        # a segment (overlap in H) pick the same column there, as the row stage would.
        n, c = y.shape[:2]
        columns = xp.zeros((n, c, sh * (oh - 1) + span(kh, dh), ow), dtype=_index_type(xp, kw))
        for i in range(kh):
            segment = columns[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh]
            xp.copyto(segment, winner % kw, where=(winner // kw) == i, casting="unsafe")
    return y, MaxPoolCache(rows, columns, input_shape, kernel, stride, padding, dilation)


def _scatter(grads, index, out, axis: int, taps: int, step: int, tiles: bool, apart: int = 1):
    """Adjoint of one stage of :func:`_running_max`: send each gradient to the view that won.

    ``out`` is zeroed by the caller unless ``tiles`` (the views cover it exactly once).
    ``grads`` must be finite when ``tiles`` (the winner's share is grads * mask).
    """
    xp = get_array_module(grads)
    count = grads.shape[axis]
    if index is None:
        view = _strided(out, axis, 0, step, count)
        if tiles:
            view[...] = grads
        else:
            view += grads
        return
    if tiles and taps == 2:
        second = _strided(out, axis, apart, step, count)
        xp.multiply(grads, index, out=second)
        xp.subtract(grads, second, out=_strided(out, axis, 0, step, count))
        return
    for tap in range(taps):
        view = _strided(out, axis, tap * apart, step, count)
        chosen = index if taps == 2 and tap == 1 else ~index if taps == 2 else index == tap
        if tiles:
            xp.multiply(grads, chosen, out=view)
        else:
            view += xp.where(chosen, grads, 0)


def max_pool2d_backward(dy, cache: MaxPoolCache, workspace=None):
    """Route each window's gradient to the input that won it: first to the winning row of the
    window, then to the winning column of that row.

    dy (N, C, OH, OW) -> dx (N, C, H, W).
    """
    rows, columns, input_shape, kernel, stride, padding, dilation = cache
    xp = get_array_module(dy)
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    n, c, h, w = input_shape
    (top, bottom), (left, right) = padding
    oh, ow = dy.shape[2:]
    layout = layout_of(dy) or NCHW
    read_rows = sh * (oh - 1) + span(kh, dh)
    if dilation == ONE:
        compiled = kernels.max_pool_2x2_backward(
            dy, rows, columns, input_shape, kernel, stride, padding, workspace
        )
        if compiled is not None:
            return compiled
    finite = bool(xp.isfinite(dy.sum()))
    tiles_h = finite and sh == kh and dh == 1
    tiles_w = finite and sw == kw and dw == 1 and ow * sw == w + left + right
    segments = empty((n, c, read_rows, ow), dy.dtype, layout, xp)
    if not tiles_h:
        segments[...] = 0
    _scatter(dy, rows, segments, 2, kh, sh, tiles_h, dh)
    whole = tiles_w and read_rows == h and top == bottom == 0
    dpadded = empty((n, c, h + top + bottom, w + left + right), dy.dtype, layout, xp)
    if not whole:
        dpadded[...] = 0
    _scatter(segments, columns, dpadded[:, :, :read_rows], 3, kw, sw, tiles_w, dw)
    return _unpad(dpadded, input_shape, padding)


def avg_pool2d_forward(
    x,
    *,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: Sides,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    workspace=None,
):
    """Mean of each window: x (N, C, H, W) -> y (N, C, OH, OW). Zero padding counts in the
    divisor with ``count_include_pad``; positions past the padding (``ceil_mode``) never do."""
    xp = get_array_module(x)
    out_hw, sides = pool_sides(x.shape[2:], kernel, stride, padding, ONE, ceil_mode)
    divisor = avg_divisor(
        xp, x.dtype, x.shape[2:], out_hw, kernel, stride, padding, ceil_mode, count_include_pad
    )
    if _scalar(divisor):
        compiled = kernels.avg_pool_2x2(x, kernel, stride, sides, workspace)
        if compiled is not None:
            return compiled, AvgPoolCache(x.shape, kernel, stride, sides, divisor)
    source = padded(x, sides)
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = out_hw
    rows = _running_sum(source, 3, kw, sw, ow)  # (N, C, Hp, OW)
    y = _running_sum(rows, 2, kh, sh, oh)  # (N, C, OH, OW)
    if y is source or y.base is not None:
        y = y.copy()
    y /= divisor
    return y, AvgPoolCache(x.shape, kernel, stride, sides, divisor)


def _scalar(divisor) -> bool:
    """One divisor for every window (KH*KW), not an (OH, OW) array of counts."""
    return not hasattr(divisor, "shape")


def _running_sum(x, axis: int, taps: int, step: int, count: int):
    xp = get_array_module(x)
    total = _strided(x, axis, 0, step, count)
    if taps == 1:
        return total
    total = xp.add(total, _strided(x, axis, 1, step, count))
    for tap in range(2, taps):
        total += _strided(x, axis, tap, step, count)
    return total


def avg_pool2d_backward(dy, cache: AvgPoolCache, workspace=None):
    """Spread each window's gradient evenly over it: dy (N, C, OH, OW) -> dx (N, C, H, W)."""
    input_shape, kernel, stride, padding, divisor = cache
    xp = get_array_module(dy)
    (kh, kw) = kernel
    divisor = kh * kw if divisor is None else divisor
    if _scalar(divisor):
        compiled = kernels.avg_pool_2x2_backward(
            dy, input_shape, kernel, stride, padding, workspace
        )
        if compiled is not None:
            return compiled
    layout = layout_of(dy) or NCHW
    if _scalar(divisor) and _tiles(input_shape, kernel, stride, padding):
        dx = empty(input_shape, dy.dtype, layout, xp)
        n, c, oh, ow = dy.shape
        blocks = dx.reshape(n, c, oh, kh, ow, kw)  # a view: splitting an axis never copies
        xp.divide(dy[:, :, :, None, :, None], divisor, out=blocks)
        return dx
    share = dy / divisor
    dpadded = _zeros_padded(dy, input_shape, padding, layout)
    for _, _, view in _taps(dpadded, kernel, stride):
        view += share
    return _unpad(dpadded, input_shape, padding)


def _zeros_padded(dy, input_shape, padding: Sides, layout: str):
    xp = get_array_module(dy)
    n, c, h, w = input_shape
    (top, bottom), (left, right) = padding
    out = empty((n, c, h + top + bottom, w + left + right), dy.dtype, layout, xp)
    out[...] = 0
    return out


def _unpad(padded, input_shape, padding: Sides):
    h, w = input_shape[2:]
    (top, _), (left, _) = padding
    return padded[:, :, top : top + h, left : left + w]
