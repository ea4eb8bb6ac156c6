"""Batch normalisation, forward beside backward, as the textbook writes it (reference engine).

Every channel c is normalised with statistics taken over every axis but C (N, and H, W or L):
x_hat = (x - mean[c]) / sqrt(var[c] + eps), then the affine map y = weight[c] * x_hat + bias[c].
In training the statistics are the batch's, with the BIASED variance (divided by M, the values
per channel); the running statistics are then moved towards the batch's, the variance as the
UNBIASED estimate (divided by M - 1), as PyTorch does:
running = (1 - momentum) * running + momentum * batch. In evaluation the running statistics
are used and nothing moves.

Shapes: x (N, C), (N, C, L) or (N, C, H, W); weight, bias, running_mean, running_var (C,).

>>> import numpy as np
>>> x = np.array([[1.0], [3.0]])  # two examples, one channel: mean 2, biased variance 1
>>> mean, var = np.zeros(1), np.ones(1)
>>> y, _ = batch_norm_forward(x, None, None, mean, var, training=True, momentum=0.5, eps=0.0)
>>> y.ravel().tolist(), mean.tolist(), var.tolist()  # unbiased variance 2: (1 + 2) / 2
([-1.0, 1.0], [1.0], [1.5])
"""

from __future__ import annotations

from cnnkit.backend import get_array_module


def channel_axes(ndim: int) -> tuple[int, ...]:
    """The axes the statistics are taken over: every axis but C (axis 1)."""
    return (0, *range(2, ndim))


def per_channel(values, ndim: int):
    """A (C,) array shaped to broadcast against an ``ndim``-D input: (1, C, 1, ...)."""
    return values.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm_forward(
    x, weight, bias, running_mean, running_var, *, training, momentum, eps, workspace=None
):
    """y = weight * (x - mean) / sqrt(var + eps) + bias, per channel. Returns (y, saved).

    ``training=True``: the batch's mean and biased variance; ``running_mean`` and
    ``running_var`` (when not None) are updated in place with ``momentum`` (the factor of the
    batch's statistics: the layer passes 1/num_batches_tracked for a cumulative average).
    ``training=False``: the running statistics. ``weight``/``bias`` None: no affine map.
    """
    xp = get_array_module(x)
    axes, ndim = channel_axes(x.ndim), x.ndim
    if training:
        mean = x.mean(axis=axes)  # (C,)
        var = ((x - per_channel(mean, ndim)) ** 2).mean(axis=axes)  # biased: divided by M
        if running_mean is not None:
            count = x.size // x.shape[1]  # M, the values per channel
            unbiased = var * var.dtype.type(count / (count - 1))
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * unbiased
    else:
        mean, var = running_mean, running_var
    inv_std = 1 / xp.sqrt(var + x.dtype.type(eps))  # (C,)
    x_hat = (x - per_channel(mean, ndim)) * per_channel(inv_std, ndim)
    y = x_hat if weight is None else x_hat * per_channel(weight, ndim) + per_channel(bias, ndim)
    return y.astype(x.dtype, copy=False), (x_hat, inv_std, weight, training)


def batch_norm_backward(dy, saved, *, workspace=None, input_grad=True):
    """(dx, dweight, dbias) for dy shaped like y; dweight and dbias are None without an affine
    map, dx is None when ``input_grad`` is False.

    With the batch's statistics, dx carries the gradient through the mean and the variance
    too (M values per channel, g = dy * weight):
    dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)).
    With the running statistics (evaluation) they are constants: dx = g * inv_std.
    """
    x_hat, inv_std, weight, batch_statistics = saved
    axes, ndim = channel_axes(dy.ndim), dy.ndim
    dbias = dy.sum(axis=axes)  # (C,)
    dweight = (dy * x_hat).sum(axis=axes)  # (C,)
    dx = None
    if input_grad:
        scale = inv_std if weight is None else weight * inv_std
        if batch_statistics:
            count = dy.size // dy.shape[1]
            mean_dy, mean_dy_xhat = dbias / count, dweight / count
            centred = dy - per_channel(mean_dy, ndim) - x_hat * per_channel(mean_dy_xhat, ndim)
            dx = centred * per_channel(scale, ndim)
        else:
            dx = dy * per_channel(scale, ndim)
        dx = dx.astype(dy.dtype, copy=False)
    if weight is None:
        return dx, None, None
    return dx, dweight, dbias
