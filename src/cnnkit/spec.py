"""Architecture strings in the lecture's notation, and the layer configurations they describe.

    INPUT(3x227x227) - CONV(D=96, F=11, S=4, P=0) - RELU - POOL(F=3, S=2) - FC(10)

Case-insensitive, spaces optional. CONV takes D (filters), F (filter size), S (stride, default
1), P (padding, default 0, or ``same``/``valid``) and ``bias=false``; POOL takes ``max`` or
``avg`` (default max), F, S (default F) and P; FC takes its output size, and ``in=`` to fix its
input size by hand (otherwise it is inferred from the volume before it). FLATTEN is implied
before the first FC. ``[CONV(D=32, F=3, P=1) - RELU - POOL(F=2)] x 3`` repeats a group. Sizes
may be pairs written HxW (``F=3x5``). ``round=floor`` on CONV or POOL rounds a non-whole output
size down, as PyTorch does.

Parsing gives an :class:`~cnnkit.architecture.Architecture` of frozen layer configurations:
plain data, no weights, so shapes and counts of VGG-sized networks are known instantly
(:func:`~cnnkit.architecture.trace`), and ``Architecture.build`` makes the model.

>>> arch = parse("INPUT(3x227x227) - CONV(D=96, F=11, S=4) - RELU - POOL(F=3, S=2) - FC(10)")
>>> arch.text()
'INPUT(3x227x227) - CONV(D=96, F=11, S=4, P=0) - RELU - POOL(max, F=3, S=2) - FC(10)'
>>> from cnnkit.architecture import trace
>>> [step.output_text() for step in trace(arch).steps]
['55x55x96', '55x55x96', '27x27x96', '69984', '10']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from cnnkit.architecture import (
    Architecture,
    ConvSpec,
    FCSpec,
    FlattenSpec,
    InputSpec,
    LayerSpec,
    PoolSpec,
    ReluSpec,
    architecture_of,
)
from cnnkit.errors import CnnkitError

MAX_REPEAT = 1000
MAX_LAYERS = 10_000
MAX_SPEC_LENGTH = 20_000


class SpecError(CnnkitError, ValueError):
    """A malformed architecture string; ``column`` is 1-based, as editors count."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"col {column}: {message}")
        self.column = column


