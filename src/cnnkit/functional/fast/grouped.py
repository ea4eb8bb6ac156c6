"""Grouped convolution (``groups`` > 1) on the fast engine: depthwise loops, or one batched
product over the groups.

With G groups the C input channels and the D filters split into G groups, and the filters of
group k read only the C/G channels of group k: w is (D, C/G, KH, KW). Two ways to compute it:

* one input channel per filter (C/G = 1: a depthwise convolution, D = C, or a multiple of C):
  the compiled loops of :mod:`cnnkit.functional.fast.depthwise_kernels` compute each plane
  from its padded input plane (im2col would copy every pixel KH*KW times for products of only
  KH*KW taps), and keep the padded planes for backward.
* otherwise: im2col into columns laid out (C, KH, KW, N, OH, OW), whose rows of one group
  are contiguous, viewed as G matrices (C/G*KH*KW, N*OH*OW), and one batched product
  (G, D/G, K) @ (G, K, N*OH*OW) that writes the output channel-major (D, N, OH, OW) with no
  transpose. Backward rebuilds the columns from the padded input it keeps and runs the two
  batched products and a col2im.

Both give the reference engine's numbers up to float rounding.
"""

from __future__ import annotations

from typing import NamedTuple

from cnnkit.backend import get_array_module
from cnnkit.functional.fast import depthwise_kernels, jit, tuning
from cnnkit.functional.fast.layout import CNHW, NCHW, Workspace, kept, memory, result, scratch
from cnnkit.functional.fast.plan import CHUNK_BYTES
from cnnkit.functional.fast.windows import COLUMNS, Sides, fold, output_hw, padded, unfold

DEPTHWISE, PRODUCT = "depthwise", "product"


class GroupedCache(NamedTuple):
    """What :func:`conv2d_backward` needs for a grouped convolution."""

    saved: object  # the padded input: depthwise (N, C, Hp*Wp) planes, product (N, C, Hp, Wp)
    w: object  # (D, C/G, KH, KW), the parameter itself
    input_shape: tuple[int, int, int, int]
    stride: tuple[int, int]
    padding: Sides
    dilation: tuple[int, int]
    groups: int
    has_bias: bool
    path: str  # DEPTHWISE or PRODUCT


def is_grouped(cache) -> bool:
    """Whether ``cache`` came from :func:`conv2d_forward` here (else from the plain engine)."""
    return type(cache) is GroupedCache


def path_of(x, w, groups: int) -> str:
    """DEPTHWISE where the compiled loops take the convolution, else PRODUCT."""
    return DEPTHWISE if depthwise_kernels.applies(x, w, groups) else PRODUCT


def output_layout(channels: int, groups: int, input_layout: str) -> str:
    """The layout a grouped convolution's output is stored in (``cnnkit.summary`` asks)."""
    if groups == channels and jit.jit_enabled():
        return NCHW
    return CNHW


def kept_bytes(channels: int, input_hw, padding: Sides, itemsize: int) -> int:
    """Bytes per example the forward keeps, on either path: the padded input (N, C, Hp, Wp)
    (depthwise: its planes; product: what the columns are rebuilt from)."""
    (top, bottom), (left, right) = padding
    return channels * (input_hw[0] + top + bottom) * (input_hw[1] + left + right) * itemsize


