"""Element-wise activations."""

from __future__ import annotations

from cnnkit.backend import get_array_module
from cnnkit.functional.fast import window_kernels as kernels


def relu_forward(x, workspace=None):
    """max(x, 0), any shape. Returns ``(y, mask)``; the mask is all backward needs.

    The mask is "not x <= 0" rather than "x > 0" so that, as in PyTorch, NaN passes its
    gradient through (and shows up) instead of silently stopping it. A ``workspace``
    (:class:`cnnkit.functional.fast.layout.Workspace`) lends result memory to the compiled loop.
    """
    compiled = kernels.relu(x, workspace)
    if compiled is not None:
        return compiled
    xp = get_array_module(x)
    mask = xp.less_equal(x, 0)
    xp.logical_not(mask, out=mask)
    return xp.maximum(x, xp.zeros((), dtype=x.dtype)), mask


def relu_backward(dy, mask, workspace=None):
    """Gradient passes where the input was positive (0 at x = 0, as in PyTorch).

    dy * mask is exact and several times faster than a select on random masks, but it turns an
    infinite or NaN gradient where the mask is 0 into NaN (inf * 0), where PyTorch gives 0; one
    cheap sum says whether dy is finite, and only a non-finite dy takes the select. (The
    compiled loop always selects: the same numbers, except that a stopped gradient is +0.0
    where the product may give -0.0.)
    """
    compiled = kernels.relu_backward(dy, mask, workspace)
    if compiled is not None:
        return compiled
    xp = get_array_module(dy)
    if xp.isfinite(dy.sum()):
        return xp.multiply(dy, mask)
    return xp.where(mask, dy, xp.zeros((), dtype=dy.dtype))
