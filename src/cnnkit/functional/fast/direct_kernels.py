"""Compiled loops for a direct convolution of few channels, stride 1 (any filter, dilation).

im2col copies every input pixel KH*KW times and then runs a product whose inner dimension is
C*KH*KW; with a handful of channels (LeNet's layers, a network's first layer, ResNet's
16-channel stage) the copies and the skinny product cost more than the arithmetic. These loops
compute each output plane from the input planes directly, the way the depthwise loops
(:mod:`.depthwise_kernels`) compute one: each input plane is copied once into a zero-bordered
plane P of Hp x Wp pixels, and the output plane is computed Wp columns wide (output pixel
(oh, ow) sits at oh*Wp + ow; tap (i, j) reads P at that index plus i*dh*Wp + j*dw), so each
(filter, input channel) pair is one pass of up to nine multiply-adds per value over
(OH - 1)*Wp + OW contiguous values. Output plane d is the bias plus the sum of its C passes.

Backward lays each dy plane out Wp wide in a zero-bordered buffer, and per (filter, channel)
pair takes the taps' dot products with P (the weight gradient) and gathers the padded input
plane's gradient dP (the input gradient is dP's interior): the depthwise loops' helpers, one
pair at a time. The sums run in a different order than a matrix product's, so results agree
with the other paths up to float rounding (the tests hold them to it).
"""

from __future__ import annotations

import numpy as np

from cnnkit.functional.fast import depthwise_kernels as planes_of
from cnnkit.functional.fast import jit

prange = range  # numba's prange once the loops are compiled (importing cnnkit imports no numba)


def _forward_range(x, w, b, dh, dw, top, left, width, keep, planes, y, first, last):
    # images first..last-1. x (N, C, H, W) any layout; w (D, C, KH, KW); planes (N, C, Hp*Wp)
    # kept for backward, borders zero (``keep``), else planes of its own; y (N, D, OH, OW).
    # 3x3 undilated filters go four at a time (_nine_four): one read of the input per four.
    channels, depth, out_h, out_w = x.shape[1], w.shape[0], y.shape[2], y.shape[3]
    wide = np.empty((4, max((out_h - 1) * width + out_w, 0)), y.dtype)
    own = np.zeros((channels, 0 if keep else planes.shape[2]), y.dtype)
    fours = w.shape[2] == 3 and w.shape[3] == 3 and dh == 1 and dw == 1
    for n in range(first, last):
        image = planes[n] if keep else own
        for c in range(channels):
            planes_of._into_buffer(x[n, c], top, left, width, image[c])
        d = 0
        while d < depth:
            count = 4 if fours and depth - d >= 4 else 1
            for c in range(channels):
                if count == 4:
                    _nine_four(image[c], w[d : d + 4, c], b[d : d + 4], width, wide, c > 0)
                else:
                    planes_of._flat_plane(image[c], w[d, c], b[d], dh, dw, width, wide[0], c > 0)
            for q in range(count):
                out, source = y[n, d + q], wide[q]
                for oh in range(out_h):
                    row, part = out[oh], source[oh * width : oh * width + out_w]
                    for ow in range(out_w):
                        row[ow] = part[ow]
            d += count


def _nine_four(padded, taps, bias, width, wide, add):
    # wide[q, m] = bias[q] (or, with ``add``, wide[q, m]) + the sum over the 3x3 taps of
    # taps[q, i, j] * padded[m + i*Wp + j], for four filters q in one pass over the input.
    p0, p1, p2 = padded, padded[1:], padded[2:]
    p3, p4, p5 = padded[width:], padded[width + 1 :], padded[width + 2 :]
    p6, p7, p8 = padded[2 * width :], padded[2 * width + 1 :], padded[2 * width + 2 :]
    w0, w1, w2, w3 = wide[0], wide[1], wide[2], wide[3]
    if not add:
        b0, b1, b2, b3 = bias[0], bias[1], bias[2], bias[3]
        for m in range(w0.size):
            w0[m], w1[m], w2[m], w3[m] = b0, b1, b2, b3
    _add_four((p0, p1, p2, p3, p4, p5, p6, p7, p8), taps, (w0, w1, w2, w3))


