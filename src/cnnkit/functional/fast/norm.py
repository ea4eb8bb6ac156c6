"""Batch normalisation on the fast engine: two passes forward, two backward, in compiled loops.

The reference engine (:mod:`cnnkit.functional.norm`) writes x_hat out and makes a NumPy pass
per term. Here forward reads x once for the statistics (sums of x - s and (x - s)^2 per
channel in float64, shifted by the channel's first value s so that no precision is lost to a
large mean) and once more to write y = x*scale + shift, with scale = weight/sqrt(var + eps)
and shift = bias - mean*scale per channel (as PyTorch's CPU kernel does). It keeps x itself
(usually the previous layer's output, alive anyway until then), not x_hat. Backward reads dy
and x once for sum(dy) and sum(dy*(x - mean)) per channel, and once more to write
dx = p*dy + q*x + r, the reference's formula with its per-channel factors gathered.

Inputs stored NCHW, channels-last (NHWC) or channel-major (CNHW) are read as they lie, and y
is stored like x (see :mod:`cnnkit.functional.fast.layout`). Without numba (``CNNKIT_JIT=0``),
below :data:`cnnkit.functional.fast.jit.MIN_ELEMENTS` values, or for other arrays, the
reference functions run. The loops sum in another order than NumPy does (their additions are
reassociated so that they vectorise): the numbers agree with the reference up to rounding.
"""

from __future__ import annotations

import numpy as np

from cnnkit.functional import norm as reference
from cnnkit.functional.fast import jit
from cnnkit.functional.fast.layout import CNHW, NHWC, in_layout, layout_of, memory, result

# Reassociation lets the per-channel sums vectorise; no flag assumes finite values, so a NaN
# or an infinity still comes out as it would in order.
_FASTMATH = {"reassoc", "contract"}
_LOOPS: dict[str, object] = {}


def _stats_rows(v, shift, total, squares):
    # v (A, C, B), B innermost: NCHW as (N, C, H*W), CNHW as (1, C, N*H*W), (N, C, L)
    for a in range(v.shape[0]):
        for c in range(v.shape[1]):
            s = 0.0
            q = 0.0
            base = shift[c]
            for b in range(v.shape[2]):
                d = v[a, c, b] - base
                s += d
                q += d * d
            total[c] += s
            squares[c] += q


def _stats_last(v, shift, total, squares):
    # v (R, C), channels innermost: NHWC as (N*H*W, C), (N, C)
    for r in range(v.shape[0]):
        for c in range(v.shape[1]):
            d = v[r, c] - shift[c]
            total[c] += d
            squares[c] += d * d


def _affine_rows(v, scale, shift, out):
    for a in range(v.shape[0]):
        for c in range(v.shape[1]):
            s = scale[c]
            t = shift[c]
            for b in range(v.shape[2]):
                out[a, c, b] = v[a, c, b] * s + t


def _affine_last(v, scale, shift, out):
    for r in range(v.shape[0]):
        for c in range(v.shape[1]):
            out[r, c] = v[r, c] * scale[c] + shift[c]


def _grad_sums_rows(dy, v, mean, total, dot):
    for a in range(v.shape[0]):
        for c in range(v.shape[1]):
            s = 0.0
            p = 0.0
            m = mean[c]
            for b in range(v.shape[2]):
                g = dy[a, c, b]
                s += g
                p += g * (v[a, c, b] - m)
            total[c] += s
            dot[c] += p


def _grad_sums_last(dy, v, mean, total, dot):
    for r in range(v.shape[0]):
        for c in range(v.shape[1]):
            g = dy[r, c]
            total[c] += g
            dot[c] += g * (v[r, c] - mean[c])


def _combine_rows(dy, v, p, q, r, out):
    for a in range(v.shape[0]):
        for c in range(v.shape[1]):
            pc = p[c]
            qc = q[c]
            rc = r[c]
            for b in range(v.shape[2]):
                out[a, c, b] = pc * dy[a, c, b] + qc * v[a, c, b] + rc


def _combine_last(dy, v, p, q, r, out):
    for i in range(v.shape[0]):
        for c in range(v.shape[1]):
            out[i, c] = p[c] * dy[i, c] + q[c] * v[i, c] + r[c]


def _loop(name: str):
    loop = _LOOPS.get(name)
    if loop is None:
        loop = _LOOPS[name] = jit.numba.njit(cache=True, fastmath=_FASTMATH)(globals()[name])
    return loop


def _stored(x):
    """(kind, layout) of how the loops read ``x``: "rows" (A, C, B) or "last" (R, C), and its
    layout for a 4-D ``x`` (None: plain C order); None for strides no loop reads."""
    if x.ndim == 4:
        layout = layout_of(x)
        if layout is None:
            return None
        return ("last" if layout == NHWC else "rows"), layout
    if not x.flags.c_contiguous:
        return None
    return ("last" if x.ndim == 2 else "rows"), None


