"""2-D convolution (cross-correlation, as in PyTorch): forward beside backward.

Each output unit is the lecture's computational unit: the dot product of one filter with one
input region, plus that filter's bias. All units of a depth slice share the filter (parameter
sharing), so backward sums every unit's weight gradient over the slice and over the batch.

The work is im2col and one matrix product per chunk of images, as the plan of
:mod:`cnnkit.functional.fast.plan` says. What backward needs (the columns, or the padded input
to rebuild them from) comes from memory that nothing else may reuse while it is saved, so a
layer may run its forward several times before the matching backwards.
"""

from __future__ import annotations

from typing import NamedTuple

from cnnkit.backend import get_array_module
from cnnkit.functional.fast import direct, grouped, halves
from cnnkit.functional.fast.layout import (
    MEMORY_ORDER,
    NHWC,
    Workspace,
    kept,
    layout_of,
    memory,
    nchw,
    result,
    scratch,
)
from cnnkit.functional.fast.plan import IMAGES, ConvPlan, bias_in_product, plan_conv
from cnnkit.functional.fast.windows import (
    COLUMNS,
    ONE,
    ROWS,
    Sides,
    fold,
    fold_into,
    no_padding,
    output_hw,
    padded,
    unfold,
)


class ConvCache(NamedTuple):
    """What :func:`conv2d_backward` needs, and nothing more."""

    saved: object  # the im2col columns (plan.keep_columns), else the padded input (N, C, Hp, Wp)
    # stored in the plan's source layout (the input itself when that needed no copy)
    w: object  # (D, C, KH, KW), the parameter itself
    input_shape: tuple[int, int, int, int]
    stride: tuple[int, int]
    padding: Sides
    has_bias: bool
    plan: ConvPlan
    dilation: tuple[int, int] = ONE


def _filters(w, order):
    """The filters as a (D, K) matrix whose K axis follows the im2col buffer's tap order."""
    d = w.shape[0]
    if order == ROWS:
        xp = get_array_module(w)
        return xp.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(d, -1)  # (D, KH*KW*C)
    return w.reshape(d, -1)  # (D, C*KH*KW)


def _unfilter(dweights, w_shape, order):
    """Inverse of :func:`_filters`: (D, K) -> (D, C, KH, KW)."""
    d, c, kh, kw = w_shape
    if order == ROWS:
        xp = get_array_module(dweights)
        return xp.ascontiguousarray(dweights.reshape(d, kh, kw, c).transpose(0, 3, 1, 2))
    return dweights.reshape(w_shape)


def _as_matrix(cols, order, images: int, units: int):
    """The im2col buffer as an (N*OH*OW, K) matrix (a view), or None for IMAGES."""
    if order == ROWS:
        return cols.reshape(images * units, -1)
    if order == COLUMNS:
        return cols.reshape(-1, images * units).T
    return None


def _as_batches(cols, order, images: int, units: int):
    """The im2col buffer as N matrices (K, OH*OW), one per image (a view)."""
    if order == ROWS:
        return cols.reshape(images, units, -1).transpose(0, 2, 1)
    if order == COLUMNS:
        return cols.reshape(-1, images, units).transpose(1, 0, 2)
    return cols.reshape(images, -1, units)


def _chunk(plan: ConvPlan, n: int) -> int:
    """Images per chunk; kept COLUMNS are one (K, N*OH*OW) matrix, so one chunk."""
    return n if plan.keep_columns and plan.order == COLUMNS else plan.chunk


def _chunks(n: int, chunk: int):
    for start in range(0, n, max(chunk, 1)):  # an empty batch has a chunk of 0
        yield start, min(n, start + chunk)


def _column_buffer(workspace, name, plan, rows: int, k: int, dtype, xp, keep: bool = False):
    lend = kept if keep else scratch
    if plan.order == COLUMNS:
        return lend(workspace, name, (k, rows), dtype, xp)
    return lend(workspace, name, (rows, k), dtype, xp)


def _columns(workspace, name, plan, rows: int, k: int, dtype, xp, ones_row: bool, keep=False):
    """A column buffer for ``rows`` units and ``k`` taps, and the part of it im2col fills; with
    ``ones_row`` a (K + 1, rows) buffer whose last row holds ones (written when allocated,
    never overwritten). ``keep``: the buffer is saved for backward (see the module docs)."""
    if not ones_row:
        cols = _column_buffer(workspace, name, plan, rows, k, dtype, xp, keep)
        return cols, cols
    # Its own name, so no buffer without the ones row is ever handed out in its place.
    lend = kept if keep else scratch
    buffer = lend(workspace, f"{name}+ones", (k + 1, rows), dtype, xp, fill=1.0)
    return buffer, buffer[:k]


