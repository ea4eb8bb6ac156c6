"""Compiled im2col/col2im and ReLU loops (see :mod:`cnnkit.functional.fast.jit`).

im2col and col2im of small layers cost a NumPy call per row of a few values, col2im of wide
layers KH*KW strided additions, and ReLU three passes and a temporary. These loops make one
pass each and give the NumPy path's numbers (the tests compare both, element for element; a
stopped ReLU gradient may be +0.0 where NumPy's product gives -0.0).
"""

from __future__ import annotations

import numpy as np

from cnnkit.functional.fast import jit
from cnnkit.functional.fast.layout import NHWC, layout_of, memory, result

# --------------------------------------------------------------------------- im2col / col2im
# Channels-last (ROWS) columns, the order of wide layers: col2im for the input gradient
# (``fold_into``) is, in NumPy, KH*KW strided additions into a zeroed padded array, then a
# cropped copy; ``_fold_last`` gathers instead, so every input pixel is written once (3-4x
# faster on the benchmark's 32->64 and 64->128 layers).
# Columns with OW innermost (the IMAGES order small layers use, (N, C, KH, KW, OH, OW), and
# COLUMNS): NumPy's strided copy, and col2im's KH*KW strided additions, cost a call each and
# walk rows of a few values, which dominates on LeNet-sized layers. The loops copy and add whole
# rows (contiguous slices when the stride is 1); col2im of COLUMNS runs through the same loop on
# a transposed view. ``_fold_images`` adds each pixel's contributions in the NumPy path's order
# (kernel offset (i, j) ascending, onto what is there), so both paths give identical sums.


# A dilated window's taps lie d apart: tap (i, j) of the window at (oh, ow) reads padded pixel
# (i*d_h + S_h*oh, j*d_w + S_w*ow); every loop takes the dilation (1 for an ordinary filter).


def _unfold_images(x, kernel_h, kernel_w, stride_h, stride_w, dil_h, dil_w, out):
    n_images, channels, _, _ = x.shape
    out_h, out_w = out.shape[4], out.shape[5]
    for n in range(n_images):
        for c in range(channels):
            for i in range(kernel_h):
                for j in range(kernel_w):
                    first = j * dil_w
                    for oh in range(out_h):
                        row = x[n, c, i * dil_h + stride_h * oh]
                        target = out[n, c, i, j, oh]
                        if stride_w == 1:
                            source = row[first : first + out_w]
                            for ow in range(out_w):
                                target[ow] = source[ow]
                        else:
                            for ow in range(out_w):
                                target[ow] = row[first + stride_w * ow]


def _fold_images(cols, kernel_h, kernel_w, stride_h, stride_w, dil_h, dil_w, x):
    n_images, channels, _, _ = x.shape
    out_h, out_w = cols.shape[4], cols.shape[5]
    for n in range(n_images):
        for c in range(channels):
            for i in range(kernel_h):
                for j in range(kernel_w):
                    first = j * dil_w
                    for oh in range(out_h):
                        row = x[n, c, i * dil_h + stride_h * oh]
                        source = cols[n, c, i, j, oh]
                        if stride_w == 1:
                            target = row[first : first + out_w]
                            for ow in range(out_w):
                                target[ow] += source[ow]
                        else:
                            for ow in range(out_w):
                                row[first + stride_w * ow] += source[ow]


def _fold_last(cols, kernel_h, kernel_w, stride_h, stride_w, dil_h, dil_w, top, left, dx):
    # cols (N, OH, OW, KH, KW, C), dx (N, H, W, C). Gather instead of scatter: each input pixel
    # sums, in the NumPy path's order (kernel offset (i, j) ascending, from zero), the column
    # entries that read it, and is written once.
    n_images, height, width, channels = dx.shape
    out_h, out_w = cols.shape[1], cols.shape[2]
    for n in range(n_images):
        for y in range(height):
            for x in range(width):
                target = dx[n, y, x]
                for c in range(channels):
                    target[c] = 0
                for i in range(kernel_h):
                    r = y + top - i * dil_h
                    if r < 0:
                        break
                    oh = r // stride_h
                    if r % stride_h or oh >= out_h:
                        continue
                    for j in range(kernel_w):
                        q = x + left - j * dil_w
                        if q < 0:
                            break
                        ow = q // stride_w
                        if q % stride_w or ow >= out_w:
                            continue
                        source = cols[n, oh, ow, i, j]
                        for c in range(channels):
                            target[c] += source[c]


