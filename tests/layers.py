"""Layers the tests write as a user would: each test module subclasses them and registers the
subclass under its own keyword, so modules never share a registered class."""

import numpy as np

import cnnkit


class Scale(cnnkit.Layer):
    """A learnable factor per channel, y[n, c] = w[c] * x[n, c]."""

    def __init__(self, init=1.0):
        self.init = init

    def build(self, input_shape):
        self.weight = cnnkit.Parameter(np.full(input_shape[1], self.init, self.dtype), "weight")

    def forward(self, x):
        self.save_for_backward(x)
        return x * self.weight.data[:, None, None]

    def backward(self, dy):
        (x,) = self.saved_tensors
        self.weight.grad += (dy * x).sum(axis=(0, 2, 3))
        return dy * self.weight.data[:, None, None]
