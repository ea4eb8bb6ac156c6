"""Sliding windows: padding, im2col (``unfold``) and col2im (``fold``), shared by convolution and
both poolings.

Every function indexes its arrays (N, C, H, W) whatever their memory layout (see
:mod:`cnnkit.functional.fast.layout`), so one code path serves channels-last and channel-major data.
``unfold`` is a single strided copy (a view whose strides walk every window, written into a
buffer whose axis order the caller chooses); ``fold`` loops over the KH x KW kernel offsets only,
and each iteration adds a whole strided sub-grid of every image and channel at once.
"""

from __future__ import annotations

from collections.abc import Iterator

from cnnkit.backend import get_array_module
from cnnkit.functional.fast import window_kernels as kernels
from cnnkit.functional.fast.layout import (
    MEMORY_ORDER,
    NCHW,
    Workspace,
    kept,
    layout_of,
    memory,
    nchw,
    scratch,
)
from cnnkit.shapes import span, units

Sides = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))
ONE = (1, 1)  # no dilation: a window's taps are neighbours

# Axis orders of an im2col buffer. Canonical axes: n (image), c (channel), i, j (kernel offset),
# oh, ow (output position).
ROWS = ("n", "oh", "ow", "i", "j", "c")  # an (N*OH*OW, KH*KW*C) matrix: one row per unit
COLUMNS = ("c", "i", "j", "n", "oh", "ow")  # a (C*KH*KW, N*OH*OW) matrix: one column per unit
_CANONICAL = ("n", "c", "i", "j", "oh", "ow")


def output_hw(padded_hw, kernel: tuple[int, int], stride: tuple[int, int], dilation=ONE):
    """(I + 2P - d(F - 1) - 1)//S + 1 per axis of an already padded input (``shapes.units``);
    the layers have already refused impossible configurations."""
    height = units(padded_hw[0], span(kernel[0], dilation[0]), stride[0])
    return height, units(padded_hw[1], span(kernel[1], dilation[1]), stride[1])


def no_padding(padding: Sides) -> bool:
    (top, bottom), (left, right) = padding
    return top == bottom == left == right == 0


def pad(x, padding: Sides, value: float = 0.0):
    """Pad the two spatial axes of (N, C, H, W) ``x``; returns ``x`` itself when nothing to pad."""
    return padded(x, padding, value=value)


def padded(
    x,
    padding: Sides,
    *,
    value: float = 0.0,
    layout: str | None = None,
    workspace: Workspace | None = None,
    name: str = "padded",
    keep: bool = False,
):
    """``x`` surrounded by ``value``, stored in ``layout`` (default: ``x``'s own, else NCHW).

    Returns ``x`` itself when there is nothing to pad and it is already stored that way. With a
    workspace the padded array is reused between calls: its border is written once, when it is
    allocated (a name per border), and every call copies only the interior. ``keep``: the
    result outlives the call (a forward saves it), so it comes from memory nothing else refers
    to.
    """
    layout = layout or layout_of(x) or NCHW
    if no_padding(padding) and memory(x, layout).flags.c_contiguous:
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    (top, bottom), (left, right) = padding
    shape = (n, c, h + top + bottom, w + left + right)
    stored_shape = [shape[a] for a in MEMORY_ORDER[layout]]
    lend = kept if keep else scratch
    # the border is written when the array is allocated: one border (sides, value) per name
    name = f"{name} {top},{left} {value}"
    stored = lend(workspace, name, stored_shape, x.dtype, xp, value)
    out = nchw(stored, layout)
    out[:, :, top : top + h, left : left + w] = x
    return out


def window_views(padded, kernel, stride, dilation=ONE) -> Iterator:
    """Yield ``(i, j, view)`` per kernel offset; ``view`` is (N, C, OH, OW): the input pixel that
    offset (i, j) of every window reads (taps ``dilation`` apart). A view, so writing into it
    writes the padded array."""
    kh, kw = kernel
    sh, sw = stride
    oh, ow = output_hw(padded.shape[2:], kernel, stride, dilation)
    for i in range(kh):
        for j in range(kw):
            top, left = i * dilation[0], j * dilation[1]
            rows = slice(top, top + sh * (oh - 1) + 1, sh)
            yield i, j, padded[:, :, rows, left : left + sw * (ow - 1) + 1 : sw]


def _sizes(padded_shape, kernel, stride, dilation=ONE) -> dict[str, int]:
    n, c = padded_shape[:2]
    oh, ow = output_hw(padded_shape[2:], kernel, stride, dilation)
    return {"n": n, "c": c, "i": kernel[0], "j": kernel[1], "oh": oh, "ow": ow}


def columns_shape(padded_shape, kernel, stride, order=ROWS, dilation=ONE) -> tuple[int, int]:
    """The 2-D shape of the im2col matrix of ``order`` (ROWS: units x taps)."""
    sizes = _sizes(padded_shape, kernel, stride, dilation)
    first = sizes[order[0]] * sizes[order[1]] * sizes[order[2]]
    return first, sizes[order[3]] * sizes[order[4]] * sizes[order[5]]


