"""The fast engine (the default): the reference engine's contract, tuned for speed.

Convolution plans its memory layouts and chunks per shape (:mod:`.plan`, :mod:`.conv`), pooling
runs separable strided reductions (:mod:`.pool`), and compiled loops (:mod:`.jit`, numba, part
of the default install) take 2x2 pooling, ReLU and the small layers' im2col/col2im. Every
function gives the reference engine's numbers up to float rounding; the tests compare them on
random shapes, strides, paddings and dtypes, and both against PyTorch.
"""

from cnnkit.functional.dropout import dropout_backward, dropout_forward  # one mask, both engines
from cnnkit.functional.fast.activation import relu_backward, relu_forward
from cnnkit.functional.fast.conv import conv2d_backward, conv2d_forward
from cnnkit.functional.fast.linear import linear_backward, linear_forward
from cnnkit.functional.fast.norm import batch_norm_backward, batch_norm_forward
from cnnkit.functional.fast.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from cnnkit.functional.padding import pad2d_backward, pad2d_forward  # as the reference
from cnnkit.functional.reference import (  # one NumPy pass each already: nothing to tune
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)

NAME = "fast"

__all__ = [
    "NAME",
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool2d_forward",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "batch_norm_backward",
    "batch_norm_forward",
    "conv2d_backward",
    "conv2d_forward",
    "dropout_backward",
    "dropout_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "linear_backward",
    "linear_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "pad2d_backward",
    "pad2d_forward",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "tanh_backward",
    "tanh_forward",
]
