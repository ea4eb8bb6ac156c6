"""Stateless forward/backward pairs on arrays; the layers are thin shells around them."""

from cnnkit.functional.activation import relu_backward, relu_forward
from cnnkit.functional.conv import conv2d_backward, conv2d_forward
from cnnkit.functional.linear import linear_backward, linear_forward
from cnnkit.functional.loss import cross_entropy_backward, cross_entropy_forward
from cnnkit.functional.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from cnnkit.functional.windows import col2im, im2col

__all__ = [
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "col2im",
    "conv2d_backward",
    "conv2d_forward",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "im2col",
    "linear_backward",
    "linear_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "relu_backward",
    "relu_forward",
]