def unfold(padded, kernel: tuple[int, int], stride: tuple[int, int], out, order=ROWS, dilation=ONE):
    """im2col: write every window of ``padded`` (N, C, Hp, Wp) into ``out``; returns ``out``.
    A window's taps lie ``dilation`` apart (its ``i`` and ``j`` steps are d pixels).

    ``out`` is any C-contiguous array of ``columns_shape`` elements; its axes are laid out in
    ``order`` (ROWS or COLUMNS). Reshaped to that 2-D shape, row (n, oh, ow) of ROWS is the
    flattened receptive field of output unit (oh, ow) of image n, so one matrix product with the
    filters (as a (KH*KW*C, D) matrix) gives every unit's dot product at once.
    """
    xp = get_array_module(padded)
    sizes = _sizes(padded.shape, kernel, stride, dilation)
    step_n, step_c, step_h, step_w = padded.strides
    steps = {
        "n": step_n,
        "c": step_c,
        "i": step_h * dilation[0],
        "j": step_w * dilation[1],
        "oh": step_h * stride[0],
        "ow": step_w * stride[1],
    }
    shape = tuple(sizes[axis] for axis in order)
    if order == _CANONICAL and out.flags.c_contiguous:
        if kernels.unfold_images(padded, kernel, stride, out.reshape(shape), dilation):
            return out
    if order == ROWS and out.flags.c_contiguous:
        if kernels.unfold_rows(padded, kernel, stride, out.reshape(shape), dilation):
            return out
    windows = xp.lib.stride_tricks.as_strided(padded, shape, tuple(steps[a] for a in order))
    xp.copyto(out.reshape(shape), windows)
    return out


def fold(cols, padded, kernel: tuple[int, int], stride: tuple[int, int], order=ROWS, dilation=ONE):
    """col2im, the adjoint of :func:`unfold`: add each column back onto the pixels it was read
    from, into ``padded`` (N, C, Hp, Wp), which the caller has zeroed. Pixels read by several
    windows (overlapping windows) receive the sum of their contributions."""
    sizes = _sizes(padded.shape, kernel, stride, dilation)
    stored = cols.reshape(tuple(sizes[axis] for axis in order))
    canonical = stored.transpose(tuple(order.index(axis) for axis in _CANONICAL))
    if order[-1] == "ow" and kernels.fold_images(canonical, padded, kernel, stride, dilation):
        return padded  # the loop reads rows of OW values: IMAGES or COLUMNS
    for i, j, view in window_views(padded, kernel, stride, dilation):
        view += canonical[:, :, i, j]  # (N, C, OH, OW)
    return padded


def fold_into(cols, dx, kernel, stride, padding: Sides, order, dilation=ONE):
    """col2im of ``cols`` (laid out in ``order``) written straight into ``dx`` (N, C, H, W),
    without the padding, where the compiled loops apply; returns False (nothing written) where
    they do not, and the caller folds into a zeroed padded array instead (:func:`fold`)."""
    n, c, h, w = dx.shape
    (top, bottom), (left, right) = padding
    sizes = _sizes((n, c, h + top + bottom, w + left + right), kernel, stride, dilation)
    stored = cols.reshape(tuple(sizes[axis] for axis in order))
    canonical = stored.transpose(tuple(order.index(axis) for axis in _CANONICAL))
    return kernels.fold_into(canonical, dx, kernel, stride, padding, dilation)


def im2col(x, kernel: tuple[int, int], stride: tuple[int, int], padding: Sides):
    """Every region each computational unit reads, as columns: (C, KH, KW, N, OH, OW).

    Reshaped to (C*KH*KW, N*OH*OW), column ``(n, oh, ow)`` is the flattened receptive field of
    output unit (oh, ow) of image n, so one matrix product with the (D, C*KH*KW) filters gives
    every unit's dot product at once.
    """
    xp = get_array_module(x)
    source = padded(x, padding)
    sizes = _sizes(source.shape, kernel, stride)
    cols = xp.empty(tuple(sizes[axis] for axis in COLUMNS), dtype=x.dtype)
    return unfold(source, kernel, stride, cols, COLUMNS)


def col2im(cols, input_shape: tuple[int, ...], stride: tuple[int, int], padding: Sides):
    """Adjoint of :func:`im2col`: add each column back onto the pixels it was read from.

    ``cols`` is (C, KH, KW, N, OH, OW); returns (N, C, H, W). Pixels read by several windows
    (overlapping windows) receive the sum of their contributions.
    """
    xp = get_array_module(cols)
    n, c, h, w = input_shape
    (top, bottom), (left, right) = padding
    out = xp.zeros((n, c, h + top + bottom, w + left + right), dtype=cols.dtype)
    fold(cols, out, cols.shape[1:3], stride, COLUMNS)
    return out[:, :, top : top + h, left : left + w]
