"""The reference engine: every operation's forward beside its backward, written to be read.

This is the textbook version, and the oracle the fast engine is tested against. One primitive
serves convolution and both poolings (:mod:`.primitives`): :func:`windows` shows every window
of the padded input at once (a view, through ``sliding_window_view``: nothing is copied), and
:func:`fold` is its adjoint, adding values back onto the pixels they were read from. The
convolution (:mod:`.reference_conv`: each
unit's window flattened into a row, one matrix product with the filters, plus the bias; with
dilation and groups) and padding by mode (:mod:`.padding`) live in modules of their own and
are part of this engine.

Select it with ``cnnkit.use_engine("reference")`` or ``CNNKIT_ENGINE=reference``. Shapes:
x (N, C, H, W), w (D, C, KH, KW), b (D,); padding is ((top, bottom), (left, right)).

>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> y, saved = max_pool2d_forward(x, kernel=(2, 2), stride=(2, 2), padding=((0, 0), (0, 0)))
>>> y[0, 0].tolist()  # each unit: the largest value of one 2x2 window
[[5.0, 7.0], [13.0, 15.0]]
"""

from __future__ import annotations

from cnnkit.backend import get_array_module
from cnnkit.functional.dropout import dropout_backward, dropout_forward  # noqa: F401 (re-exported)
from cnnkit.functional.norm import batch_norm_backward, batch_norm_forward  # noqa: F401
from cnnkit.functional.padding import pad2d_backward, pad2d_forward  # noqa: F401 (this engine's)
from cnnkit.functional.primitives import fold, pad, unpad, windows  # noqa: F401
from cnnkit.functional.reference_conv import conv2d_backward, conv2d_forward  # noqa: F401
from cnnkit.functional.reference_pool import (  # noqa: F401 (pooling, re-exported)
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

NAME = "reference"


def linear_forward(x, w, b):
    """y = x @ w.T + b: x (N, IN), w (OUT, IN) -> y (N, OUT); every output sees every input."""
    y = x @ w.T
    if b is not None:
        y += b
    return y, (x, w, b is not None)


def linear_backward(dy, saved, *, input_grad=True):
    x, w, has_bias = saved
    dx = dy @ w if input_grad else None
    return dx, dy.T @ x, dy.sum(axis=0) if has_bias else None


def relu_forward(x, workspace=None):
    """max(x, 0); the mask says where the gradient passes ("not x <= 0", so NaN passes it)."""
    xp = get_array_module(x)
    passes = ~(x <= 0)
    return xp.where(passes, x, xp.zeros((), x.dtype)), passes


def relu_backward(dy, passes, workspace=None):
    xp = get_array_module(dy)
    return xp.where(passes, dy, xp.zeros((), dy.dtype))


def leaky_relu_forward(x, negative_slope, workspace=None):
    """x where x > 0, negative_slope * x elsewhere (PyTorch's: the slope applies at 0 too)."""
    xp = get_array_module(x)
    passes = x > 0
    return xp.where(passes, x, x * x.dtype.type(negative_slope)), passes


def leaky_relu_backward(dy, passes, negative_slope, workspace=None):
    xp = get_array_module(dy)
    return xp.where(passes, dy, dy * dy.dtype.type(negative_slope))


def sigmoid_forward(x, workspace=None):
    """1 / (1 + e^-x), from e^-|x| so that no exponential overflows; kept for backward."""
    xp = get_array_module(x)
    small = xp.exp(-xp.abs(x))  # in (0, 1]
    one = x.dtype.type(1)
    return xp.where(x >= 0, one / (one + small), small / (one + small))


def sigmoid_backward(dy, y, workspace=None):
    """d sigmoid / dx = y (1 - y)."""
    return dy * y * (y.dtype.type(1) - y)


def tanh_forward(x, workspace=None):
    return get_array_module(x).tanh(x)


def tanh_backward(dy, y, workspace=None):
    """d tanh / dx = 1 - y^2."""
    return dy * (y.dtype.type(1) - y * y)


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's windows of an adaptive pool on one axis: output i averages input rows
    floor(i * size / out) up to ceil((i + 1) * size / out) (they overlap when out does not
    divide size: 7 -> 3 reads rows 0-2, 2-4, 4-6)."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def adaptive_avg_pool2d_forward(x, output_size, workspace=None):
    """The mean of each adaptive window (see :func:`adaptive_windows`), per depth slice."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    rows, cols = adaptive_windows(h, output_size[0]), adaptive_windows(w, output_size[1])
    y = xp.empty((n, c, len(rows), len(cols)), x.dtype)
    for i, (top, bottom) in enumerate(rows):
        for j, (left, right) in enumerate(cols):
            y[:, :, i, j] = x[:, :, top:bottom, left:right].mean(axis=(2, 3))
    return y, x.shape


def adaptive_avg_pool2d_backward(dy, input_shape, workspace=None):
    """Each output's gradient shared equally by the inputs of its window (added up where
    windows overlap)."""
    xp = get_array_module(dy)
    _, _, h, w = input_shape
    dx = xp.zeros(input_shape, dy.dtype)
    rows, cols = adaptive_windows(h, dy.shape[2]), adaptive_windows(w, dy.shape[3])
    for i, (top, bottom) in enumerate(rows):
        for j, (left, right) in enumerate(cols):
            share = dy[:, :, i, j] / dy.dtype.type((bottom - top) * (right - left))
            dx[:, :, top:bottom, left:right] += share[:, :, None, None]
    return dx
