"""Linear: the fully connected (FC) layer at the end of the lecture's stack."""

from __future__ import annotations

import numpy as np

from cnnkit.errors import ShapeError
from cnnkit.functional.linear import linear_backward, linear_forward
from cnnkit.layers.base import (
    WeightedLayer,
    check_array,
    check_dtype_matches,
    check_shape_like,
    positive_int,
)


class Linear(WeightedLayer):
    """y = x @ weight.T + bias: input (N, in_features) -> output (N, out_features).

    ``weight`` is (out_features, in_features), ``bias`` (out_features,); PyTorch's default
    initialisation, uniform in +-1/sqrt(in_features), drawn from ``rng``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        dtype=np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.in_features = positive_int("Linear", "in_features", in_features)
        self.out_features = positive_int("Linear", "out_features", out_features)
        shape = (self.out_features, self.in_features)
        self._init_parameters("Linear", shape, self.in_features, bias, dtype, rng)
        self._cache = None

    def extra_repr(self) -> str:
        text = f"{self.in_features}, {self.out_features}"
        return text if self.bias is not None else text + ", bias=False"

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(N, in_features) -> (N, out_features)."""
        if len(input_shape) != 2:
            hint = " insert Flatten() before it" if len(input_shape) > 2 else ""
            raise ShapeError(
                f"{self!r}: expected a 2-D input (N, {self.in_features}), got shape "
                f"{tuple(input_shape)};{hint or ' add a batch axis with x[None]'}"
            )
        if input_shape[1] != self.in_features:
            raise ShapeError(
                f"{self!r}: expected {self.in_features} input features (N, {self.in_features}), "
                f"got {input_shape[1]} in shape {tuple(input_shape)}; "
                f"use Linear({input_shape[1]}, {self.out_features})"
            )
        return (input_shape[0], self.out_features)

    def forward(self, x):
        """x (N, in_features) -> y (N, out_features)."""
        check_array(self, x, 2, f"(N, {self.in_features})", "insert Flatten() before it")
        check_dtype_matches(self, x, self.dtype)
        self.output_shape(x.shape)
        bias = None if self.bias is None else self.bias.data
        y, self._cache = linear_forward(x, self.weight.data, bias)
        return y

    def backward(self, dy):
        """dy (N, out_features) -> dx (N, in_features); adds dw and db into the grads."""
        cache = self._cached(self._cache)
        check_shape_like(self, dy, (cache.x.shape[0], self.out_features))
        dx, dw, db = linear_backward(dy, cache)
        self._accumulate(dw, db)
        return dx

    def backward_parameters(self, dy) -> None:
        """Like :meth:`backward`, without computing dx."""
        cache = self._cached(self._cache)
        check_shape_like(self, dy, (cache.x.shape[0], self.out_features))
        _, dw, db = linear_backward(dy, cache, input_grad=False)
        self._accumulate(dw, db)