def _add_four(sources, taps, targets):
    # targets[q][m] += the sum over the nine taps k of taps[q] at k times sources[k][m], four
    # targets q in one pass; the taps are read into values first, kept out of memory then
    s0, s1, s2, s3, s4, s5, s6, s7, s8 = sources
    a, b, c, e = _taps9(taps[0]), _taps9(taps[1]), _taps9(taps[2]), _taps9(taps[3])
    t0, t1, t2, t3 = targets
    for m in range(t0.size):
        v = (s0[m], s1[m], s2[m], s3[m], s4[m], s5[m], s6[m], s7[m], s8[m])
        t0[m] += _dot9(a, v)
        t1[m] += _dot9(b, v)
        t2[m] += _dot9(c, v)
        t3[m] += _dot9(e, v)


def _taps9(t):
    return (t[0, 0], t[0, 1], t[0, 2], t[1, 0], t[1, 1], t[1, 2], t[2, 0], t[2, 1], t[2, 2])


def _dot9(t, v):
    first = t[0] * v[0] + t[1] * v[1] + t[2] * v[2]
    second = t[3] * v[3] + t[4] * v[4] + t[5] * v[5]
    return first + second + (t[6] * v[6] + t[7] * v[7] + t[8] * v[8])


def _forward(x, w, b, dh, dw, top, left, width, keep, planes, y, parts):
    # ``parts`` ranges of images, in parallel when compiled so
    n_images = x.shape[0]
    for t in prange(parts):
        first, last = t * n_images // parts, (t + 1) * n_images // parts
        _forward_range(x, w, b, dh, dw, top, left, width, keep, planes, y, first, last)


def _backward_range(w, dy, dh, dw, top, left, width, grads, planes, dx, dweight, dbias, span):
    # images span[0]..span[1]-1 into this range's own dweight (D, C, KH, KW) and dbias (D,);
    # grads = (input_grad, zero): ``zero`` has dy's dtype, and the sums run in it.
    input_grad, zero = grads
    depth, channels = dy.shape[1], planes.shape[1]
    lead = (w.shape[2] - 1) * dh * width + (w.shape[3] - 1) * dw
    count = max((dy.shape[2] - 1) * width + dy.shape[3], 0)
    zeroed = np.zeros(count + 2 * lead, dy.dtype)  # dy laid out Wp wide, zero-bordered
    wide = zeroed[lead : lead + count]
    dpadded = np.zeros((channels, planes.shape[2] if input_grad else 0), dy.dtype)
    fours = w.shape[2] == 3 and w.shape[3] == 3 and dh == 1 and dw == 1
    dweight[...] = zero
    dbias[:] = zero
    for n in range(span[0], span[1]):
        if input_grad:
            dpadded[...] = zero
        for d in range(depth):
            planes_of._into_buffer(dy[n, d], 0, 0, width, wide)
            total = zero
            for m in range(wide.size):
                total += wide[m]
            dbias[d] += total
            by_four = fours and input_grad  # dP of four channels per pass (_gathered_four)
            for c in range(channels):
                pair = (w[d, c], dh, dw, width, planes[n, c], dpadded[c])
                gather = input_grad and not (by_four and c < channels - channels % 4)
                planes_of._tap_sums(wide, zeroed, lead, *pair, gather, dweight[d, c], zero)
            for c in range(0, channels - channels % 4 if by_four else 0, 4):
                _gathered_four(w[d, c : c + 4], zeroed, lead, width, dpadded[c : c + 4])
        if input_grad:
            _interior(dpadded, top, left, width, dx[n])


