"""The layer contract every cnnkit layer follows, and the argument checks they share.

``forward(x) -> y`` caches exactly what ``backward`` needs; ``backward(dy) -> dx`` accumulates
parameter gradients into ``Parameter.grad`` and returns the input gradient;
``output_shape(input_shape)`` gives the forward's shape without data, from the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cnnkit.backend import is_array
from cnnkit.errors import ConfigError, DTypeError, ShapeError, StateError
from cnnkit.init import default_bound, resolve_dtype, resolve_rng, uniform
from cnnkit.parameter import Parameter


class Layer:
    """Base class: no parameters, identity shapes, ``train()``/``eval()`` modes."""

    training: bool = True

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def backward_parameters(self, dy) -> None:
        """``backward(dy)`` for the parameter gradients only, when nothing needs dx (see
        ``Sequential.backward(dy, input_grad=False)``); layers that can skip dx override it."""
        self.backward(dy)

    def parameters(self) -> Iterator[Parameter]:
        """The trainable parameters, in a fixed order (``weight`` before ``bias``)."""
        yield from ()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for parameter in self.parameters():
            yield prefix + parameter.name, parameter

    def zero_grad(self) -> None:
        for parameter in self.parameters():
            parameter.zero_grad()

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def train(self, mode: bool = True) -> Layer:
        self.training = bool(mode)
        return self

    def eval(self) -> Layer:
        return self.train(False)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def _cached(self, cache):
        """Return the forward cache, or say clearly that forward has not run."""
        if cache is None:
            raise StateError(
                f"{self!r}: backward() was called before forward(); "
                "call forward(x) first, then backward(dy) with dy shaped like its output"
            )
        return cache


class WeightedLayer(Layer):
    """A layer with a ``weight`` and an optional ``bias``, initialised as PyTorch does."""

    weight: Parameter
    bias: Parameter | None

    def _init_parameters(self, owner, weight_shape, fan_in: int, bias: bool, dtype, rng) -> None:
        """Uniform in +-1/sqrt(fan_in) for both, drawn from ``rng`` (weight first, then bias)."""
        self.dtype = resolve_dtype(dtype, owner)
        generator = resolve_rng(rng, owner)
        bound = default_bound(fan_in)
        self.weight = Parameter(uniform(generator, bound, weight_shape, self.dtype), "weight")
        self.bias = None
        if bias:
            self.bias = Parameter(uniform(generator, bound, weight_shape[:1], self.dtype), "bias")

    def parameters(self) -> Iterator[Parameter]:
        yield self.weight
        if self.bias is not None:
            yield self.bias

    def _accumulate(self, dw, db) -> None:
        """Backward adds (never assigns) so gradients of several backward calls sum."""
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db


def check_array(owner, x, ndim: int, layout: str, extra_axes_hint: str = "") -> None:
    """An array (NumPy, or CuPy when loaded) of floating dtype with ``ndim`` axes.

    ``owner`` (here and in the other checks) is the layer itself, or a string: it is only
    formatted into a message, so a layer's repr is built only when a check fails.

    ``extra_axes_hint`` replaces the generic fix when the input has more axes than expected.
    """
    if not is_array(x):
        raise DTypeError(
            f"{owner}: expected an array {layout}, got {type(x).__name__}; "
            "convert with np.asarray(x, dtype=np.float32)"
        )
    if x.ndim != ndim:
        if x.ndim == ndim - 1:
            hint = " add a batch axis with x[None]"
        elif x.ndim > ndim and extra_axes_hint:
            hint = f" {extra_axes_hint}"
        else:
            hint = f" reshape it to {layout}"
        raise ShapeError(
            f"{owner}: expected a {ndim}-D input {layout}, got a {x.ndim}-D array of shape "
            f"{tuple(x.shape)};{hint}"
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise DTypeError(
            f"{owner}: expected a floating-point input (float32 or float64), got {x.dtype}; "
            "convert with x.astype(np.float32) (scale images to [0, 1] first)"
        )


def check_dtype_matches(owner, x, dtype: np.dtype) -> None:
    """Parameters and input share a dtype: cnnkit never converts one silently."""
    if x.dtype != dtype:
        raise DTypeError(
            f"{owner}: input is {x.dtype} but the layer's parameters are {dtype}; "
            f"convert with x.astype(np.{dtype}) or build the layer with dtype=np.{x.dtype}"
        )


def check_shape_like(owner, dy, expected: tuple[int, ...]) -> None:
    """``backward(dy)`` receives a gradient shaped like the forward's output."""
    if tuple(dy.shape) != tuple(expected):
        raise ShapeError(
            f"{owner}: backward expected dy of shape {tuple(expected)} (the forward output), "
            f"got {tuple(dy.shape)}"
        )


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def positive_int(owner: str, name: str, value, minimum: int = 1) -> int:
    if not _is_int(value):
        raise DTypeError(f"{owner}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{owner}: {name} must be >= {minimum}, got {value}")
    return int(value)


def int_pair(owner: str, name: str, value, minimum: int) -> tuple[int, int]:
    """An int or an (h, w) pair of ints, each >= ``minimum``."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ConfigError(
                f"{owner}: {name} must be an int or an (h, w) pair, got {tuple(value)!r}"
            )
        return positive_int(owner, name, value[0], minimum), positive_int(
            owner, name, value[1], minimum
        )
    single = positive_int(owner, name, value, minimum)
    return single, single


def short(pair: tuple[int, int]) -> int | tuple[int, int]:
    """``(3, 3)`` -> ``3`` for messages and reprs; unequal pairs stay pairs."""
    return pair[0] if pair[0] == pair[1] else pair


def check_rounding(owner: str, rounding: str) -> str:
    if rounding not in ("strict", "floor"):
        raise ConfigError(
            f"{owner}: rounding must be 'strict' (refuse non-whole output sizes) or 'floor' "
            f"(round down like PyTorch), got {rounding!r}"
        )
    return rounding