def conv2d_forward(
    x,
    w,
    b,
    *,
    stride: tuple[int, int],
    padding: Sides,
    dilation: tuple[int, int] = ONE,
    groups: int = 1,
    workspace: Workspace | None = None,
    plan: ConvPlan | None = None,
    save: bool = True,
):
    """y[n, d] = sum over regions of w[d] * x[n] + b[d].

    x (N, C, H, W), w (D, C/groups, KH, KW), b (D,) or None -> y (N, D, OH, OW), OH = (H + top
    + bottom - d(KH - 1) - 1)//SH + 1, OW likewise (taps ``dilation`` d apart; ``groups`` > 1:
    :mod:`.grouped`). Returns ``(y, cache)``; ``y`` is fresh, stored NCHW or channels-last
    (:mod:`.layout`). A ``workspace`` lends scratch arrays. ``save=False`` (no backward) lets
    the cache's arrays be scratch. ``plan`` overrides :func:`plan_conv` (tests run every plan).
    """
    stride, dilation = tuple(stride), tuple(dilation)
    if groups != 1 or (plan is None and direct.applies(x, w, b, stride, dilation, groups)):
        return _other_path(x, w, b, stride, padding, dilation, groups, workspace, save)
    xp = get_array_module(x)
    n, c = x.shape[:2]
    d, _, kh, kw = w.shape
    plan = plan or _plan(x, w.shape, stride, padding, dilation)
    keep_source = save and not plan.keep_columns
    source = padded(
        x, padding, layout=plan.source_layout, workspace=workspace, name="x", keep=keep_source
    )
    oh, ow = output_hw(source.shape[2:], (kh, kw), stride, dilation)
    units, k = oh * ow, c * kh * kw
    weights = _filters(w, plan.order)
    has_bias = b is not None
    ones_row = bias_in_product(plan, has_bias)
    if ones_row:
        weights, b = xp.concatenate([weights, b[:, None]], axis=1), None  # (D, K + 1)
    y = result(workspace, "y", (n, d, oh, ow), x.dtype, plan.out_layout, xp)
    stored = memory(y, plan.out_layout)  # (N, OH, OW, D) or (N, D, OH, OW)
    columns = all_taps = None
    if plan.keep_columns:
        columns, all_taps = _columns(
            workspace, "columns", plan, n * units, k, x.dtype, xp, ones_row, keep=save
        )
    geometry = ((kh, kw), stride, dilation, units, k)
    job = (source, weights, b, stored, plan, columns, all_taps, workspace, ones_row, geometry)
    whole = plan.keep_columns and plan.order == COLUMNS  # one product over the whole batch
    with halves.hold(not whole):  # that one keeps BLAS's own threads
        parts = [(0, n)] if whole else halves.split(n, n * units * k)
        halves.run(parts, lambda first, last, slot: _forward_chunks(job, first, last, slot))
    if not save:
        return y, None
    saved = columns if plan.keep_columns else source
    return y, ConvCache(saved, w, x.shape, stride, padding, has_bias, plan, dilation)


def _forward_chunks(job, first: int, last: int, slot: int) -> None:
    """Images first..last-1 of a forward, chunk by chunk, into ``slot``'s scratch."""
    source, weights, b, stored, plan, columns, all_taps, workspace, ones_row, geometry = job
    kernel, stride, dilation, units, k = geometry
    xp = get_array_module(source)
    for start, stop in _chunks(last - first, _chunk(plan, last - first)):
        start, stop = first + start, first + stop
        if plan.keep_columns and plan.order == COLUMNS:
            cols, taps = columns, all_taps
        elif plan.keep_columns:
            cols = taps = columns[start * units : stop * units]
        else:
            rows, name = (stop - start) * units, halves.slot_name("chunk", slot)
            cols, taps = _columns(workspace, name, plan, rows, k, source.dtype, xp, ones_row)
        unfold(source[start:stop], kernel, stride, taps, plan.order, dilation)
        _forward_product(cols, weights, b, stored[start:stop], plan, stop - start, units)


def _other_path(x, w, b, stride, padding, dilation, groups, workspace, save):
    """A grouped convolution (:mod:`.grouped`), or a small stride-1 one (:mod:`.direct`)."""
    if groups != 1:
        options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        return grouped.conv2d_forward(x, w, b, **options, workspace=workspace, save=save)
    options = dict(padding=padding, dilation=dilation, workspace=workspace, save=save)
    return direct.conv2d_forward(x, w, b, **options)