def _fold_last_unit(cols, kernel_h, kernel_w, dil_h, dil_w, top, left, dx):
    # _fold_last for stride 1 (the usual case): the same sums in the same order, without the
    # two integer divisions per tap that cost most of its time.
    n_images, height, width, channels = dx.shape
    out_h, out_w = cols.shape[1], cols.shape[2]
    for n in range(n_images):
        for y in range(height):
            for x in range(width):
                target = dx[n, y, x]
                for c in range(channels):
                    target[c] = 0
                for i in range(kernel_h):
                    oh = y + top - i * dil_h
                    if oh < 0:
                        break
                    if oh >= out_h:
                        continue
                    for j in range(kernel_w):
                        ow = x + left - j * dil_w
                        if ow < 0:
                            break
                        if ow >= out_w:
                            continue
                        source = cols[n, oh, ow, i, j]
                        for c in range(channels):
                            target[c] += source[c]


def _unfold_rows(x, kernel_h, kernel_w, stride_h, stride_w, dil_h, dil_w, out):
    # x (N, Hp, Wp, C) channels-last, out (N, OH, OW, KH, KW, C): ROWS columns, each tap a
    # copy of C contiguous values (NumPy's strided copy pays a call's overhead per such run).
    n_images, channels = x.shape[0], x.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    for n in range(n_images):
        for oh in range(out_h):
            for ow in range(out_w):
                target = out[n, oh, ow]
                for i in range(kernel_h):
                    row = x[n, oh * stride_h + i * dil_h]
                    for j in range(kernel_w):
                        source, dest = row[ow * stride_w + j * dil_w], target[i, j]
                        for c in range(channels):
                            dest[c] = source[c]


# --------------------------------------------------------------------------- ReLU
# NumPy needs three passes and a temporary for ReLU's output and mask, and two for its
# backward (a finiteness check, then the product); these loops make one each, over the arrays'
# memory in whatever layout they share.


def _relu_forward(x, y, mask):
    for k in range(x.size):
        value = x[k]
        mask[k] = not value <= 0  # NaN passes its gradient, as in PyTorch
        y[k] = value if value > 0 or value != value else 0  # exactly np.maximum(value, 0)


def _relu_backward(dy, mask, dx):
    for k in range(dy.size):
        dx[k] = dy[k] if mask[k] else 0


# Tinier arrays stay on NumPy: no compilation for toy sizes, and no gain there.


_LOOPS: dict[str, object] = {}


def _loop(name: str):
    loop = _LOOPS.get(name)
    if loop is None:
        loop = _LOOPS[name] = jit.compiled(globals()[name])
    return loop


# --------------------------------------------------------------------------- entry points


def _windows_apply(padded, cols, kernel, stride) -> bool:
    """Whether the im2col/col2im loops take these arrays (else NumPy does it)."""
    if not jit.state["enabled"] or type(padded) is not np.ndarray or type(cols) is not np.ndarray:
        return False
    if padded.dtype != cols.dtype or padded.dtype not in (np.float32, np.float64):
        return False
    return WINDOW_MIN_ELEMENTS <= cols.size <= WINDOW_MAX_ELEMENTS


# Per call: below, NumPy's few calls cost nothing worth compiling for; above, NumPy's strided
# additions run long enough that the per-call cost no longer matters.
WINDOW_MIN_ELEMENTS = 1 << 12
WINDOW_MAX_ELEMENTS = 1 << 24


def unfold_images(padded, kernel, stride, out, dilation=(1, 1)) -> bool:
    """im2col into ``out`` stored (N, C, KH, KW, OH, OW), as :func:`cnnkit.functional.fast.windows.
    unfold` writes it; False (nothing written) where the loop does not apply."""
    if not _windows_apply(padded, out, kernel, stride):
        return False
    _loop("_unfold_images")(padded, *kernel, *stride, *dilation, out)
    return True


def _rows_loop_pays(channels: int, dilation) -> bool:
    """Below 16 channels NumPy's strided copy, which moves each (KW, C) run of an undilated
    window row as one block, beats the loop's C-value copies (LeNet's conv2, C = 6: 0.95 against
    1.87 ms a forward); from 16 on the loop wins (a 16->16 3x3 forward: 10.5 against 20.4 ms)."""
    return channels >= 16 or (channels >= 8 and dilation[1] != 1)


def unfold_rows(padded, kernel, stride, out, dilation=(1, 1)) -> bool:
    """im2col into ``out`` stored (N, OH, OW, KH, KW, C) (ROWS) from ``padded`` stored
    channels-last; False (nothing written) where the loop does not apply."""
    if not _windows_apply(padded, out, kernel, stride) or layout_of(padded) != NHWC:
        return False
    if not _rows_loop_pays(padded.shape[1], dilation):
        return False
    _loop("_unfold_rows")(memory(padded, NHWC), *kernel, *stride, *dilation, out)
    return True


