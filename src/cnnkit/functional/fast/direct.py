"""The direct path of the fast engine's convolution: stride 1, few input channels.

Where it applies (:func:`applies`) the compiled loops of :mod:`.direct_kernels` compute the
convolution from the zero-bordered input planes, which the forward keeps for backward, instead
of im2col and matrix products: with C input channels the products have an inner dimension of
only C*KH*KW and the columns copy every pixel KH*KW times. Outputs and input gradients are
stored NCHW. Which shapes take it is a deterministic rule, from timings of both paths on the
benchmark's layers (see ``applies``); ``CNNKIT_JIT=0`` turns it off with every compiled loop.
The loops run serially or over ranges of the batch on numba's threads (one per thread),
whichever each call site of a layer times faster in place (:mod:`.tuning`); both give the same
numbers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnnkit.functional.fast import direct_kernels, jit, tuning
from cnnkit.functional.fast.layout import NCHW, Workspace, kept, result
from cnnkit.functional.fast.windows import Sides, output_hw

# Up to this many input channels, and this many filters, a 3x3 stride-1 convolution runs
# faster through the direct loops than through im2col and products (each path timed in its own
# process, medians of three: 16->16 on 32x32, batch 64, forward 8.8 against 13.3 ms, forward
# and backward 25.3 against 33.6; 8->16 13.4 against 21.9; 3->32 7.2 against 9.1). The loops
# take any filter and dilation (the tests run them so), but there the products won: LeNet's
# 5x5 conv2 (7.8 against 3.3 ms) and a dilated 16->32 (51 against 35 ms) - except for a single
# input channel, where the product's inner dimension is only KH*KW: LeNet's conv1 (1->6 5x5,
# P=2) took 1.05-1.47 ms forward and backward on the direct loops against 2.3-3.4 ms.
MAX_CHANNELS = 16
MAX_FILTERS = 32
KERNEL = (3, 3)
# Below this many multiply-adds per image (counted on the input's pixels) the layer stays on
# im2col, whose loops a network compiles anyway: the direct loops' first compilation costs
# seconds, which the demo's 8x8 digits (a 1->32 3x3 layer, 18,432) would spend for nothing.
MIN_WORK_PER_IMAGE = 1 << 15


class DirectCache(NamedTuple):
    """What :func:`conv2d_backward` needs: the padded input planes and the geometry."""

    planes: object  # (N, C, Hp*Wp), zero-bordered
    w: object  # (D, C, KH, KW), the parameter itself
    input_shape: tuple[int, int, int, int]
    padding: Sides
    dilation: tuple[int, int]
    has_bias: bool


def is_direct(cache) -> bool:
    """Whether ``cache`` came from :func:`conv2d_forward` here."""
    return type(cache) is DirectCache


def shape_applies(
    channels: int, depth: int, kernel, stride, dilation, groups: int, itemsize: int, pixels: int
) -> bool:
    """The rule on shapes alone (``cnnkit.summary`` asks it for the output layout); ``pixels``:
    the input's H*W."""
    return (
        jit.jit_enabled()
        and itemsize in (4, 8)
        and depth * channels * kernel[0] * kernel[1] * pixels >= MIN_WORK_PER_IMAGE
        and groups == 1
        and (tuple(kernel) == KERNEL or channels == 1)
        and tuple(stride) == (1, 1)
        and tuple(dilation) == (1, 1)
        and channels <= MAX_CHANNELS
        and depth <= MAX_FILTERS
    )


def applies(x, w, b, stride, dilation, groups: int) -> bool:
    """Whether the direct loops take this convolution: the shape rule, NumPy arrays of float32
    or float64 of one dtype, the compiled loops switched on."""
    arrays = (x, w) if b is None else (x, w, b)
    return (
        shape_applies(
            *x.shape[1:2],
            w.shape[0],
            w.shape[2:],
            stride,
            dilation,
            groups,
            x.itemsize,
            x.shape[2] * x.shape[3],
        )
        and all(type(a) is np.ndarray and a.dtype == x.dtype for a in arrays)
        and x.dtype in (np.float32, np.float64)
        and x.size > 0
    )


def kept_bytes(channels: int, input_hw, padding: Sides, itemsize: int) -> int:
    """Bytes per example the forward keeps: the padded input planes (N, C, Hp*Wp)."""
    (top, bottom), (left, right) = padding
    return channels * (input_hw[0] + top + bottom) * (input_hw[1] + left + right) * itemsize


def conv2d_forward(x, w, b, *, padding: Sides, dilation, workspace: Workspace | None, save: bool):
    """y (N, D, OH, OW), stored NCHW, and the cache (None when ``save`` is False)."""
    n, c, h, width = x.shape
    (top, bottom), (left, right) = padding
    hp, wp = h + top + bottom, width + left + right
    oh, ow = output_hw((hp, wp), w.shape[2:], (1, 1), dilation)
    y = result(workspace, "y", (n, w.shape[0], oh, ow), x.dtype, NCHW, np)
    # zero-bordered when allocated, so one border geometry per name
    name = f"planes {top},{left} {hp}x{wp}"
    if save:
        planes = kept(workspace, name, (n, c, hp * wp), x.dtype, np, fill=0.0)
    else:  # no planes kept: each range of images pads into its own
        planes = np.empty((0, c, hp * wp), x.dtype)
    key = ("forward", x.shape, w.shape, save)

    def run(parallel):
        direct_kernels.forward(x, w, b, padding, dilation, y, planes, parallel)

    tuning.timed(workspace, key, run, y.size * c * w.shape[2] * w.shape[3])
    if not save:
        return y, None
    return y, DirectCache(planes, w, x.shape, padding, tuple(dilation), b is not None)


def conv2d_backward(dy, cache: DirectCache, *, workspace=None, input_grad: bool = True):
    """(dx, dw, db) of :func:`conv2d_forward`; dx is None when ``input_grad`` is False, db
    when the layer has no bias."""
    planes, w, input_shape, padding, dilation, has_bias = cache
    dx = result(workspace, "dx", input_shape, dy.dtype, NCHW, np) if input_grad else None
    found = []

    def run(parallel):
        options = (padding, dilation, input_shape, dx, parallel)
        found.extend(direct_kernels.backward(planes, w, dy, *options))

    work = dy.size * w.shape[1] * w.shape[2] * w.shape[3] * (2 if input_grad else 1)
    tuning.timed(workspace, ("backward", dy.shape, w.shape, input_grad), run, work)
    dw, db = found
    return dx, dw, db if has_bias else None