def _plan(x, w_shape, stride, padding, dilation) -> ConvPlan:
    sides = (tuple(padding[0]), tuple(padding[1]))
    return plan_conv(x.shape, layout_of(x), w_shape, stride, sides, x.dtype.itemsize, dilation)


def _forward_product(cols, weights, b, stored, plan, images, units):
    """One chunk's units: (M, K) @ (K, D) into channels-last rows, or per image (D, K) @
    (K, OH*OW) into NCHW planes."""
    xp = get_array_module(cols)
    d = weights.shape[0]
    if plan.out_layout == NHWC:
        out = stored.reshape(-1, d)  # (N*OH*OW, D)
        matrix = _as_matrix(cols, plan.order, images, units)
        if matrix is not None:
            xp.matmul(matrix, weights.T, out=out)
        else:
            batches = _as_batches(cols, plan.order, images, units).transpose(0, 2, 1)
            xp.matmul(batches, weights.T, out=out.reshape(images, units, d))
        if b is not None:
            out += b
        return
    out = stored.reshape(images, d, units)  # (N, D, OH*OW)
    xp.matmul(weights, _as_batches(cols, plan.order, images, units), out=out)
    if b is not None:
        out += b[:, None]


def conv2d_backward(dy, cache: ConvCache, *, workspace=None, input_grad: bool = True):
    """Gradients of :func:`conv2d_forward`: ``(dx, dw, db)``; ``db`` is None without a bias.

    dy (N, D, OH, OW) -> dx (N, C, H, W), dw (D, C, KH, KW), db (D,). ``dw`` is the sum over
    every unit of the depth slice and every image of that unit's gradient, in one product per
    chunk. With ``input_grad=False`` dx is not computed and None is returned in its place.
    """
    if grouped.is_grouped(cache):
        return grouped.conv2d_backward(dy, cache, workspace=workspace, input_grad=input_grad)
    if direct.is_direct(cache):
        return direct.conv2d_backward(dy, cache, workspace=workspace, input_grad=input_grad)
    saved, w, input_shape, _, _, has_bias, plan, _ = cache
    xp = get_array_module(dy)
    n, c = input_shape[:2]
    units, k = dy.shape[2] * dy.shape[3], c * w.shape[2] * w.shape[3]
    grads = memory(dy, plan.out_layout)
    if not grads.flags.c_contiguous:
        grads = xp.ascontiguousarray(grads)  # (N, OH, OW, D) or (N, D, OH, OW)
    ones_row = bias_in_product(plan, has_bias)
    back = plan.input_gradient_plan()
    dx = None
    if input_grad:
        dx = result(workspace, "dx", input_shape, dy.dtype, back.source_layout, xp)
    job = (saved, grads, _filters(w, back.order), dx, plan, workspace, ones_row, cache, (units, k))
    whole = plan.keep_columns and plan.order == COLUMNS  # one product over the whole batch
    with halves.hold(not whole):
        db = None
        if has_bias and not ones_row:
            db = _bias_gradient(grads, plan.out_layout, workspace)
        parts = [(0, n)] if whole else halves.split(n, n * units * k)
        sums = halves.run(parts, lambda first, last, slot: _backward_chunks(job, first, last, slot))
    dweights = sums[0] if len(sums) == 1 else sums[0] + sums[1]  # (D, K [+ db])
    if ones_row:
        dweights, db = dweights[:, :k], xp.ascontiguousarray(dweights[:, k])
    return dx, _unfilter(dweights, w.shape, plan.order), db


def _backward_chunks(job, first: int, last: int, slot: int):
    """Images first..last-1 of a backward, chunk by chunk, into ``slot``'s scratch: their
    dx, and their sum of the weight gradient (D, K [+ 1])."""
    saved, grads, weights, dx, plan, workspace, ones_row, cache, (units, k) = job
    _, w, (_, c, h, width), stride, padding, _, _, dilation = cache
    xp = get_array_module(grads)
    kernel, back = w.shape[2:], plan.input_gradient_plan()
    (top, _), (left, _) = padding
    dweights = xp.zeros((w.shape[0], k + 1 if ones_row else k), dtype=grads.dtype)
    for start, stop in _chunks(last - first, _chunk(plan, last - first)):
        start, stop = first + start, first + stop
        images = stop - start
        if plan.keep_columns:
            cols = saved if plan.order == COLUMNS else saved[start * units : stop * units]
        else:
            name = halves.slot_name("chunk", slot)
            cols, taps = _columns(
                workspace, name, plan, images * units, k, grads.dtype, xp, ones_row
            )
            unfold(saved[start:stop], kernel, stride, taps, plan.order, dilation)
        chunk_grads = grads[start:stop]
        dweights += _weight_product(chunk_grads, cols, plan, images, units)
        if dx is None:
            continue
        name = halves.slot_name("dcolumns", slot)
        dcols = _column_buffer(workspace, name, back, images * units, k, grads.dtype, xp)
        _input_product(chunk_grads, weights, dcols, back, images, units)
        if fold_into(dcols, dx[start:stop], kernel, stride, padding, back.order, dilation):
            continue
        if no_padding(padding):
            target = dx[start:stop]
            target[...] = 0
            fold(dcols, target, kernel, stride, back.order, dilation)
        else:
            shape = (images, c, h + sum(padding[0]), width + sum(padding[1]))
            target = padded_zeros(workspace, shape, grads.dtype, back.source_layout, xp, slot)
            fold(dcols, target, kernel, stride, back.order, dilation)
            dx[start:stop] = target[:, :, top : top + h, left : left + width]
    return dweights