# ---------------------------------------------------------------------------------------------
# Parsing

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<dims>\d+(?:\s*[x×]\s*\d+)+)
  | (?P<number>\d+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<arrow>->|→)
  | (?P<punct>[()\[\],=*×-])
    """,
    re.VERBOSE | re.IGNORECASE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # name, number, dims, punct, end
    text: str
    start: int  # 0-based offset
    end: int

    def shown(self) -> str:
        return "the end of the string" if self.kind == "end" else repr(self.text)


def tokenize(text: str) -> list[Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise SpecError(position + 1, f"unexpected character {text[position]!r}")
        kind = match.lastgroup
        if kind != "space":
            if kind == "arrow":
                raise SpecError(position + 1, "layers are joined with '-', found '->'")
            tokens.append(Token(kind, match.group(), match.start(), match.end()))
        position = match.end()
    tokens.append(Token("end", "", len(text), len(text)))
    return tokens


@dataclass(frozen=True)
class Arg:
    key: str | None  # lower-case key, or None for a positional value
    value: Token
    column: int


@dataclass(frozen=True)
class Call:
    name: str  # upper-case layer name
    column: int
    args: tuple[Arg, ...]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.position = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.position]

    def advance(self) -> Token:
        token = self.token
        self.position += 1
        return token

    def expected(self, what: str) -> SpecError:
        """Point just after the last good token: where the expected one should have been."""
        previous_end = self.tokens[self.position - 1].end if self.position else 0
        return SpecError(previous_end + 1, f"expected {what}, found {self.token.shown()}")

    def accept(self, text: str) -> bool:
        if self.token.kind == "punct" and self.token.text == text:
            self.position += 1
            return True
        return False

    def parse(self) -> list[Call]:
        calls = self.sequence(depth=0)
        if self.token.kind != "end":
            raise self.expected("'-' between layers")
        return calls

    def sequence(self, depth: int) -> list[Call]:
        calls = self.item(depth)
        while self.accept("-"):
            calls += self.item(depth)
            if len(calls) > MAX_LAYERS:
                raise SpecError(self.token.start + 1, f"more than {MAX_LAYERS} layers")
        return calls

    def item(self, depth: int) -> list[Call]:
        if self.accept("["):
            if depth >= 8:
                raise SpecError(self.tokens[self.position - 1].start + 1, "groups nest too deep")
            group = self.sequence(depth + 1)
            if not self.accept("]"):
                raise self.expected("'-' or ']'")
            count = self.repeat_count()
            if len(group) * count > MAX_LAYERS:
                raise SpecError(
                    self.tokens[self.position - 1].start + 1,
                    f"the repetition makes more than {MAX_LAYERS} layers",
                )
            return group * count
        if self.token.kind != "name":
            raise self.expected("a layer (INPUT, CONV, RELU, POOL, FC, FLATTEN) or '['")
        name = self.advance()
        args = self.arguments() if self.accept("(") else ()
        return [Call(name.text.upper(), name.start + 1, args)]

    def repeat_count(self) -> int:
        """``x 3``, ``x3``, ``* 3`` or ``× 3`` after a group's ``]``."""
        token = self.token
        joined = re.fullmatch(r"[xX](\d+)", token.text) if token.kind == "name" else None
        if joined:  # "]x3" lexes as one name
            self.advance()
            count, column = int(joined.group(1)), token.start + 2
        else:
            if token.kind not in ("name", "punct") or token.text.lower() not in ("x", "*", "×"):
                raise self.expected("'x N' after ']'")
            self.advance()
            if self.token.kind != "number":
                raise self.expected("a repeat count")
            number = self.advance()
            count, column = int(number.text), number.start + 1
        if not 1 <= count <= MAX_REPEAT:
            raise SpecError(column, f"repeat count must be 1..{MAX_REPEAT}, got {count}")
        return count

    def arguments(self) -> tuple[Arg, ...]:
        args = []
        while True:
            token = self.token
            if token.kind in ("name", "number", "dims"):
                self.advance()
                if token.kind == "name" and self.accept("="):
                    value = self.token
                    if value.kind not in ("name", "number", "dims"):
                        raise self.expected(f"a value for {token.text}")
                    self.advance()
                    args.append(Arg(token.text.lower(), value, token.start + 1))
                else:
                    args.append(Arg(None, token, token.start + 1))
            else:
                raise self.expected("an argument such as D=16")
            if self.accept(")"):
                return tuple(args)
            if not self.accept(","):
                raise self.expected("',' or ')'")


# ---------------------------------------------------------------------------------------------
# From calls to configurations

_KEYS = {
    "INPUT": (),
    "CONV": ("d", "f", "s", "p", "bias", "round"),
    "POOL": ("f", "s", "p", "round"),
    "FC": ("in", "out", "bias"),
    "RELU": (),
    "FLATTEN": (),
}
_ALIASES = {"MAXPOOL": ("POOL", "max"), "AVGPOOL": ("POOL", "avg"), "LINEAR": ("FC", None)}


def _positive(arg: Arg, what: str, minimum: int = 1) -> int:
    token = arg.value
    if token.kind != "number" or int(token.text) < minimum:
        bound = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
        raise SpecError(arg.column, f"{what} must be {bound}, got {token.text}")
    return int(token.text)


def _size_pair(arg: Arg, what: str, minimum: int = 1) -> tuple[int, int]:
    token = arg.value
    if token.kind == "dims":
        parts = [int(p) for p in re.split(r"\s*[x×]\s*", token.text, flags=re.IGNORECASE)]
        if len(parts) != 2 or min(parts) < minimum:
            raise SpecError(
                arg.column, f"{what} must be N or HxW with N >= {minimum}, got {token.text}"
            )
        return parts[0], parts[1]
    value = _positive(arg, what, minimum)
    return value, value