def _chunks(n: int, per_image: int):
    chunk = max(1, min(n, CHUNK_BYTES // max(per_image, 1)))
    for start in range(0, n, chunk):
        yield start, min(n, start + chunk)


def conv2d_forward(
    x,
    w,
    b,
    *,
    stride,
    padding: Sides,
    dilation,
    groups: int,
    workspace: Workspace | None = None,
    save: bool = True,
):
    """y (N, D, OH, OW) and the cache, as :func:`cnnkit.functional.fast.conv.conv2d_forward`
    with ``groups`` > 1."""
    xp = get_array_module(x)
    n, c, h, width = x.shape
    d, _, kh, kw = w.shape
    path = path_of(x, w, groups)
    spatial = (h + sum(padding[0]), width + sum(padding[1]))
    oh, ow = output_hw(spatial, (kh, kw), stride, dilation)
    if path == DEPTHWISE:
        y = result(workspace, "y", (n, d, oh, ow), x.dtype, NCHW, xp)
        size = spatial[0] * spatial[1]  # the padded planes, zero-bordered when allocated
        if save:
            planes = kept(workspace, "planes", (n, c, size), x.dtype, xp, fill=0.0)
        else:  # nothing kept: each range of images pads into a plane of its own
            planes = xp.empty((0, c, size), x.dtype)
        key = ("depthwise forward", x.shape, w.shape, save)

        def run(parallel):
            depthwise_kernels.forward(x, w, b, stride, padding, dilation, y, planes, parallel)

        tuning.timed(workspace, key, run, y.size * kh * kw)
        if not save:
            return y, None
        has_bias = b is not None
        return y, GroupedCache(
            planes, w, x.shape, stride, padding, dilation, groups, has_bias, path
        )
    source = padded(x, padding, layout=NCHW, workspace=workspace, name="x", keep=save)
    y = result(workspace, "y", (n, d, oh, ow), x.dtype, CNHW, xp)
    stored = memory(y, CNHW)  # (D, N, OH, OW)
    filters = w.reshape(groups, d // groups, -1)  # (G, D/G, K)
    k = filters.shape[2]
    for start, stop in _chunks(n, c * kh * kw * oh * ow * x.dtype.itemsize):
        cols = _columns(workspace, source[start:stop], (kh, kw), stride, dilation)
        # (G, D/G, n*OH*OW): a view (the images of a chunk are contiguous in each channel)
        out = stored[:, start:stop].reshape(groups, d // groups, -1)
        xp.matmul(filters, cols.reshape(groups, k, -1), out=out)
    if b is not None:
        stored += b[:, None, None, None]
    if not save:
        return y, None
    return y, GroupedCache(
        source, w, x.shape, stride, padding, dilation, groups, b is not None, path
    )


def _columns(workspace, source, kernel, stride, dilation):
    """im2col of ``source`` (n, C, Hp, Wp) in COLUMNS order: (C*KH*KW, n*OH*OW), whose rows of
    one group are contiguous."""
    xp = get_array_module(source)
    n, c = source.shape[:2]
    oh, ow = output_hw(source.shape[2:], kernel, stride, dilation)
    shape = (c * kernel[0] * kernel[1], n * oh * ow)
    cols = scratch(workspace, "columns", shape, source.dtype, xp)
    return unfold(source, kernel, stride, cols, COLUMNS, dilation)


def conv2d_backward(dy, cache: GroupedCache, *, workspace=None, input_grad: bool = True):
    """(dx, dw, db) of :func:`conv2d_forward`; dx is None when ``input_grad`` is False."""
    saved, w, input_shape, stride, padding, dilation, groups, has_bias, path = cache
    xp = get_array_module(dy)
    if path == DEPTHWISE:
        dx = result(workspace, "dx", input_shape, dy.dtype, NCHW, xp) if input_grad else None
        found = []

        def run(parallel):
            options = (stride, padding, dilation, input_shape, dx, parallel)
            found.extend(depthwise_kernels.backward(saved, w, dy, *options))

        key, work = (
            ("depthwise backward", dy.shape, w.shape, input_grad),
            2 * dy.size * w.shape[2] * w.shape[3],
        )
        tuning.timed(workspace, key, run, work)
        dw, db = found
        return dx, dw, db if has_bias else None
    n, c, h, width = input_shape
    d, _, kh, kw = w.shape
    grads = memory(dy, CNHW)  # (D, N, OH, OW), the forward's layout
    if not grads.flags.c_contiguous:
        grads = xp.ascontiguousarray(grads)
    db = grads.reshape(d, -1).sum(axis=1) if has_bias else None
    filters = w.reshape(groups, d // groups, -1)  # (G, D/G, K)
    k = filters.shape[2]
    dweights = xp.zeros(filters.shape, dy.dtype)
    dx = result(workspace, "dx", input_shape, dy.dtype, NCHW, xp) if input_grad else None
    (top, _), (left, _) = padding
    per_image = c * kh * kw * dy.shape[2] * dy.shape[3] * dy.dtype.itemsize
    for start, stop in _chunks(n, per_image):
        cols = _columns(workspace, saved[start:stop], (kh, kw), stride, dilation)
        cols = cols.reshape(groups, k, -1)  # (G, K, n*OH*OW)
        chunk_grads = grads[:, start:stop].reshape(groups, d // groups, -1)  # (G, D/G, M)
        dweights += xp.matmul(chunk_grads, cols.transpose(0, 2, 1))
        if not input_grad:
            continue
        dcols = xp.matmul(filters.transpose(0, 2, 1), chunk_grads)  # (G, K, M)
        target = scratch(workspace, "dpadded", saved[start:stop].shape, dy.dtype, xp)
        target[...] = 0
        fold(dcols, target, (kh, kw), stride, COLUMNS, dilation)
        dx[start:stop] = target[:, :, top : top + h, left : left + width]
    return dx, dweights.reshape(w.shape), db