def fold_images(cols, padded, kernel, stride, dilation=(1, 1)) -> bool:
    """col2im of ``cols`` indexed (N, C, KH, KW, OH, OW) (any strides; rows of OW values read
    fastest when contiguous) added onto ``padded``, as :func:`cnnkit.functional.fast.windows.fold`
    does it; False (nothing added) where the loop does not apply."""
    if not _windows_apply(padded, cols, kernel, stride):
        return False
    _loop("_fold_images")(cols, *kernel, *stride, *dilation, padded)
    return True


def fold_into(cols, dx, kernel, stride, padding, dilation=(1, 1)) -> bool:
    """col2im straight into ``dx`` (N, C, H, W) stored channels-last. ``cols`` is a canonical
    view (N, C, KH, KW, OH, OW) of a ROWS buffer. ``dx`` is overwritten, the padding dropped,
    with exactly the values the NumPy path gives (fold into a zeroed padded array, then crop).
    False (nothing written) where the loops do not apply."""
    if not jit.state["enabled"] or type(dx) is not np.ndarray or type(cols) is not np.ndarray:
        return False
    if dx.dtype != cols.dtype or dx.dtype not in (np.float32, np.float64):
        return False
    if cols.size < WINDOW_MIN_ELEMENTS:
        return False
    stored = cols.transpose(0, 4, 5, 2, 3, 1)  # (N, OH, OW, KH, KW, C)
    if layout_of(dx) != NHWC or not stored.flags.c_contiguous:
        return False  # a gather over planes measured no faster than NumPy's additions
    (top, _), (left, _) = padding
    if tuple(stride) == (1, 1):
        _loop("_fold_last_unit")(stored, *kernel, *dilation, top, left, memory(dx, NHWC))
        return True
    _loop("_fold_last")(stored, *kernel, *stride, *dilation, top, left, memory(dx, NHWC))
    return True


def _like(workspace, name: str, x, dtype):
    """A result array indexed like ``x`` and stored in the same memory order (C order, or a
    layout of :mod:`cnnkit.functional.fast.layout`), and that memory as a 1-D view; None for other
    strides."""
    if x.flags.c_contiguous:
        array = _result(workspace, name, x.shape, dtype)
        return array, array.reshape(-1)
    layout = layout_of(x) if x.ndim == 4 else None
    if layout is None:
        return None
    array = result(workspace, name, x.shape, dtype, layout, np)
    return array, memory(array, layout).reshape(-1)


def _result(workspace, name, shape, dtype):
    return np.empty(shape, dtype) if workspace is None else workspace.result(name, shape, dtype, np)


def _flat(x, like):
    """``x``'s memory as a 1-D view when it is stored like ``like`` (else None)."""
    if x.flags.c_contiguous and like.flags.c_contiguous:
        return x.reshape(-1)
    layout = layout_of(x) if x.ndim == 4 else None
    if layout is None or layout_of(like) != layout:
        return None
    return memory(x, layout).reshape(-1)


def _elementwise_applies(x) -> bool:
    return (
        jit.state["enabled"]
        and type(x) is np.ndarray
        and x.dtype in (np.float32, np.float64)
        and x.size >= jit.MIN_ELEMENTS
    )


def relu(x, workspace=None):
    """``(y, mask)`` as :func:`cnnkit.functional.activation.relu_forward` computes them, stored
    like ``x``, or None where the loop does not apply."""
    if not _elementwise_applies(x):
        return None
    outputs = _like(workspace, "y", x, x.dtype)
    if outputs is None:
        return None
    y, flat_y = outputs
    mask, flat_mask = _like(workspace, "mask", x, bool)
    _loop("_relu_forward")(_flat(x, x), flat_y, flat_mask)
    return y, mask


def relu_backward(dy, mask, workspace=None):
    """``dy`` where ``mask``, else 0 (PyTorch's rule, whatever dy holds), or None where the loop
    does not apply (``dy`` and the mask stored differently)."""
    if not _elementwise_applies(dy) or mask.shape != dy.shape:
        return None
    flat_mask = _flat(mask, dy)
    outputs = _like(workspace, "dx", dy, dy.dtype)
    if flat_mask is None or outputs is None:
        return None
    dx, flat_dx = outputs
    _loop("_relu_backward")(_flat(dy, dy), flat_mask, flat_dx)
    return dx
