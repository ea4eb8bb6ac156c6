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
    channels, out_h, out_w = x.shape[1], y.shape[2], y.shape[3]
    wide = np.empty(max((out_h - 1) * width + out_w, 0), y.dtype)
    own = np.zeros((channels, 0 if keep else planes.shape[2]), y.dtype)
    for n in range(first, last):
        image = planes[n] if keep else own
        for c in range(channels):
            planes_of._into_buffer(x[n, c], top, left, width, image[c])
        for d in range(w.shape[0]):
            for c in range(channels):
                planes_of._flat_plane(image[c], w[d, c], b[d], dh, dw, width, wide, c > 0)
            out = y[n, d]
            for oh in range(out_h):
                row, source = out[oh], wide[oh * width : oh * width + out_w]
                for ow in range(out_w):
                    row[ow] = source[ow]


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
            for c in range(channels):
                pair = (w[d, c], dh, dw, width, planes[n, c], dpadded[c], input_grad)
                planes_of._tap_sums(wide, zeroed, lead, *pair, dweight[d, c], zero)
        if input_grad:
            _interior(dpadded, top, left, width, dx[n])


def _backward(w, dy, dh, dw, top, left, width, grads, planes, dx, dweights, dbiases):
    # one range of images per part, each into its own partial sums dweights[t], dbiases[t]
    n_images, parts = dy.shape[0], dweights.shape[0]
    for t in prange(parts):
        span = (t * n_images // parts, (t + 1) * n_images // parts)
        options = (dh, dw, top, left, width, grads, planes, dx, dweights[t], dbiases[t], span)
        _backward_range(w, dy, *options)


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
_HELPERS = {"_interior": set(), "_forward_range": {"contract"}, "_backward_range": _FASTMATH}
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
