"""Slow, obviously correct oracles for convolution and pooling.

Plain loops over every output unit, written straight from the definitions and sharing no code with
cnnkit (no im2col) or PyTorch: a convolution unit is the dot product of one filter with one zero-
padded input region plus that filter's bias; a pooling unit is the max (padding is -inf) or the
mean (padding is zero and counts in the divisor) of one window. Output sizes are floored, as in
PyTorch: (I - F + P_before + P_after) // S + 1.

``stride``, ``kernel`` and ``padding`` accept an int or an (h, w) pair; ``padding`` also accepts
((top, bottom), (left, right)) for the asymmetric padding of ``padding="same"`` with an even
filter. Every oracle computes in float64 and returns float64.
"""

from __future__ import annotations

import numpy as np


def _pair(value) -> tuple:
    if isinstance(value, int | np.integer):
        return (int(value), int(value))
    first, second = value
    return (first, second)


def _pad(x: np.ndarray, padding, value: float) -> np.ndarray:
    """Pad the two spatial axes of (N, C, H, W) ``x`` with ``value``."""
    pad_h, pad_w = _pair(padding)
    (top, bottom), (left, right) = _pair(pad_h), _pair(pad_w)
    widths = ((0, 0), (0, 0), (top, bottom), (left, right))
    return np.pad(np.asarray(x, dtype=np.float64), widths, constant_values=value)


def _windows(padded: np.ndarray, kernel, stride):
    """Yield (oh, ow, window) for every window position; ``window`` is (N, C, KH, KW)."""
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride)
    out_h = (padded.shape[2] - kh) // sh + 1
    out_w = (padded.shape[3] - kw) // sw + 1
    for oh in range(out_h):
        for ow in range(out_w):
            yield oh, ow, padded[:, :, oh * sh : oh * sh + kh, ow * sw : ow * sw + kw]


def _output(padded: np.ndarray, channels: int, kernel, stride) -> np.ndarray:
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride)
    out_h = (padded.shape[2] - kh) // sh + 1
    out_w = (padded.shape[3] - kw) // sw + 1
    return np.zeros((padded.shape[0], channels, out_h, out_w))


def conv2d_reference(x, w, b=None, stride=1, padding=0) -> np.ndarray:
    """y[n, d, oh, ow] = sum(w[d] * padded_x[n, :, region(oh, ow)]) + b[d].

    x (N, C, H, W), w (D, C, KH, KW), b (D,) or None -> y (N, D, OH, OW).
    """
    w = np.asarray(w, dtype=np.float64)
    depth, _, kh, kw = w.shape
    padded = _pad(x, padding, 0.0)
    y = _output(padded, depth, (kh, kw), stride)
    for oh, ow, window in _windows(padded, (kh, kw), stride):
        for n in range(padded.shape[0]):
            for d in range(depth):
                y[n, d, oh, ow] = np.sum(window[n] * w[d]) + (0.0 if b is None else float(b[d]))
    return y


def max_pool_reference(x, kernel, stride=None, padding=0) -> np.ndarray:
    """Largest value of each window; padding is -inf, so it never wins."""
    stride = kernel if stride is None else stride
    padded = _pad(x, padding, -np.inf)
    y = _output(padded, padded.shape[1], kernel, stride)
    for oh, ow, window in _windows(padded, kernel, stride):
        y[:, :, oh, ow] = window.max(axis=(2, 3))
    return y


def avg_pool_reference(x, kernel, stride=None, padding=0) -> np.ndarray:
    """Mean of each window; zero padding counts in the divisor (``count_include_pad=True``)."""
    stride = kernel if stride is None else stride
    kh, kw = _pair(kernel)
    padded = _pad(x, padding, 0.0)
    y = _output(padded, padded.shape[1], kernel, stride)
    for oh, ow, window in _windows(padded, kernel, stride):
        y[:, :, oh, ow] = window.sum(axis=(2, 3)) / (kh * kw)
    return y
