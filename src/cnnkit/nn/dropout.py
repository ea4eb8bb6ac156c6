"""Dropout and Dropout2d: inverted dropout, as ``torch.nn.Dropout`` and ``torch.nn.Dropout2d``.

In training mode each value (Dropout) or each whole depth slice (n, c) of an (N, C, H, W)
input (Dropout2d) is zeroed with probability p and the kept ones are scaled by 1/(1 - p), so
the expected output is the input; evaluation mode is the identity (forward returns x itself,
backward dy). Backward uses the mask its own forward drew, kept per call like every layer's
saved state, so two forwards before two backwards are each undone with their own mask.

Each layer draws from a generator of its own (``register_generator("rng", ...)``), derived
from the ``rng`` it is given without advancing that (:func:`cnnkit.nn.state.derive_generator`):
a model built from an architecture string with one seed draws the same masks every time, and
the weights of the layers after a DROPOUT are those of the same string without it. Training
checkpoints keep the generator's state, so a resumed run draws the masks an uninterrupted one
does. p must be in [0, 1): p = 0 is the identity; p = 1 would zero every value.

>>> import numpy as np
>>> layer = Dropout(0.5, rng=0)
>>> y = layer.forward(np.ones((2, 4), np.float32))
>>> sorted(set(y.ravel().tolist()))  # zeroed, or scaled by 1/(1 - 0.5)
[0.0, 2.0]
>>> layer.eval().forward(np.ones((2, 4), np.float32)).tolist()
[[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
"""

from __future__ import annotations

import math

import numpy as np

from cnnkit.backend import is_array
from cnnkit.errors import ConfigError, DTypeError, ShapeError
from cnnkit.functional.engine import current
from cnnkit.nn.checks import check_array
from cnnkit.nn.context import keep
from cnnkit.nn.layer import Layer
from cnnkit.nn.registry import register_layer
from cnnkit.nn.spec_args import Arg, ArgError, Number
from cnnkit.nn.state import derive_generator

MASK_BYTES = 1  # a bool per kept-or-not decision


class Probability(Number):
    """A dropout probability in architecture strings: a number in [0, 1)."""

    def read(self, value, raw: str, what: str) -> float:
        number = super().read(value, raw, what)
        if not 0.0 <= number < 1.0:
            why = "1 would zero every value" if number >= 1 else "a probability is at least 0"
            raise ArgError(f"{what} must be in [0, 1) ({why}), got {raw}")
        return number


def _probability(owner: str, p) -> float:
    if isinstance(p, bool) or not isinstance(p, int | float | np.integer | np.floating):
        raise ConfigError(f"{owner}: p must be a number in [0, 1), got {p!r}; use p=0.5")
    if not 0.0 <= float(p) < 1.0:
        why = (
            "p=1 would zero every one"
            if float(p) >= 1
            else "a probability is at least 0"
            if float(p) < 0
            else "nan is no probability"
        )
        raise ConfigError(
            f"{owner}: p must be in [0, 1), got p={p}: p is the probability of zeroing a "
            f"value, and {why}; use a p in [0, 1) (0.5 is usual, 0 turns it off)"
        )
    return float(p)


