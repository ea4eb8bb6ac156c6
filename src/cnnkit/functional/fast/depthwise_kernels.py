"""Compiled loops for a depthwise convolution (every filter reads one input channel).

im2col would copy every pixel KH*KW times for a product of K = KH*KW: mostly copying. These
loops compute each filter's plane straight from its input plane. Filter ``d`` reads input
channel ``d // multiplier`` (D = multiplier * C; a plain depthwise layer has multiplier 1).

The forward copies each input plane once into a zero-bordered plane P of Hp x Wp pixels, kept
(flat, (N, C, Hp*Wp)) for backward when it is saved. With stride 1 (any dilation) the output
plane is computed Wp columns wide: output pixel (oh, ow) sits at oh*Wp + ow, and tap (i, j)
reads P at that index plus i*dh*Wp + j*dw, so every tap is ONE multiply-add over
(OH - 1)*Wp + OW contiguous values (vectorised), instead of OH short rows; the extra columns of
each row are computed and dropped, and backward gives them a zero gradient, so they add
nothing. Larger strides run row by row, every S-th value. Backward adds each tap times dy onto
a zeroed gradient plane dP, then copies its interior into dx.

Arrays are indexed (N, C, H, W) whatever their layout. Backward's sums (dweight, dbias) may be
reassociated (vectorised), so they agree with other paths up to float rounding. Compiled
lazily (:mod:`cnnkit.functional.fast.jit`); with the loops switched off the grouped product
(:mod:`cnnkit.functional.fast.grouped`) runs instead.
"""

from __future__ import annotations

import numpy as np

from cnnkit.functional.fast import jit

prange = range  # numba's prange once the loops are compiled (importing cnnkit imports no numba)


def _into_buffer(plane, top, left, width, padded):
    """Copy an (H, W) plane into the flat buffer of Wp = ``width`` columns, at (top, left)."""
    for r in range(plane.shape[0]):
        base = (r + top) * width + left
        row, target = plane[r], padded[base : base + plane.shape[1]]  # sliced: vectorised
        for q in range(plane.shape[1]):
            target[q] = row[q]


def _forward(x, w, b, sh, sw, dh, dw, top, left, width, keep, planes, y, parts):
    # ``parts`` ranges of images, in parallel when compiled so (see _forward_range)
    n_images = x.shape[0]
    for t in prange(parts):
        first, last = t * n_images // parts, (t + 1) * n_images // parts
        _forward_range(x, w, b, sh, sw, dh, dw, top, left, width, keep, planes, y, first, last)


def _forward_range(x, w, b, sh, sw, dh, dw, top, left, width, keep, planes, y, first, last):
    # images first..last-1. planes: (N, C, Hp*Wp) padded planes kept for backward (``keep``),
    # their borders zero; else one zero-bordered plane of its own.
    channels = x.shape[1]
    depth, kernel_h, kernel_w = w.shape
    multiplier = depth // channels
    out_h, out_w = y.shape[2], y.shape[3]
    wide = np.empty(max((out_h - 1) * width + out_w, 0), y.dtype)
    own = np.zeros(0 if keep else planes.shape[2], y.dtype)
    for n in range(first, last):
        for c in range(channels):
            padded = planes[n, c] if keep else own
            _into_buffer(x[n, c], top, left, width, padded)
            for d in range(c * multiplier, (c + 1) * multiplier):
                out = y[n, d]
                if sh == 1 and sw == 1:
                    _flat_plane(padded, w[d], b[d], dh, dw, width, wide, False)
                    for oh in range(out_h):
                        row, source = out[oh], wide[oh * width : oh * width + out_w]
                        for ow in range(out_w):
                            row[ow] = source[ow]
                    continue
                for oh in range(out_h):
                    row = out[oh]
                    for ow in range(out_w):
                        row[ow] = b[d]
                    for i in range(kernel_h):
                        for j in range(kernel_w):
                            tap, offset = w[d, i, j], (oh * sh + i * dh) * width + j * dw
                            source = padded[offset:]
                            for ow in range(out_w):
                                row[ow] += tap * source[ow * sw]


