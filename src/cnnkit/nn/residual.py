"""Residual: a block whose output is its body's output plus its input (He et al., 2016).

    y = body(x) + x                    (identity shortcut)
    y = body(x) + shortcut(x)          (a projection, e.g. a 1x1 CONV of stride 2, then BN)

The sum needs both branches to give one shape; a block whose shapes differ is refused naming
both. Backward sends the same gradient down both branches (the derivative of a sum is 1 for
each term) and adds what comes back at x: the identity branch passes dy through untouched,
which is why deep residual networks still train. The children are ``body`` and ``shortcut``,
so ``state_dict()`` keys are PyTorch's for the same structure (``"2.body.0.weight"``). In
architecture strings: ``RES[CONV(D=16, F=3, P=1) - BN - RELU - CONV(D=16, F=3, P=1) - BN]``
and ``RES[body | shortcut]``.

>>> import numpy as np
>>> from cnnkit.nn.activation import ReLU
>>> block = Residual(ReLU())
>>> block.forward(np.array([[-1.0, 2.0]])).tolist()
[[-1.0, 4.0]]
"""

from __future__ import annotations

import math

from cnnkit.errors import CnnkitError, ConfigError, ShapeError
from cnnkit.nn import probe
from cnnkit.nn.layer import Layer
from cnnkit.nn.registry import register_layer
from cnnkit.nn.spec_args import Arg, Branch
from cnnkit.shapes import Field


def _volume(shape) -> str:
    """(N, C, H, W) -> ``HxWxC`` (the lecture's order); other shapes as they are."""
    if len(shape) == 4:
        return f"{shape[2]}x{shape[3]}x{shape[1]}"
    return "x".join(map(str, shape[1:]))