class _Dropout(Layer):
    """What Dropout and Dropout2d share: p, the generator, the mode switch, the summary."""

    spec_args = (Arg("p", "p", Probability(), 0.5, positional=True, meaning="drop probability"),)
    per_channel = False  # Dropout2d: one decision per depth slice (n, c)

    def torch_module(self, convert):
        """The same dropout (its masks drawn by torch's generator, not this layer's)."""
        return convert.torch_layer(self)

    @classmethod
    def from_torch_module(cls, module, convert):
        return cls(**convert.arguments(cls, module))

    def __init__(self, p: float = 0.5, rng=None) -> None:
        owner = type(self).__name__
        self.p = _probability(owner, p)
        self.register_generator("rng", derive_generator(rng, owner))

    def get_config(self) -> dict:
        return {"p": self.p}

    def onnx_nodes(self, graph, x):  # ONNX (cnnkit.interop): the identity, nothing written
        return x

    def extra_repr(self) -> str:
        return "" if self.p == 0.5 else f"p={self.p!r}"

    def _checked(self, x):
        if not is_array(x) or x.dtype.kind != "f":
            got = x.dtype if is_array(x) else type(x).__name__
            raise DTypeError(
                f"{self!r}: expected a floating-point array, got {got}; "
                "convert with np.asarray(x, dtype=np.float32)"
            )
        return x

    def forward(self, x):
        """x (N, ...) -> y of the same shape and dtype: x * mask / (1 - p) in training mode,
        x itself in evaluation mode (and for p = 0)."""
        x = self._checked(x)
        engine = current()
        call = self._local.call
        if not self.training or self.p == 0.0:
            keep(call, engine, None, self.p)
            return x
        y, mask = engine.dropout_forward(x, self.p, self.rng, channels=self.per_channel)
        keep(call, engine, mask, self.p)
        return y

    def backward(self, dy):
        """dy -> dx = dy * mask / (1 - p) with the mask of this call's forward (dy itself
        after a forward in evaluation mode)."""
        engine, mask, p = self._local.call.saved
        if mask is None:
            return dy
        return engine.dropout_backward(dy, mask, p)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def memory(self, input_shape, dtype_bytes: int, layout):
        """The output, and a bool per value (Dropout) or per depth slice (Dropout2d) kept
        for backward; the output is stored as the input is."""
        shape = self.output_shape(input_shape)
        decisions = shape[1] if self.per_channel else math.prod(shape[1:])
        return math.prod(shape[1:]) * dtype_bytes, decisions * MASK_BYTES, layout


def _volume(shape) -> str:
    """Per example, in the lecture's order: ``8x8x4`` for (4, 8, 8), ``120`` for (120,)."""
    if len(shape) == 3:
        return f"{shape[1]}x{shape[2]}x{shape[0]}"
    return "x".join(map(str, shape))


def _scale_text(p: float) -> str:
    return f"1/(1 - {p:g}) = {1 / (1 - p):.4g}"


@register_layer("DROPOUT")
class Dropout(_Dropout):
    """Zero each value with probability ``p`` in training, scale the rest by 1/(1 - p).

    Any shape (N, ...) -> the same shape. ``rng``: a numpy Generator (the layer takes a child
    of it, leaving its stream alone), an int seed, or None (unpredictable).
    """

    spec_example = "DROPOUT(0.5)"
    onnx_ops = ("Dropout",)

    @classmethod
    def from_onnx(cls, node):  # the ratio is an input from opset 12, an attribute before
        ratio = node.constant(1, optional=True)
        return node.build(cls, float(node.attr("ratio", 0.5) if ratio is None else ratio))

    torch_classes = ("Dropout",)

    def explain(self, input_shape) -> str:
        values = math.prod(input_shape[1:])
        return (
            f"DROPOUT (p={self.p:g}): in training each of the {_volume(input_shape[1:])} = "
            f"{values:,} values is zeroed with probability {self.p:g} and the rest are scaled "
            f"by {_scale_text(self.p)}, so every value's expected output is its input; a new "
            "mask every forward, and backward passes the gradient through the same mask. In "
            "evaluation the input passes unchanged. No parameters."
        )


@register_layer("DROPOUT2D")
class Dropout2d(_Dropout):
    """Zero each whole depth slice (n, c) with probability ``p`` in training, scale the rest by
    1/(1 - p) (``torch.nn.Dropout2d``): neighbouring values of a feature map are strongly
    correlated, so dropping them one by one would hardly regularise a CONV layer.

    (N, C, H, W) -> (N, C, H, W). ``rng`` as for :class:`Dropout`.
    """

    per_channel = True
    spec_example = "DROPOUT2D(0.1)"
    torch_classes = ("Dropout2d",)

    def _checked(self, x):
        check_array(self, x, 4, "(N, C, H, W)")
        return x

    def output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ShapeError(
                f"{self!r}: expected a 4-D input (N, C, H, W), got shape {tuple(input_shape)}; "
                "use Dropout (DROPOUT) after FC or FLATTEN"
            )
        return tuple(input_shape)

    def explain(self, input_shape) -> str:
        _, c, h, w = self.output_shape(input_shape)
        return (
            f"DROPOUT2D (p={self.p:g}): in training each of the {c} depth slices ({h}x{w} "
            f"values) of each example is zeroed whole with probability {self.p:g} and the rest "
            f"are scaled by {_scale_text(self.p)}, so the expected output is the input; "
            "backward uses the same mask. In evaluation the input passes unchanged. No "
            "parameters."
        )