def _flat_plane(padded, taps, bias, dh, dw, width, wide, add):
    # wide[m] = bias + the sum over taps (i, j) of taps[i, j] * padded[m + i*dh*Wp + j*dw]
    # (``add``: wide[m] += that sum, the bias ignored): up to three taps of a kernel row per
    # pass over ``wide`` (sliced: indexed from 0). A dense convolution (direct_kernels) adds
    # every input channel's plane this way.
    count = wide.size
    if taps.shape[0] == 3 and taps.shape[1] == 3:  # the usual filter: all nine taps at once
        row, step = dh * width, dw  # each tap's values as a slice: indexed from 0, vectorised
        p0, p1, p2 = padded, padded[step:], padded[2 * step :]
        p3, p4, p5 = padded[row:], padded[row + step :], padded[row + 2 * step :]
        p6, p7, p8 = padded[2 * row :], padded[2 * row + step :], padded[2 * row + 2 * step :]
        t0, t1, t2 = taps[0, 0], taps[0, 1], taps[0, 2]
        t3, t4, t5 = taps[1, 0], taps[1, 1], taps[1, 2]
        t6, t7, t8 = taps[2, 0], taps[2, 1], taps[2, 2]
        for m in range(count):
            first = t0 * p0[m] + t1 * p1[m] + t2 * p2[m]
            second = t3 * p3[m] + t4 * p4[m] + t5 * p5[m]
            start = wide[m] if add else bias  # loop-invariant choice: the loop is unswitched
            wide[m] = start + first + second + (t6 * p6[m] + t7 * p7[m] + t8 * p8[m])
        return
    if not add:
        for m in range(count):
            wide[m] = bias
    for i in range(taps.shape[0]):
        for j in range(0, taps.shape[1], 3):
            first = i * dh * width + j * dw
            s0, t0 = padded[first : first + count], taps[i, j]
            if j + 2 < taps.shape[1]:
                s1, s2 = padded[first + dw : first + dw + count], padded[first + 2 * dw :]
                t1, t2 = taps[i, j + 1], taps[i, j + 2]
                for m in range(count):
                    wide[m] += t0 * s0[m] + t1 * s1[m] + t2 * s2[m]
            elif j + 1 < taps.shape[1]:
                s1, t1 = padded[first + dw : first + dw + count], taps[i, j + 1]
                for m in range(count):
                    wide[m] += t0 * s0[m] + t1 * s1[m]
            else:
                for m in range(count):
                    wide[m] += t0 * s0[m]


