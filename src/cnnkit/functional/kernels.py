"""Optional compiled kernels (numba) for the loops NumPy cannot do in one pass.

NumPy pools with strided views (see :mod:`cnnkit.functional.pool`): four passes over strided
data for a 2x2 max pool, several times slower than PyTorch's channels-last kernel on the
benchmark; ReLU takes three passes and a temporary; im2col and col2im of small layers cost a
NumPy call per row of a few values, and col2im of wide layers KH*KW strided additions. With
numba installed (``pip install 'cnnkit[fast]'``) these run through the loops below instead, one
pass each. They give the NumPy path's numbers (the same float operations in the same order, so
outputs and caches are equal element for element; where the NumPy path multiplies by a 0/1
mask a loop may select, which can turn a -0.0 into +0.0), and the tests run both paths and
compare them; anything else (other windows, NaN in a max pool's input, CuPy arrays) stays on
NumPy.

``CNNKIT_JIT=0`` in the environment, or :func:`use_jit` (False), switches them off. The first
call compiles them (about a second each), cached on disk afterwards (numba's cache).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os

import numpy as np

from cnnkit.functional.layout import NHWC, layout_of, memory, result

_AVAILABLE = importlib.util.find_spec("numba") is not None  # an optional dependency


class _LazyNumba:
    """``numba``, imported on first attribute access."""

    def __getattr__(self, name):
        import numba as module

        globals()["numba"] = module
        return getattr(module, name)


numba = _LazyNumba()
_state = {"enabled": _AVAILABLE and os.environ.get("CNNKIT_JIT", "1") != "0"}


def jit_available() -> bool:
    """Whether numba is installed (the kernels can run)."""
    return _AVAILABLE


def jit_enabled() -> bool:
    """Whether the kernels run now (installed and not switched off)."""
    return _state["enabled"]


@contextlib.contextmanager
def use_jit(enabled: bool):
    """``with use_jit(False):`` runs everything on NumPy (the tests compare both paths)."""
    previous = _state["enabled"]
    _state["enabled"] = bool(enabled) and _AVAILABLE
    try:
        yield
    finally:
        _state["enabled"] = previous


def _applies(x, kernel, stride, padding, input_hw=None) -> str | None:
    """The memory layout to run a 2x2 kernel on ``x`` (the input, or in backward the gradient
    of an input of ``input_hw``), or None when NumPy must do it."""
    if not _state["enabled"] or type(x) is not np.ndarray:
        return None
    if x.dtype != np.float32 and x.dtype != np.float64:
        return None
    if x.size < MIN_ELEMENTS:
        return None
    (top, bottom), (left, right) = padding
    h, w = x.shape[2:] if input_hw is None else input_hw
    if tuple(kernel) != (2, 2) or tuple(stride) != (2, 2) or top or bottom or left or right:
        return None
    if h % 2 or w % 2 or not x.size:
        return None
    layout = layout_of(x)
    if layout == NHWC:
        return NHWC
    if layout is not None:  # NCHW or CNHW: W innermost
        return layout
    return None


# --------------------------------------------------------------------------- the loops
# ``_last`` kernels take arrays in memory order (N, H, W, C); ``_wide`` ones (A, B, H, W) with W
# innermost (NCHW, or CNHW where A and B are C and N: pooling treats both alike).


def _max_forward_last(x, y, rows, columns):
    n_images, height, width, channels = x.shape
    has_nan = False
    for n in range(n_images):
        for oh in range(height // 2):
            for ow in range(width // 2):
                for c in range(channels):
                    a = x[n, 2 * oh, 2 * ow, c]
                    b = x[n, 2 * oh, 2 * ow + 1, c]
                    top = np.maximum(a, b)
                    columns[n, 2 * oh, ow, c] = b > a
                    a = x[n, 2 * oh + 1, 2 * ow, c]
                    b = x[n, 2 * oh + 1, 2 * ow + 1, c]
                    bottom = np.maximum(a, b)
                    columns[n, 2 * oh + 1, ow, c] = b > a
                    largest = np.maximum(top, bottom)
                    y[n, oh, ow, c] = largest
                    rows[n, oh, ow, c] = bottom > top
                    has_nan |= largest != largest
    return has_nan


def _max_forward_wide(x, y, rows, columns):
    n_outer, n_inner, height, width = x.shape
    has_nan = False
    for a_index in range(n_outer):
        for b_index in range(n_inner):
            for oh in range(height // 2):
                for ow in range(width // 2):
                    a = x[a_index, b_index, 2 * oh, 2 * ow]
                    b = x[a_index, b_index, 2 * oh, 2 * ow + 1]
                    top = np.maximum(a, b)
                    columns[a_index, b_index, 2 * oh, ow] = b > a
                    a = x[a_index, b_index, 2 * oh + 1, 2 * ow]
                    b = x[a_index, b_index, 2 * oh + 1, 2 * ow + 1]
                    bottom = np.maximum(a, b)
                    columns[a_index, b_index, 2 * oh + 1, ow] = b > a
                    largest = np.maximum(top, bottom)
                    y[a_index, b_index, oh, ow] = largest
                    rows[a_index, b_index, oh, ow] = bottom > top
                    has_nan |= largest != largest
    return has_nan


def _max_backward_last(dy, rows, columns, dx):
    # Each gradient goes to its window's winner, zeros elsewhere: what the NumPy path gives
    # (for any dy, inf and NaN included; a select rather than the NumPy path's product).
    n_images, out_h, out_w, channels = dy.shape
    for n in range(n_images):
        for oh in range(out_h):
            for ow in range(out_w):
                for c in range(channels):
                    g = dy[n, oh, ow, c]
                    lower = rows[n, oh, ow, c]
                    right = columns[n, 2 * oh, ow, c]
                    dx[n, 2 * oh, 2 * ow, c] = 0.0 if lower or right else g
                    dx[n, 2 * oh, 2 * ow + 1, c] = g if right and not lower else 0.0
                    right = columns[n, 2 * oh + 1, ow, c]
                    dx[n, 2 * oh + 1, 2 * ow, c] = g if lower and not right else 0.0
                    dx[n, 2 * oh + 1, 2 * ow + 1, c] = g if lower and right else 0.0


def _max_backward_wide(dy, rows, columns, dx):
    n_outer, n_inner, out_h, out_w = dy.shape
    for a_index in range(n_outer):
        for b_index in range(n_inner):
            for oh in range(out_h):
                for ow in range(out_w):
                    g = dy[a_index, b_index, oh, ow]
                    lower = rows[a_index, b_index, oh, ow]
                    right = columns[a_index, b_index, 2 * oh, ow]
                    dx[a_index, b_index, 2 * oh, 2 * ow] = 0.0 if lower or right else g
                    dx[a_index, b_index, 2 * oh, 2 * ow + 1] = g if right and not lower else 0.0
                    right = columns[a_index, b_index, 2 * oh + 1, ow]
                    dx[a_index, b_index, 2 * oh + 1, 2 * ow] = g if lower and not right else 0.0
                    dx[a_index, b_index, 2 * oh + 1, 2 * ow + 1] = g if lower and right else 0.0


def _avg_forward_last(x, y):
    n_images, height, width, channels = x.shape
    for n in range(n_images):
        for oh in range(height // 2):
            for ow in range(width // 2):
                for c in range(channels):
                    top = x[n, 2 * oh, 2 * ow, c] + x[n, 2 * oh, 2 * ow + 1, c]
                    bottom = x[n, 2 * oh + 1, 2 * ow, c] + x[n, 2 * oh + 1, 2 * ow + 1, c]
                    y[n, oh, ow, c] = (top + bottom) / 4.0


def _avg_forward_wide(x, y):
    n_outer, n_inner, height, width = x.shape
    for a_index in range(n_outer):
        for b_index in range(n_inner):
            for oh in range(height // 2):
                for ow in range(width // 2):
                    top = (
                        x[a_index, b_index, 2 * oh, 2 * ow]
                        + x[a_index, b_index, 2 * oh, 2 * ow + 1]
                    )
                    bottom = (
                        x[a_index, b_index, 2 * oh + 1, 2 * ow]
                        + x[a_index, b_index, 2 * oh + 1, 2 * ow + 1]
                    )
                    y[a_index, b_index, oh, ow] = (top + bottom) / 4.0


def _avg_backward_last(dy, dx):
    n_images, out_h, out_w, channels = dy.shape
    for n in range(n_images):
        for oh in range(out_h):
            for ow in range(out_w):
                for c in range(channels):
                    share = dy[n, oh, ow, c] / 4.0
                    dx[n, 2 * oh, 2 * ow, c] = share
                    dx[n, 2 * oh, 2 * ow + 1, c] = share
                    dx[n, 2 * oh + 1, 2 * ow, c] = share
                    dx[n, 2 * oh + 1, 2 * ow + 1, c] = share


def _avg_backward_wide(dy, dx):
    n_outer, n_inner, out_h, out_w = dy.shape
    for a_index in range(n_outer):
        for b_index in range(n_inner):
            for oh in range(out_h):
                for ow in range(out_w):
                    share = dy[a_index, b_index, oh, ow] / 4.0
                    dx[a_index, b_index, 2 * oh, 2 * ow] = share
                    dx[a_index, b_index, 2 * oh, 2 * ow + 1] = share
                    dx[a_index, b_index, 2 * oh + 1, 2 * ow] = share
                    dx[a_index, b_index, 2 * oh + 1, 2 * ow + 1] = share


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


def _unfold_images(x, kernel_h, kernel_w, stride_h, stride_w, out):
    n_images, channels, _, _ = x.shape
    out_h, out_w = out.shape[4], out.shape[5]
    for n in range(n_images):
        for c in range(channels):
            for i in range(kernel_h):
                for j in range(kernel_w):
                    for oh in range(out_h):
                        row = x[n, c, i + stride_h * oh]
                        target = out[n, c, i, j, oh]
                        if stride_w == 1:
                            source = row[j : j + out_w]
                            for ow in range(out_w):
                                target[ow] = source[ow]
                        else:
                            for ow in range(out_w):
                                target[ow] = row[j + stride_w * ow]


def _fold_images(cols, kernel_h, kernel_w, stride_h, stride_w, x):
    n_images, channels, _, _ = x.shape
    out_h, out_w = cols.shape[4], cols.shape[5]
    for n in range(n_images):
        for c in range(channels):
            for i in range(kernel_h):
                for j in range(kernel_w):
                    for oh in range(out_h):
                        row = x[n, c, i + stride_h * oh]
                        source = cols[n, c, i, j, oh]
                        if stride_w == 1:
                            target = row[j : j + out_w]
                            for ow in range(out_w):
                                target[ow] += source[ow]
                        else:
                            for ow in range(out_w):
                                row[j + stride_w * ow] += source[ow]


def _fold_last(cols, kernel_h, kernel_w, stride_h, stride_w, top, left, dx):
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
                    r = y + top - i
                    if r < 0:
                        break
                    oh = r // stride_h
                    if r % stride_h or oh >= out_h:
                        continue
                    for j in range(kernel_w):
                        q = x + left - j
                        if q < 0:
                            break
                        ow = q // stride_w
                        if q % stride_w or ow >= out_w:
                            continue
                        source = cols[n, oh, ow, i, j]
                        for c in range(channels):
                            target[c] += source[c]


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
MIN_ELEMENTS = 1 << 12

_LOOPS: dict[str, object] = {}


def _loop(name: str, layout: str | None = None):
    """The compiled loop, compiled on first use (importing cnnkit never imports numba).

    Serial on purpose: right after a matrix product OpenBLAS's threads still spin for a while,
    and a parallel loop fighting them for the two cores was sometimes twice as slow as this.
    """
    if layout is not None:
        name = f"{name}_{'last' if layout == NHWC else 'wide'}"
    if name not in _LOOPS:
        _LOOPS[name] = numba.njit(cache=True)(globals()[name])
    return _LOOPS[name]


# --------------------------------------------------------------------------- entry points


def max_pool_2x2(x, kernel, stride, padding, workspace=None):
    """``(y, rows, columns, has_nan)``: the first three as :func:`cnnkit.functional.pool.
    max_pool2d_forward` computes them for 2x2 windows with stride 2 (valid when ``has_nan`` is
    False; NaN follows another rule), or None where the kernel does not apply."""
    layout = _applies(x, kernel, stride, padding)
    if layout is None:
        return None
    n, c, h, w = x.shape
    y = result(workspace, "y", (n, c, h // 2, w // 2), x.dtype, layout, np)
    rows = result(workspace, "rows", (n, c, h // 2, w // 2), bool, layout, np)
    columns = result(workspace, "columns", (n, c, h, w // 2), bool, layout, np)
    stored = [memory(array, layout) for array in (x, y, rows, columns)]
    has_nan = _loop("_max_forward", layout)(*stored)
    return y, rows, columns, has_nan


def max_pool_2x2_backward(dy, rows, columns, input_shape, kernel, stride, padding, workspace=None):
    """dx as the NumPy path computes it (equal values; a zero may differ in sign), or None
    where the kernel does not apply (the caches must be stored in dy's layout)."""
    layout = _applies(dy, kernel, stride, padding, input_shape[2:])
    if layout is None or rows is None or columns is None:
        return None
    if layout_of(rows) != layout or layout_of(columns) != layout:
        return None
    if tuple(input_shape[2:]) != (2 * dy.shape[2], 2 * dy.shape[3]):
        return None
    dx = result(workspace, "dx", input_shape, dy.dtype, layout, np)
    stored = [memory(array, layout) for array in (dy, rows, columns, dx)]
    _loop("_max_backward", layout)(*stored)
    return dx


def avg_pool_2x2(x, kernel, stride, padding, workspace=None):
    layout = _applies(x, kernel, stride, padding)
    if layout is None:
        return None
    n, c, h, w = x.shape
    y = result(workspace, "y", (n, c, h // 2, w // 2), x.dtype, layout, np)
    _loop("_avg_forward", layout)(memory(x, layout), memory(y, layout))
    return y


def avg_pool_2x2_backward(dy, input_shape, kernel, stride, padding, workspace=None):
    layout = _applies(dy, kernel, stride, padding, input_shape[2:])
    if layout is None or tuple(input_shape[2:]) != (2 * dy.shape[2], 2 * dy.shape[3]):
        return None
    dx = result(workspace, "dx", input_shape, dy.dtype, layout, np)
    _loop("_avg_backward", layout)(memory(dy, layout), memory(dx, layout))
    return dx


def _windows_apply(padded, cols, kernel, stride) -> bool:
    """Whether the im2col/col2im loops take these arrays (else NumPy does it)."""
    if not _state["enabled"] or type(padded) is not np.ndarray or type(cols) is not np.ndarray:
        return False
    if padded.dtype != cols.dtype or padded.dtype not in (np.float32, np.float64):
        return False
    return WINDOW_MIN_ELEMENTS <= cols.size <= WINDOW_MAX_ELEMENTS


# Per call: below, NumPy's few calls cost nothing worth compiling for; above, NumPy's strided
# additions run long enough that the per-call cost no longer matters.
WINDOW_MIN_ELEMENTS = 1 << 12
WINDOW_MAX_ELEMENTS = 1 << 24


def unfold_images(padded, kernel, stride, out) -> bool:
    """im2col into ``out`` stored (N, C, KH, KW, OH, OW), as :func:`cnnkit.functional.windows.
    unfold` writes it; False (nothing written) where the loop does not apply."""
    if not _windows_apply(padded, out, kernel, stride):
        return False
    _loop("_unfold_images")(padded, kernel[0], kernel[1], stride[0], stride[1], out)
    return True


def fold_images(cols, padded, kernel, stride) -> bool:
    """col2im of ``cols`` indexed (N, C, KH, KW, OH, OW) (any strides; rows of OW values read
    fastest when contiguous) added onto ``padded``, as :func:`cnnkit.functional.windows.fold`
    does it; False (nothing added) where the loop does not apply."""
    if not _windows_apply(padded, cols, kernel, stride):
        return False
    _loop("_fold_images")(cols, kernel[0], kernel[1], stride[0], stride[1], padded)
    return True


def fold_into(cols, dx, kernel, stride, padding) -> bool:
    """col2im straight into ``dx`` (N, C, H, W) stored channels-last. ``cols`` is a canonical
    view (N, C, KH, KW, OH, OW) of a ROWS buffer. ``dx`` is overwritten, the padding dropped,
    with exactly the values the NumPy path gives (fold into a zeroed padded array, then crop).
    False (nothing written) where the loops do not apply."""
    if not _state["enabled"] or type(dx) is not np.ndarray or type(cols) is not np.ndarray:
        return False
    if dx.dtype != cols.dtype or dx.dtype not in (np.float32, np.float64):
        return False
    if cols.size < WINDOW_MIN_ELEMENTS:
        return False
    stored = cols.transpose(0, 4, 5, 2, 3, 1)  # (N, OH, OW, KH, KW, C)
    if layout_of(dx) != NHWC or not stored.flags.c_contiguous:
        return False  # a gather over planes measured no faster than NumPy's additions
    (top, _), (left, _) = padding
    _loop("_fold_last")(stored, *kernel, *stride, top, left, memory(dx, NHWC))
    return True


def _like(workspace, name: str, x, dtype):
    """A result array indexed like ``x`` and stored in the same memory order (C order, or a
    layout of :mod:`cnnkit.functional.layout`), and that memory as a 1-D view; None for other
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
        _state["enabled"]
        and type(x) is np.ndarray
        and x.dtype in (np.float32, np.float64)
        and x.size >= MIN_ELEMENTS
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