def _flag(arg: Arg, choices: tuple[str, ...]) -> str:
    value = arg.value.text.lower()
    if arg.value.kind != "name" or value not in choices:
        raise SpecError(
            arg.column, f"{arg.key} must be {' or '.join(choices)}, got {arg.value.text}"
        )
    return value


def _keyed(call: Call, positional: tuple[str, ...] = ()) -> dict[str, Arg]:
    """Map keys to arguments; positional values take the names in ``positional`` in order."""
    allowed = _KEYS[call.name]
    keyed: dict[str, Arg] = {}
    remaining = list(positional)
    for arg in call.args:
        key = arg.key
        if key is None:
            if not remaining:
                raise SpecError(
                    arg.column,
                    f"{call.name} got an unexpected value {arg.value.text}; "
                    f"name it, e.g. {allowed[0].upper() if allowed else 'nothing'}=...",
                )
            key = remaining.pop(0)
            arg = Arg(key, arg.value, arg.column)
        if key not in allowed and key not in positional:
            names = ", ".join(k.upper() if len(k) == 1 else k for k in allowed) or "no arguments"
            raise SpecError(arg.column, f"{call.name} has no argument {key!r}; it takes {names}")
        if key in keyed:
            raise SpecError(arg.column, f"{call.name} got {key.upper()} twice")
        keyed[key] = arg
    return keyed


def _conv(call: Call) -> ConvSpec:
    args = _keyed(call)
    for needed, meaning in (("d", "D (number of filters)"), ("f", "F (filter size)")):
        if needed not in args:
            raise SpecError(call.column, f"CONV needs {meaning}, e.g. CONV(D=16, F=3)")
    padding: tuple[int, int] | str = (0, 0)
    if "p" in args:
        p = args["p"]
        if p.value.kind == "name":
            padding = _flag(p, ("same", "valid"))
        else:
            padding = _size_pair(p, "P", minimum=0)
    stride = _size_pair(args["s"], "S") if "s" in args else (1, 1)
    if padding == "same" and stride != (1, 1):
        raise SpecError(args["p"].column, "P=same needs S=1; give P as a number with S > 1")
    return ConvSpec(
        depth=_positive(args["d"], "D"),
        kernel=_size_pair(args["f"], "F"),
        stride=stride,
        padding=padding,
        bias=_flag(args["bias"], ("true", "false")) == "true" if "bias" in args else True,
        rounding=_flag(args["round"], ("strict", "floor")) if "round" in args else "strict",
        column=call.column,
    )


def _pool(call: Call, kind: str | None) -> PoolSpec:
    args = _keyed(call, positional=() if kind else ("kind",))
    if "kind" in args:
        kind = _flag(Arg("kind", args["kind"].value, args["kind"].column), ("max", "avg"))
    if "f" not in args:
        raise SpecError(call.column, "POOL needs F (window size), e.g. POOL(F=2)")
    kernel = _size_pair(args["f"], "F")
    padding = _size_pair(args["p"], "P", minimum=0) if "p" in args else (0, 0)
    for k, p in zip(kernel, padding, strict=True):
        if p > k // 2:
            raise SpecError(
                args["p"].column, f"POOL padding must be at most F/2 = {k // 2}, got {p}"
            )
    return PoolSpec(
        kind=kind or "max",
        kernel=kernel,
        stride=_size_pair(args["s"], "S") if "s" in args else kernel,
        padding=padding,
        rounding=_flag(args["round"], ("strict", "floor")) if "round" in args else "strict",
        column=call.column,
    )


def _fc(call: Call) -> FCSpec:
    args = _keyed(call, positional=("out",))
    if "out" not in args:
        raise SpecError(call.column, "FC needs its output size, e.g. FC(10)")
    return FCSpec(
        out_features=_positive(args["out"], "the FC output size"),
        in_features=_positive(args["in"], "in") if "in" in args else None,
        bias=_flag(args["bias"], ("true", "false")) == "true" if "bias" in args else True,
        column=call.column,
    )