def _view(a, layout):
    """``a``'s memory, stored in ``layout`` (or C order), as the loops read it."""
    if a.ndim == 4:
        n, c, h, w = a.shape
        if layout == NHWC:
            return memory(a, NHWC).reshape(n * h * w, c)
        if layout == CNHW:
            return memory(a, CNHW).reshape(1, c, n * h * w)
        return a.reshape(n, c, h * w)
    return a if a.ndim == 2 else a.reshape(a.shape[0], a.shape[1], -1)


def _applies(x) -> bool:
    return (
        jit.state["enabled"]
        and type(x) is np.ndarray
        and x.dtype in (np.float32, np.float64)
        and x.size >= jit.MIN_ELEMENTS
    )


def _like(workspace, name: str, x, layout):
    """A result indexed like ``x`` and stored like it, and the view the loops write."""
    if layout is not None:
        array = result(workspace, name, x.shape, x.dtype, layout, np)
    elif workspace is not None:
        array = workspace.result(name, x.shape, x.dtype, np)
    else:
        array = np.empty(x.shape, x.dtype)
    return array, _view(array, layout)


def _statistics(kind: str, v, channels: int, count: int):
    """The batch's mean and biased variance per channel, in float64."""
    shift = np.array(v[0, :, 0] if kind == "rows" else v[0], np.float64)
    total, squares = np.zeros(channels), np.zeros(channels)
    _loop(f"_stats_{kind}")(v, shift, total, squares)
    offset = total / count
    return shift + offset, np.maximum(squares / count - offset * offset, 0.0)


def batch_norm_forward(
    x, weight, bias, running_mean, running_var, *, training, momentum, eps, workspace=None
):
    """:func:`cnnkit.functional.norm.batch_norm_forward`, in two passes over x."""
    stored = _stored(x) if _applies(x) else None
    if stored is None and _applies(x):
        x = np.ascontiguousarray(x)
        stored = _stored(x)
    if stored is None:
        y, saved = reference.batch_norm_forward(
            x, weight, bias, running_mean, running_var,
            training=training, momentum=momentum, eps=eps,
        )  # fmt: skip
        return y, ("reference", saved)
    kind, layout = stored
    v = _view(x, layout)
    channels, dtype = x.shape[1], x.dtype
    count = x.size // channels
    if training:
        mean, var = _statistics(kind, v, channels, count)
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean.astype(dtype)
            running_var *= 1 - momentum
            running_var += momentum * (var * (count / (count - 1))).astype(dtype)
    else:
        mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
    inv_std = 1 / np.sqrt(var + eps)
    scale = inv_std if weight is None else weight * inv_std
    shift = -mean * scale if bias is None else bias - mean * scale
    y, out = _like(workspace, "y", x, layout)
    _loop(f"_affine_{kind}")(v, scale.astype(dtype), shift.astype(dtype), out)
    return y, ("fast", x, mean, inv_std, weight, training)


def batch_norm_backward(dy, saved, *, workspace=None, input_grad=True):
    """:func:`cnnkit.functional.norm.batch_norm_backward`, in two passes over dy and x."""
    if saved[0] == "reference":
        return reference.batch_norm_backward(dy, saved[1], input_grad=input_grad)
    _, x, mean, inv_std, weight, batch_statistics = saved
    kind, layout = _stored(x)
    v, g = _view(x, layout), _view(_stored_as(dy, layout), layout)
    channels, dtype = x.shape[1], x.dtype
    count = x.size // channels
    total, dot = np.zeros(channels), np.zeros(channels)
    _loop(f"_grad_sums_{kind}")(g, v, mean, total, dot)
    dbias, dweight = total, dot * inv_std  # sum(dy), sum(dy * x_hat)
    dx = None
    if input_grad:
        scale = inv_std if weight is None else weight * inv_std
        if batch_statistics:
            q = -scale * inv_std * dweight / count  # through the variance
            r = -scale * dbias / count - q * mean  # through the mean
        else:
            q = r = np.zeros(channels)
        dx, out = _like(workspace, "dx", x, layout)
        _loop(f"_combine_{kind}")(g, v, scale.astype(dtype), q.astype(dtype), r.astype(dtype), out)
    if weight is None:
        return dx, None, None
    return dx, dweight.astype(dtype), dbias.astype(dtype)


def _stored_as(dy, layout):
    """``dy`` stored as ``x`` is (a copy when it is not), so one loop reads both."""
    if layout is not None:
        return in_layout(dy, layout)
    return np.ascontiguousarray(dy)