def _backward(w, dy, dh, dw, top, left, width, grads, planes, dx, dweights, dbiases):
    # one range of images per part, each into its own partial sums dweights[t], dbiases[t]
    n_images, parts = dy.shape[0], dweights.shape[0]
    for t in prange(parts):
        span = (t * n_images // parts, (t + 1) * n_images // parts)
        options = (dh, dw, top, left, width, grads, planes, dx, dweights[t], dbiases[t], span)
        _backward_range(w, dy, *options)


def _gathered_four(taps, zeroed, lead, width, dpadded):
    # dP[q, m] += the sum over the 3x3 taps of taps[q, i, j] * zeroed[lead + m - i*Wp - j] for
    # four channels q in one pass over dy's plane (the depthwise loops' _nine_gathered, by four)
    q0, q1, q2 = zeroed[lead:], zeroed[lead - 1 :], zeroed[lead - 2 :]
    base = lead - width
    q3, q4, q5 = zeroed[base:], zeroed[base - 1 :], zeroed[base - 2 :]
    base = lead - 2 * width
    q6, q7, q8 = zeroed[base:], zeroed[base - 1 :], zeroed[base - 2 :]
    targets = (dpadded[0], dpadded[1], dpadded[2], dpadded[3])
    _add_four((q0, q1, q2, q3, q4, q5, q6, q7, q8), taps, targets)


def _interior(dpadded, top, left, width, dx):
    # dx[c] (H, W) = the interior of the padded gradient plane dP[c], whose rows are Wp wide
    for c in range(dx.shape[0]):
        plane, source = dx[c], dpadded[c]
        for r in range(dx.shape[1]):
            base = (r + top) * width + left
            row = source[base : base + dx.shape[2]]
            for q in range(dx.shape[2]):
                plane[r, q] = row[q]


_FASTMATH = {"reassoc", "contract"}  # as the depthwise loops: NaN and infinity stay IEEE
_HELPERS = {"_interior": set(), "_taps9": set(), "_dot9": {"contract"}}
_HELPERS |= {"_add_four": {"contract"}, "_nine_four": {"contract"}}
_HELPERS |= {"_gathered_four": {"contract"}}
_HELPERS |= {"_forward_range": {"contract"}, "_backward_range": _FASTMATH}
_LOOPS = jit.Loops(globals(), _HELPERS, before=(planes_of.compile_helpers,))


def forward(x, w, b, padding, dilation, y, planes, parallel: bool = False) -> None:
    """y (N, D, OH, OW) = the stride-1 convolution of x (N, C, H, W) with w (D, C, KH, KW).
    ``planes``: (N, C, Hp*Wp) zero-bordered, filled with the padded input for backward, or
    empty, (0, C, Hp*Wp), when nothing is saved (then each range of images pads into its own)."""
    (top, _), (left, right) = padding
    width = x.shape[3] + left + right
    bias = np.zeros(w.shape[0], x.dtype) if b is None else b
    keep = planes.shape[0] > 0
    options = (*dilation, top, left, width, keep, planes, y, jit.parts_of(x.shape[0]))
    _LOOPS.run("_forward", options[-1], parallel, x, w, bias, *options)


def backward(planes, w, dy, padding, dilation, input_shape, dx, parallel: bool = False):
    """(dweight, dbias) from the forward's padded ``planes``; dx (N, C, H, W), when not None,
    is overwritten with the input gradient."""
    (top, _), (left, right) = padding
    width = input_shape[3] + left + right
    parts = jit.parts_of(dy.shape[0])
    dweights = np.empty((parts, *w.shape), dy.dtype)
    dbiases = np.empty((parts, w.shape[0]), dy.dtype)
    input_grad = dx is not None
    target = dx if input_grad else np.empty((1, 0, 1, 1), dy.dtype)  # never indexed then
    grads = (input_grad, dy.dtype.type(0))
    options = (*dilation, top, left, width, grads, planes, target, dweights, dbiases)
    _LOOPS.run("_backward", parts, parallel, w, dy, *options)
    if parts == 1:
        return dweights[0], dbiases[0]
    return dweights.sum(axis=0), dbiases.sum(axis=0)
