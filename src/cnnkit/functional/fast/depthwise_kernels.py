"""Compiled loops for a depthwise convolution (every filter reads one input channel).

im2col would copy every pixel KH*KW times for a product of K = KH*KW: mostly copying. These
loops instead sum, for each output row, the KH*KW shifted input rows times one tap each (a
multiply-add over a contiguous run of the row when the stride is 1), straight from the input:
no padded copy, no columns. Taps that fall into the zero padding are skipped by range
arithmetic, so nothing is read outside the input. Filter ``d`` reads input channel
``d // multiplier`` (D = multiplier * C; a plain depthwise layer has multiplier 1).

Arrays are indexed (N, C, H, W) whatever their layout; the loops read planes row by row, so
they are fastest on NCHW memory. Compiled lazily (:mod:`cnnkit.functional.fast.jit`); with the
loops switched off the grouped product (:mod:`cnnkit.functional.fast.grouped`) runs instead.
"""

from __future__ import annotations

import numpy as np

from cnnkit.functional.fast import jit

# The output columns ow whose input column ow*sw + offset lies in 0..W-1 are low..high-1:
# written out in each loop (numba inlines nothing it is not given compiled).


def _forward(x, w, b, sh, sw, dh, dw, top, left, y):
    # x (N, C, H, W), w (D, KH, KW), b (D,), y (N, D, OH, OW): y[n, d, oh] is the bias plus,
    # for every tap (i, j), w[d, i, j] times input row oh*sh + i*dh - top read from column
    # j*dw - left on, every sw-th value.
    n_images, channels, height, width = x.shape
    depth, kernel_h, kernel_w = w.shape
    multiplier = depth // channels
    out_h, out_w = y.shape[2], y.shape[3]
    for plane in range(n_images * depth):
        n, d = plane // depth, plane % depth
        source, out = x[n, d // multiplier], y[n, d]
        for oh in range(out_h):
            row = out[oh]
            for ow in range(out_w):
                row[ow] = b[d]
            for i in range(kernel_h):
                r = oh * sh + i * dh - top
                if r < 0 or r >= height:
                    continue
                line = source[r]
                for j in range(kernel_w):
                    tap = w[d, i, j]
                    offset = j * dw - left
                    low = 0 if offset >= 0 else (sw - 1 - offset) // sw
                    high = min(out_w, (width - 1 - offset) // sw + 1) if offset < width else 0
                    if sw == 1:
                        for ow in range(low, high):
                            row[ow] += tap * line[ow + offset]
                    else:
                        for ow in range(low, high):
                            row[ow] += tap * line[ow * sw + offset]


def _backward(x, w, dy, sh, sw, dh, dw, top, left, input_grad, dx, dweight, dbias):
    # Per input channel c (its filters d = c*multiplier + k write only their own dweight[d]
    # and dbias[d], and dx[:, c]): dweight[d, i, j] is the sum of dy times the input values
    # tap (i, j) read, dbias[d] the sum of dy, and dx[n, c] gets every tap times the dy rows
    # that read it (the forward's multiply-adds reversed). Sums run along rows into
    # per-column accumulators, so each inner loop is a plain multiply-add over a row.
    n_images, channels, height, width = x.shape
    depth, kernel_h, kernel_w = w.shape
    multiplier = depth // channels
    out_h, out_w = dy.shape[2], dy.shape[3]
    taps = np.zeros((kernel_h, kernel_w, out_w), dy.dtype)
    bias = np.zeros(out_w, dy.dtype)
    for c in range(channels):
        if input_grad:
            for n in range(n_images):
                dx[n, c] = 0
        for k in range(multiplier):
            d = c * multiplier + k
            taps[...] = 0
            bias[...] = 0
            for n in range(n_images):
                grads, source = dy[n, d], x[n, c]
                for oh in range(out_h):
                    g = grads[oh]
                    for ow in range(out_w):
                        bias[ow] += g[ow]
                    for i in range(kernel_h):
                        r = oh * sh + i * dh - top
                        if r < 0 or r >= height:
                            continue
                        line = source[r]
                        for j in range(kernel_w):
                            offset = j * dw - left
                            low = 0 if offset >= 0 else (sw - 1 - offset) // sw
                            high = (
                                min(out_w, (width - 1 - offset) // sw + 1) if offset < width else 0
                            )
                            acc = taps[i, j]
                            if sw == 1:
                                for ow in range(low, high):
                                    acc[ow] += g[ow] * line[ow + offset]
                            else:
                                for ow in range(low, high):
                                    acc[ow] += g[ow] * line[ow * sw + offset]
                            if not input_grad:
                                continue
                            back, tap = dx[n, c, r], w[d, i, j]
                            if sw == 1:
                                for ow in range(low, high):
                                    back[ow + offset] += tap * g[ow]
                            else:
                                for ow in range(low, high):
                                    back[ow * sw + offset] += tap * g[ow]
            for i in range(kernel_h):
                for j in range(kernel_w):
                    dweight[d, i, j] = taps[i, j].sum()
            dbias[d] = bias.sum()


_LOOPS: dict[str, object] = {}


def _loop(name: str):
    loop = _LOOPS.get(name)
    if loop is None:
        loop = _LOOPS[name] = jit.compiled(globals()[name])
    return loop


def applies(x, w, groups: int) -> bool:
    """Whether the loops take this convolution: one input channel per filter, NumPy arrays of
    float32 or float64, the compiled loops switched on."""
    return (
        jit.state["enabled"]
        and groups == x.shape[1]
        and type(x) is np.ndarray
        and type(w) is np.ndarray
        and x.dtype == w.dtype
        and x.dtype in (np.float32, np.float64)
    )


def forward(x, w, b, stride, padding, dilation, y) -> None:
    """y (N, D, OH, OW) = the depthwise convolution of x (N, C, H, W) with w (D, 1, KH, KW)."""
    (top, _), (left, _) = padding
    bias = np.zeros(w.shape[0], x.dtype) if b is None else b
    _loop("_forward")(x, w[:, 0], bias, *stride, *dilation, top, left, y)


def backward(x, w, dy, stride, padding, dilation, dx):
    """(dweight, dbias) of the depthwise convolution; dx (N, C, H, W), when not None, is
    overwritten with the input gradient."""
    (top, _), (left, _) = padding
    dweight = np.empty(w.shape, dy.dtype)
    dbias = np.empty(w.shape[0], dy.dtype)
    input_grad = dx is not None
    target = dx if input_grad else np.empty((1, 1, 1, 1), dy.dtype)  # never indexed
    _loop("_backward")(
        x, w[:, 0], dy, *stride, *dilation, top, left, input_grad, target, dweight[:, 0], dbias
    )
    return dweight, dbias