def _input(call: Call) -> InputSpec:
    if len(call.args) != 1 or call.args[0].key is not None:
        raise SpecError(call.column, "INPUT takes one size, e.g. INPUT(3x32x32) or INPUT(28x28)")
    token = call.args[0].value
    parts = [int(p) for p in re.split(r"\s*[x×]\s*", token.text, flags=re.IGNORECASE)]
    if token.kind == "number" or len(parts) not in (2, 3) or min(parts) < 1:
        raise SpecError(call.args[0].column, f"INPUT size must be CxHxW or HxW, got {token.text}")
    return InputSpec(*parts) if len(parts) == 3 else InputSpec(1, *parts)


def _layer(call: Call) -> LayerSpec:
    name, kind = _ALIASES.get(call.name, (call.name, None))
    call = replace(call, name=name)
    if name == "CONV":
        return _conv(call)
    if name == "POOL":
        return _pool(call, kind)
    if name == "FC":
        return _fc(call)
    if name in ("RELU", "FLATTEN"):
        if call.args:
            raise SpecError(call.args[0].column, f"{name} takes no arguments")
        return ReluSpec(call.column) if name == "RELU" else FlattenSpec(column=call.column)
    if name == "INPUT":
        raise SpecError(call.column, "INPUT can only come first")
    raise SpecError(
        call.column,
        f"unknown layer {call.name!r}; expected INPUT, CONV, RELU, POOL, FC or FLATTEN",
    )


def parse(text: str) -> Architecture:
    """Parse an architecture string or a built-in name (see :data:`ARCHITECTURES`)."""
    if not isinstance(text, str):
        raise SpecError(1, f"an architecture must be a string, got {type(text).__name__}")
    if len(text) > MAX_SPEC_LENGTH:
        raise SpecError(MAX_SPEC_LENGTH, f"the string is longer than {MAX_SPEC_LENGTH} characters")
    named = ARCHITECTURES.get(text.strip().lower())
    if named is not None:
        text = named
    if not text.strip():
        raise SpecError(
            1, "empty architecture; e.g. INPUT(1x28x28) - CONV(D=8, F=3) - RELU - FC(10)"
        )
    calls = _Parser(text).parse()
    arch_input = None
    if calls[0].name == "INPUT":
        arch_input = _input(calls[0])
        calls = calls[1:]
    layers: list[LayerSpec] = []
    flattened = False
    for call in calls:
        layer = _layer(call)
        if isinstance(layer, FlattenSpec):
            flattened = True
        if isinstance(layer, FCSpec) and not flattened:
            layers.append(FlattenSpec(implied=True, column=call.column))
            flattened = True
        layers.append(layer)
    return Architecture(arch_input, tuple(layers))


def from_spec(
    text: str,
    *,
    input_shape: tuple[int, int, int] | None = None,
    rng: np.random.Generator | None = None,
    dtype=np.float32,
):
    """Build the Sequential an architecture string (or built-in name) describes.

    ``input_shape`` (C, H, W) replaces or supplies the INPUT volume. FC input sizes and CONV
    input channels are inferred: nobody computes a flatten size by hand.

    >>> model = from_spec("INPUT(1x28x28) - [CONV(D=8, F=3, P=1) - RELU - POOL(F=2)] x 2 - FC(10)",
    ...                   rng=np.random.default_rng(0))
    >>> model.output_shape((5, 1, 28, 28))
    (5, 10)
    """
    return parse(text).with_input(input_shape).build(rng=rng, dtype=dtype)


def to_spec(model, input_shape: tuple[int, int, int] | None = None) -> str:
    """The architecture string that builds a model of the same layers and shapes."""
    return architecture_of(model, input_shape).text()


# ---------------------------------------------------------------------------------------------
# Built-in architectures