def _backward(w, dy, sh, sw, dh, dw, top, left, width, input_grad, planes, dx, sums, zero, parts):
    # ``parts`` ranges of channels, in parallel when compiled so (see _backward_range); every
    # channel's sums are made in one range, so the numbers do not depend on ``parts``.
    channels = planes.shape[1]
    for t in prange(parts):
        span = (t * channels // parts, (t + 1) * channels // parts)
        grads = (input_grad, planes, dx, sums, zero, span)
        _backward_range(w, dy, sh, sw, dh, dw, top, left, width, grads)


def _backward_range(w, dy, sh, sw, dh, dw, top, left, width, grads):
    # channels span[0]..span[1]-1. planes: the forward's padded planes; dP (the padded plane's
    # gradient) and the zero-bordered buffer dy is laid out in (see _flat_taps) are this
    # range's own. Per channel c, its filters d write only their own dweight and dbias and
    # dx[:, c]. ``zero`` has dy's dtype: the sums run in it.
    input_grad, planes, dx, (dweight, dbias), zero, span = grads
    n_images, depth = dy.shape[0], dy.shape[1]
    height, in_width = dx.shape[2], dx.shape[3]
    multiplier = depth // planes.shape[1]
    lead = (w.shape[1] - 1) * dh * width + (w.shape[2] - 1) * dw
    count = max((dy.shape[2] - 1) * width + dy.shape[3], 0)
    dpadded = np.zeros(planes.shape[2], dy.dtype)
    zeroed = np.zeros(count + 2 * lead, dy.dtype)
    for c in range(span[0], span[1]):
        for d in range(c * multiplier, (c + 1) * multiplier):
            dbias[d] = zero
            dweight[d] = zero
        for n in range(n_images):
            padded = planes[n, c]
            if input_grad:
                dpadded[:] = zero
            for d in range(c * multiplier, (c + 1) * multiplier):
                grads, taps, sums = dy[n, d], w[d], dweight[d]
                if sh == 1 and sw == 1:
                    buffers = (padded, dpadded, zeroed)
                    _flat_taps(
                        grads, taps, dh, dw, width, *buffers, input_grad, sums, dbias, d, zero
                    )
                else:
                    strides = (sh, sw, dh, dw, width)
                    _strided_taps(
                        grads, taps, *strides, padded, dpadded, input_grad, sums, dbias, d, zero
                    )
            if input_grad:
                plane = dx[n, c]
                for r in range(height):
                    base = (r + top) * width + left
                    row, source = plane[r], dpadded[base : base + in_width]
                    for q in range(in_width):
                        row[q] = source[q]


def _strided_taps(
    grads, w, sh, sw, dh, dw, width, padded, dpadded, input_grad, dweight, db, d, zero
):
    # One image's dy plane of one filter, stride > 1: row by row, every S-th value.
    for oh in range(grads.shape[0]):
        g = grads[oh]
        total = zero
        for ow in range(g.size):
            total += g[ow]
        db[d] += total
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                first = (oh * sh + i * dh) * width + j * dw
                source, target, tap = padded[first:], dpadded[first:], w[i, j]
                total = zero
                for ow in range(g.size):
                    total += g[ow] * source[ow * sw]
                dweight[i, j] += total
                if input_grad:
                    for ow in range(g.size):
                        target[ow * sw] += tap * g[ow]


def _flat_taps(grads, w, dh, dw, width, padded, dpadded, zeroed, input_grad, dweight, db, d, zero):
    # One image's dy plane of one filter, stride 1, laid out Wp wide in ``wide``: the middle of
    # ``zeroed``, whose L = (KH - 1)*dh*Wp + (KW - 1)*dw values on each side stay zero.
    lead = (w.shape[0] - 1) * dh * width + (w.shape[1] - 1) * dw
    wide = zeroed[lead : zeroed.size - lead]
    _into_buffer(grads, 0, 0, width, wide)
    total = zero
    for m in range(wide.size):
        total += wide[m]
    db[d] += total
    _tap_sums(wide, zeroed, lead, w, dh, dw, width, padded, dpadded, input_grad, dweight, zero)


def _tap_sums(wide, zeroed, lead, w, dh, dw, width, padded, dpadded, input_grad, dweight, zero):
    # dy laid out Wp wide (``wide``, the middle of ``zeroed``) against one padded input plane P:
    # per tap its dot product with P (dweight) and, gathered, its share of the padded plane's
    # gradient: dP[m] += the sum over taps of w[i, j] * wide[m - i*dh*Wp - j*dw] (zero outside).
    kernel_h, kernel_w = w.shape
    count = wide.size
    if kernel_h == 3 and kernel_w == 3:  # the usual filter: all nine taps in one pass each
        _nine_dots(wide, padded, dh * width, dw, dweight, zero)
        if input_grad:
            _nine_gathered(w, zeroed, lead, dh * width, dw, dpadded)
        return
    for i in range(kernel_h):
        for j in range(0, kernel_w, 3):
            first = i * dh * width + j * dw
            taps = min(3, kernel_w - j)
            s0, s1, s2 = padded[first:], padded[first + dw :], padded[first + 2 * dw :]
            a0 = a1 = a2 = zero
            if taps == 3:
                for m in range(count):
                    g = wide[m]
                    a0 += g * s0[m]
                    a1 += g * s1[m]
                    a2 += g * s2[m]
            elif taps == 2:
                for m in range(count):
                    a0 += wide[m] * s0[m]
                    a1 += wide[m] * s1[m]
            else:
                for m in range(count):
                    a0 += wide[m] * s0[m]
            dweight[i, j] += a0
            if taps > 1:
                dweight[i, j + 1] += a1
            if taps > 2:
                dweight[i, j + 2] += a2
        if input_grad:
            length = count + (kernel_w - 1) * dw
            _gather_row(w[i], dw, zeroed, dpadded[i * dh * width :], length, lead)


def _nine_dots(wide, padded, row, step, dweight, zero):
    # dweight[i, j] += sum(wide * P shifted by i*row + j*step): nine sums in one pass
    p0, p1, p2 = padded, padded[step:], padded[2 * step :]
    p3, p4, p5 = padded[row:], padded[row + step :], padded[row + 2 * step :]
    p6, p7, p8 = padded[2 * row :], padded[2 * row + step :], padded[2 * row + 2 * step :]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = zero
    for m in range(wide.size):
        g = wide[m]
        a0 += g * p0[m]
        a1 += g * p1[m]
        a2 += g * p2[m]
        a3 += g * p3[m]
        a4 += g * p4[m]
        a5 += g * p5[m]
        a6 += g * p6[m]
        a7 += g * p7[m]
        a8 += g * p8[m]
    dweight[0, 0] += a0
    dweight[0, 1] += a1
    dweight[0, 2] += a2
    dweight[1, 0] += a3
    dweight[1, 1] += a4
    dweight[1, 2] += a5
    dweight[2, 0] += a6
    dweight[2, 1] += a7
    dweight[2, 2] += a8


def _nine_gathered(taps, zeroed, lead, row, step, dpadded):
    # dP[m] += the sum over the nine taps of taps[i, j] * zeroed[lead + m - i*row - j*step]
    q0, q1, q2 = zeroed[lead:], zeroed[lead - step :], zeroed[lead - 2 * step :]
    q3, q4, q5 = zeroed[lead - row :], zeroed[lead - row - step :], zeroed[lead - row - 2 * step :]
    base = lead - 2 * row
    q6, q7, q8 = zeroed[base:], zeroed[base - step :], zeroed[base - 2 * step :]
    t0, t1, t2 = taps[0, 0], taps[0, 1], taps[0, 2]
    t3, t4, t5 = taps[1, 0], taps[1, 1], taps[1, 2]
    t6, t7, t8 = taps[2, 0], taps[2, 1], taps[2, 2]
    for m in range(dpadded.size):
        first = t0 * q0[m] + t1 * q1[m] + t2 * q2[m]
        second = t3 * q3[m] + t4 * q4[m] + t5 * q5[m]
        dpadded[m] += first + second + (t6 * q6[m] + t7 * q7[m] + t8 * q8[m])


def _gather_row(taps, dw, zeroed, target, length, lead):
    # target[m] += the sum over j of taps[j] * zeroed[lead - j*dw + m], m < length, three taps
    # per pass (the adjoint of one kernel row of _flat_plane, gathered: no overlapping writes).
    for j in range(0, taps.size, 3):
        first = lead - j * dw
        g0, t0 = zeroed[first:], taps[j]
        if j + 2 < taps.size:
            g1, g2, t1, t2 = (
                zeroed[first - dw :],
                zeroed[first - 2 * dw :],
                taps[j + 1],
                taps[j + 2],
            )
            for m in range(length):
                target[m] += t0 * g0[m] + t1 * g1[m] + t2 * g2[m]
        elif j + 1 < taps.size:
            g1, t1 = zeroed[first - dw :], taps[j + 1]
            for m in range(length):
                target[m] += t0 * g0[m] + t1 * g1[m]
        else:
            for m in range(length):
                target[m] += t0 * g0[m]


# Backward's sums may be reassociated so that they vectorise, and every multiply-add may be
# fused; no other fast-math liberty (NaN and infinity stay as IEEE arithmetic makes them).
_FASTMATH = {"reassoc", "contract"}
# called by the loops: compiled before them, in this order
_HELPERS = ("_into_buffer", "_strided_taps", "_flat_plane", "_gather_row", "_nine_dots")
_HELPERS += ("_nine_gathered", "_tap_sums", "_flat_taps", "_backward_range")
_LOOPS = jit.Loops(
    globals(), {**dict.fromkeys(_HELPERS, _FASTMATH), "_forward_range": {"contract"}}
)
compile_helpers = _LOOPS.compile_helpers  # the dense loops of direct_kernels call them too


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


def forward(x, w, b, stride, padding, dilation, y, planes, parallel: bool = False) -> None:
    """y (N, D, OH, OW) = the depthwise convolution of x (N, C, H, W) with w (D, 1, KH, KW).
    ``planes``: (N, C, Hp*Wp) zero-bordered, filled with the padded input for backward, or
    empty, (0, C, Hp*Wp), when nothing is saved (each range of images then pads into its own)."""
    (top, _), (left, right) = padding
    width = x.shape[3] + left + right
    bias = np.zeros(w.shape[0], x.dtype) if b is None else b
    keep = planes.shape[0] > 0
    parts = jit.parts_of(x.shape[0])
    options = (*stride, *dilation, top, left, width, keep, planes, y, parts)
    _LOOPS.run("_forward", parts, parallel, x, w[:, 0], bias, *options)


def backward(planes, w, dy, stride, padding, dilation, input_shape, dx, parallel=False):
    """(dweight, dbias) of the depthwise convolution from the forward's padded ``planes``;
    dx (N, C, H, W), when not None, is overwritten with the input gradient."""
    (top, _), (left, right) = padding
    width = input_shape[3] + left + right
    dweight = np.empty(w.shape, dy.dtype)
    dbias = np.empty(w.shape[0], dy.dtype)
    input_grad = dx is not None
    target = dx if input_grad else np.empty((1, 0, 1, 1), dy.dtype)  # never indexed then
    parts = jit.parts_of(planes.shape[1])
    grads = (input_grad, planes, target, (dweight[:, 0], dbias), dy.dtype.type(0), parts)
    options = (*stride, *dilation, top, left, width, *grads)
    _LOOPS.run("_backward", parts, parallel, w[:, 0], dy, *options)
    return dweight, dbias