def _bias_gradient(grads, out_layout, workspace):
    """Sum of dy over every unit of each depth slice: (D,). A product with a vector of ones
    runs several times faster than NumPy's reductions over these axes."""
    xp = get_array_module(grads)
    if out_layout != NHWC:  # (N*D, OH*OW) @ ones, then the N partial sums
        n, d = grads.shape[:2]
        planes = grads.reshape(n * d, grads.shape[2] * grads.shape[3])
        ones = scratch(workspace, "ones", (planes.shape[1],), grads.dtype, xp, fill=1.0)
        return xp.matmul(planes, ones).reshape(n, d).sum(axis=0)
    rows = grads.reshape(-1, grads.shape[-1])  # (N*OH*OW, D)
    ones = scratch(workspace, "ones", (rows.shape[0],), grads.dtype, xp, fill=1.0)
    return xp.matmul(ones, rows)


def padded_zeros(workspace, shape, dtype, layout, xp, slot: int = 0):
    """A zeroed scratch array indexed (N, C, Hp, Wp), stored in ``layout``."""
    name, stored_shape = halves.slot_name("dpadded", slot), [shape[a] for a in MEMORY_ORDER[layout]]
    stored = scratch(workspace, name, stored_shape, dtype, xp)
    stored[...] = 0
    return nchw(stored, layout)


def _weight_product(grads, cols, plan, images, units):
    """Sum over the chunk's units of dy (D) times the unit's columns (K): (D, K)."""
    xp = get_array_module(grads)
    if plan.out_layout == NHWC:
        d = grads.shape[-1]
        if plan.order == COLUMNS:  # (K, M) @ (M, D): OpenBLAS runs this form faster
            return xp.matmul(cols.reshape(-1, images * units), grads.reshape(-1, d)).T
        matrix = _as_matrix(cols, plan.order, images, units)
        if matrix is not None:  # (K, M) @ (M, D), transposed back: 10-15 % faster than
            return xp.matmul(matrix.T, grads.reshape(-1, d)).T  # (D, M) @ (M, K) here
        per_image = grads.reshape(images, units, d).transpose(0, 2, 1)  # (N, D, OH*OW)
    else:
        per_image = grads.reshape(images, grads.shape[1], units)  # (N, D, OH*OW)
    batches = _as_batches(cols, plan.order, images, units)  # (N, K, OH*OW)
    return xp.matmul(per_image, batches.transpose(0, 2, 1)).sum(axis=0)


def _input_product(grads, weights, dcols, plan, images, units):
    """Gradient of the columns, dy times the filters, written into ``dcols`` in the buffer's
    order."""
    xp = get_array_module(grads)
    d = weights.shape[0]
    if plan.out_layout == NHWC:
        rows = grads.reshape(-1, d)  # (M, D)
        if plan.order == ROWS:
            xp.matmul(rows, weights, out=dcols.reshape(images * units, -1))  # (M, K)
            return
        if plan.order == COLUMNS:
            xp.matmul(weights.T, rows.T, out=dcols.reshape(-1, images * units))  # (K, M)
            return
        per_image = rows.reshape(images, units, d).transpose(0, 2, 1)  # (N, D, OH*OW)
    else:
        per_image = grads.reshape(images, d, units)  # (N, D, OH*OW)
    if plan.order == ROWS:
        out = dcols.reshape(images, units, -1)  # (N, OH*OW, K)
        xp.matmul(per_image.transpose(0, 2, 1), weights, out=out)
    elif plan.order == IMAGES:
        xp.matmul(weights.T, per_image, out=dcols.reshape(images, -1, units))  # (N, K, OH*OW)
    else:
        batches = _as_batches(dcols, plan.order, images, units)  # (N, K, OH*OW), strided
        batches[...] = xp.matmul(weights.T, per_image)
