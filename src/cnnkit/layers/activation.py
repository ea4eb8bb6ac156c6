"""ReLU: max(x, 0) element-wise, the lecture's RELU layer."""

from __future__ import annotations

from cnnkit.backend import is_array
from cnnkit.errors import DTypeError
from cnnkit.functional.activation import relu_backward, relu_forward
from cnnkit.functional.layout import Workspace
from cnnkit.layers.base import Layer, check_shape_like


class ReLU(Layer):
    """max(x, 0), any shape; the output shape is the input shape."""

    def __init__(self) -> None:
        self._mask = None
        self._workspace = Workspace()  # result memory reused from call to call

    def forward(self, x):
        if not is_array(x) or x.dtype.kind != "f":
            got = x.dtype if is_array(x) else type(x).__name__
            raise DTypeError(
                f"ReLU(): expected a floating-point array, got {got}; "
                "convert with np.asarray(x, dtype=np.float32)"
            )
        y, self._mask = relu_forward(x, self._workspace)
        return y

    def backward(self, dy):
        mask = self._cached(self._mask)
        check_shape_like("ReLU()", dy, mask.shape)
        return relu_backward(dy, mask, self._workspace)