@register_layer("RES")
class Residual(Layer):
    """``body(x) + x``, or ``body(x) + shortcut(x)``; ``body`` and ``shortcut`` are layers
    (usually Sequentials)."""

    spec_args = (
        Arg("body", None, Branch(), positional=True, meaning="a body of layers in [...]"),
        Arg("shortcut", None, Branch(), None, positional=True),
    )
    spec_example = "RES[CONV(D=16, F=3, P=1) - BN - RELU - CONV(D=16, F=3, P=1) - BN]"
    torch_classes = ("cnnkit.interop.torch_modules.Residual",)

    def torch_module(self, convert):
        body = convert(self.body)
        shortcut = None if self.shortcut is None else convert(self.shortcut)
        return convert.torch_class(self)(body, shortcut)

    @classmethod
    def torch_matches(cls, module) -> bool:
        """A module with children ``body`` and ``shortcut`` (or ``shortcut = None``) and no
        parameters of its own is read as a residual block."""
        names = {name for name, _ in module.named_children()}
        own = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        empty = names == {"body"} and getattr(module, "shortcut", False) is None
        return not own and (names == {"body", "shortcut"} or empty)

    @classmethod
    def from_torch_module(cls, module, convert):
        body = convert.branch(module.body)
        return cls(body, None if module.shortcut is None else convert.branch(module.shortcut))

    def __init__(self, body: Layer, shortcut: Layer | None = None) -> None:
        for name, value in (("body", body), ("shortcut", shortcut)):
            if value is not None and not isinstance(value, Layer):
                raise ConfigError(
                    f"Residual: {name} is {type(value).__name__}, not a cnnkit layer; pass a "
                    "layer or a Sequential(...) of layers"
                )
        if body is None:
            raise ConfigError("Residual: body is required, e.g. Residual(Sequential(...))")
        self.body = body
        self.shortcut = shortcut
        self.built = all(layer.built for layer in self.branches())

    def branches(self) -> list[Layer]:
        """The body, then the shortcut when there is one."""
        return [self.body] if self.shortcut is None else [self.body, self.shortcut]

    def named_branches(self) -> list[tuple[str, Layer | None]]:
        """("body", body), ("shortcut", shortcut or None: the identity)."""
        return [("body", self.body), ("shortcut", self.shortcut)]

    def get_config(self) -> dict:
        return {"body": self.body, "shortcut": self.shortcut}

    def onnx_nodes(self, graph, x):  # ONNX (cnnkit.interop): both branches, then an Add
        y = graph.emit(self.body, x, "body")
        side = x if self.shortcut is None else graph.emit(self.shortcut, x, "shortcut")
        return graph.add_node("Add", [y, side])

    def extra_repr(self) -> str:
        return ""

    def build(self, input_shape) -> None:
        for name, branch in self.named_branches():
            if branch is None:
                continue
            try:
                probe.build_once(branch, input_shape, self.dtype)
            except CnnkitError as error:
                raise error.located(name) from None
        self.output_shape(input_shape)

    # -- shapes ----------------------------------------------------------------------------------
    def _branch_shape(self, name: str, branch, input_shape):
        if branch is None:
            return tuple(input_shape)
        try:
            return tuple(branch.output_shape(input_shape))
        except CnnkitError as error:
            raise error.located(name) from None

    def output_shape(self, input_shape):
        """The body's output shape, which must equal the shortcut's (the input's)."""
        body = self._branch_shape("body", self.body, input_shape)
        short = self._branch_shape("shortcut", self.shortcut, input_shape)
        if body != short:
            raise ShapeError(_mismatch(self, input_shape, body, short))
        return body

    # -- forward and backward ------------------------------------------------------------------
    def forward(self, x):
        """y = body(x) + shortcut(x) (the shortcut is x itself when there is none)."""
        try:
            y = self.body.forward(x)
        except CnnkitError as error:
            raise error.located("body") from None
        try:
            side = x if self.shortcut is None else self.shortcut.forward(x)
        except CnnkitError as error:
            raise error.located("shortcut") from None
        if getattr(y, "shape", None) != getattr(side, "shape", None):
            raise ShapeError(_mismatch(self, x.shape, y.shape, side.shape))
        return y + side

    def backward(self, dy):
        """dx = body's dx + shortcut's dx: each branch receives dy unchanged."""
        wanted = self.needs_input_grad
        try:
            dx = self.body.backward(dy, input_grad=wanted)
        except CnnkitError as error:
            raise error.located("body") from None
        if self.shortcut is None:
            side = dy
        else:
            try:
                side = self.shortcut.backward(dy, input_grad=wanted)
            except CnnkitError as error:
                raise error.located("shortcut") from None
        if not wanted:
            return None
        return dx + side

    # -- what the summary and the explanations ask --------------------------------------------
    def _each(self, input_shape):
        for branch in self.branches():
            yield branch, tuple(input_shape)

    def macs(self, input_shape) -> int:
        """Both branches' multiply-adds (the sum's additions are not multiply-adds)."""
        return sum(int(branch.macs(shape)) for branch, shape in self._each(input_shape))

    def unshared_parameters(self, input_shape) -> int:
        total = 0
        for branch, shape in self._each(input_shape):
            ask = getattr(branch, "unshared_parameters", None)
            total += ask(shape) if ask is not None else sum(p.size for p in branch.parameters())
        return total

    def memory(self, input_shape, dtype_bytes: int, layout):
        """Both branches' outputs and what they keep, plus the sum's output."""
        out = math.prod(self.output_shape(input_shape)[1:]) * dtype_bytes
        kept = 0
        for branch, shape in self._each(input_shape):
            branch_out, branch_kept, _ = branch.memory(shape, dtype_bytes, layout)
            out += branch_out
            kept = None if kept is None or branch_kept is None else kept + branch_kept
        return out, kept, None

    def field_after(self, field: Field) -> Field | None:
        """What one output unit sees: the union of its body's field and its shortcut's."""
        fields = [field if b is None else b.field_after(field) for _, b in self.named_branches()]
        if any(f is None for f in fields):
            return None
        # unit 0's field runs from -offset to size - offset, in input pixels
        before = tuple(max(f.offset[axis] for f in fields) for axis in (0, 1))
        end = tuple(max(f.size[axis] - f.offset[axis] for f in fields) for axis in (0, 1))
        size = tuple(e + b for e, b in zip(end, before, strict=True))
        return Field(size, fields[0].jump, before)

    def explain(self, input_shape) -> str:
        shape = self.output_shape(input_shape)
        side = "the input x itself" if self.shortcut is None else "its shortcut branch"
        return (
            f"RES: the sum of its body's output and {side}, both {_volume(shape)}: "
            "y = body(x) + shortcut(x). Backward sends the same gradient down both branches "
            "(the derivative of a sum is 1 for each term) and adds what they return at x, so "
            f"the gradient reaches earlier layers even through a deep body. "
            f"{sum(p.size for p in self.parameters()):,} parameters, all in its branches."
        )


def _mismatch(layer, input_shape, body, short) -> str:
    """Why the two branches cannot be added, and a shortcut that would fit."""
    head = (
        f"{type(layer).__name__}: its body gives {_volume(body)} but its "
        f"{'input (the identity shortcut)' if layer.shortcut is None else 'shortcut'} gives "
        f"{_volume(short)}; the two are added, so they must have one shape"
    )
    if len(body) == 4 and len(input_shape) == 4 and body[2] and input_shape[2] % body[2] == 0:
        stride = input_shape[2] // body[2]
        return head + (
            f"; give it a projection shortcut such as RES[... | CONV(D={body[1]}, F=1, "
            f"S={stride}) - BN], or change the body to keep {_volume(short)}"
        )
    return head + f"; change the body or the shortcut so both give {_volume(body)}"