ARCHITECTURES: dict[str, str] = {
    # The lecture's stack for the embedded 8x8 digits (what `make demo` trains).
    "lecture": "INPUT(1x8x8) - CONV(D=32, F=3, P=1) - RELU - POOL(F=2)"
    " - CONV(D=64, F=3, P=1) - RELU - POOL(F=2) - FC(10)",
    # The same stack sized for 28x28 MNIST digits.
    "lecture-mnist": "INPUT(1x28x28) - CONV(D=32, F=3, P=1) - RELU - POOL(F=2)"
    " - CONV(D=64, F=3, P=1) - RELU - POOL(F=2) - FC(10)",
    # The lecture's worked example: 5x5x3 input, P=1, one 3x3x3 filter, S=2 -> 3x3 output.
    "worked-example": "INPUT(3x5x5) - CONV(D=1, F=3, S=2, P=1)",
    # The lecture's AlexNet conv1: 227x227x3 -> 55x55x96, 34,944 parameters.
    "alexnet-conv1": "INPUT(3x227x227) - CONV(D=96, F=11, S=4, P=0)",
    # LeCun et al. 1998, with ReLU and max pooling as in most modern re-creations: 61,706.
    "lenet5": "INPUT(1x32x32) - CONV(D=6, F=5) - RELU - POOL(max, F=2) - CONV(D=16, F=5) - RELU"
    " - POOL(max, F=2) - FC(120) - RELU - FC(84) - RELU - FC(10)",
    # The same network for 28x28 MNIST digits: P=2 on the first CONV keeps 28x28 as LeNet's
    # 32x32 input did; what benchmarks/mnist_lenet.py trains.
    "lenet5-mnist": "INPUT(1x28x28) - CONV(D=6, F=5, P=2) - RELU - POOL(max, F=2)"
    " - CONV(D=16, F=5) - RELU - POOL(max, F=2) - FC(120) - RELU - FC(84) - RELU - FC(10)",
    # Krizhevsky et al. 2012 on one GPU (the lecture's conv1), without LRN: 62,378,344.
    "alexnet": "INPUT(3x227x227) - CONV(D=96, F=11, S=4, P=0) - RELU - POOL(F=3, S=2)"
    " - CONV(D=256, F=5, P=2) - RELU - POOL(F=3, S=2) - CONV(D=384, F=3, P=1) - RELU"
    " - CONV(D=384, F=3, P=1) - RELU - CONV(D=256, F=3, P=1) - RELU - POOL(F=3, S=2)"
    " - FC(4096) - RELU - FC(4096) - RELU - FC(1000)",
    # torchvision.models.alexnet: 64 filters in conv1 on 224x224, whose (224 - 11 + 2*2)/4 + 1
    # = 55.25 only PyTorch's floor makes 55: 61,100,840.
    "alexnet-torchvision": "INPUT(3x224x224) - CONV(D=64, F=11, S=4, P=2, round=floor) - RELU"
    " - POOL(F=3, S=2) - CONV(D=192, F=5, P=2) - RELU - POOL(F=3, S=2)"
    " - CONV(D=384, F=3, P=1) - RELU - CONV(D=256, F=3, P=1) - RELU - CONV(D=256, F=3, P=1)"
    " - RELU - POOL(F=3, S=2) - FC(4096) - RELU - FC(4096) - RELU - FC(1000)",
    # Simonyan & Zisserman 2014, configuration D: 138,357,544.
    "vgg16": "INPUT(3x224x224) - [CONV(D=64, F=3, P=1) - RELU] x 2 - POOL(F=2)"
    " - [CONV(D=128, F=3, P=1) - RELU] x 2 - POOL(F=2) - [CONV(D=256, F=3, P=1) - RELU] x 3"
    " - POOL(F=2) - [CONV(D=512, F=3, P=1) - RELU] x 3 - POOL(F=2)"
    " - [CONV(D=512, F=3, P=1) - RELU] x 3 - POOL(F=2) - FC(4096) - RELU - FC(4096) - RELU"
    " - FC(1000)",
}
