"""Compiled 2x2 pooling loops (see :mod:`cnnkit.functional.fast.jit`).

NumPy pools with strided views (see :mod:`cnnkit.functional.fast.pool`): four passes over
strided data for a 2x2 max pool, several times slower than PyTorch's channels-last kernel on
the benchmark. These loops make one pass each, and give the NumPy path's numbers (the same
float operations in the same order, so outputs and caches are equal element for element;
where the NumPy path multiplies by a 0/1 mask a loop may select, which can turn a -0.0 into
+0.0). Anything else (other windows, NaN in a max pool's input, CuPy arrays) stays on NumPy.
"""

from __future__ import annotations

import numpy as np

from cnnkit.functional.fast import jit
from cnnkit.functional.fast.layout import NHWC, layout_of, memory, result


def _applies(x, kernel, stride, padding, input_hw=None) -> str | None:
    """The memory layout to run a 2x2 kernel on ``x`` (the input, or in backward the gradient
    of an input of ``input_hw``), or None when NumPy must do it."""
    if not jit.state["enabled"] or type(x) is not np.ndarray:
        return None
    if x.dtype != np.float32 and x.dtype != np.float64:
        return None
    if x.size < jit.MIN_ELEMENTS:
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


_LOOPS: dict[str, object] = {}


def _loop(name: str, layout: str):
    key = f"{name}_{'last' if layout == NHWC else 'wide'}"
    loop = _LOOPS.get(key)
    if loop is None:
        loop = _LOOPS[key] = jit.compiled(globals()[key])
    return loop


# --------------------------------------------------------------------------- entry points


def max_pool_2x2(x, kernel, stride, padding, workspace=None):
    """``(y, rows, columns, has_nan)``: the first three as :func:`cnnkit.functional.fast.pool.
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
