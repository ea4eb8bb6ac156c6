"""How a layer's arguments are written in architecture strings, and read back.

A registered layer lists its arguments as :class:`Arg` entries (``Conv2d.spec_args``): the
constructor's keyword, the key strings use (the lecture's letters for the built-in layers:
``D``, ``F``, ``S``, ``P``), the kind of value, the default, and for arguments the shapes give
away (a CONV's input channels) how to infer them. A layer that lists none gets one ``Arg`` per
argument of its ``__init__``, written as the argument's own name and taking any literal
(a number, ``true``/``false``, ``none``, a name, quoted text, ``HxW``, or a tuple
``(a, b, ...)``, ``(5,)``), written back so that it reads back exactly.

Values arrive as Python literals from the parser, with the text the user wrote (for messages);
each kind checks and normalises one (``F=3`` becomes ``(3, 3)``) and writes it back for the
canonical string. Arguments derived from ``__init__`` are always written with their key
(``SCALE(init=0.5)``).
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cnnkit.nn.config import SKIPPED

MAX_SIZE = 1 << 20  # sizes in strings: anything larger is a typo, not a network
REQUIRED = inspect.Parameter.empty


class ArgError(ValueError):
    """A value that does not fit its argument; the message fragment is shown after ``col N:``."""


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def number_text(value) -> str:
    """``0.5``, ``3``, ``1e-05``: the shortest text that reads back as the same number."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class Quoted(str):
    """Text written in quotes (``mode="soft clip"``): always a string, never a name."""


WORDS = {"true": True, "false": False, "none": None, "nan": math.nan, "inf": math.inf}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def literal_text(value) -> str:
    """The text that reads back as exactly ``value``: ``none``, ``true``, ``3``, ``2.0``,
    ``nan``, ``same``, ``"soft clip"``, ``3x5``, ``(5,)``, ``(0.1, -2)``. Raises ArgError for
    what strings cannot hold (an array, a dict, a string with both kinds of quotes)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool):
        return "none" if value is None else ("true" if value else "false")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)  # nan, inf, -inf
    if isinstance(value, str):
        return _string_text(value)
    if isinstance(value, tuple | list):
        if len(value) >= 2 and all(_is_whole(v) and v >= 0 for v in value):
            return "x".join(str(v) for v in value)
        if len(value) == 1:
            return f"({literal_text(value[0])},)"
        return "(" + ", ".join(literal_text(v) for v in value) + ")"
    raise ArgError(
        f"a {type(value).__name__} cannot be written in an architecture string (they hold "
        "numbers, true/false, none, text and tuples of them)"
    )


def _string_text(value: str) -> str:
    if _NAME.fullmatch(value) and value.lower() not in WORDS:
        return value
    for quote in ('"', "'"):
        if quote not in value:
            return f"{quote}{value}{quote}"
    raise ArgError(f"the text {value!r} holds both kinds of quotes, so no string can write it")


def same_value(a, b) -> bool:
    """Whether ``b`` (read back from text) is the value ``a`` (a layer's setting): equal and of
    the same type; NumPy scalars count as Python numbers, NaN as NaN, a list as a tuple."""
    a = a.item() if isinstance(a, np.generic) else a
    b = b.item() if isinstance(b, np.generic) else b
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False


def read_literal(value):
    """A parsed value as the Python value it stands for: names ``true``, ``false``, ``none``,
    ``nan`` and ``inf`` as such (case-insensitive), quoted text as a plain string, tuples item
    by item."""
    if isinstance(value, Quoted):
        return str(value)
    if isinstance(value, str):
        return WORDS.get(value.lower(), value)
    if isinstance(value, tuple):
        return tuple(read_literal(item) for item in value)
    return value


class Kind:
    """A kind of value: ``read`` checks and normalises, ``text`` writes back."""

    def read(self, value, raw: str, what: str):
        return value

    def text(self, value) -> str:
        return literal_text(value)


class Whole(Kind):
    def __init__(self, minimum: int = 1) -> None:
        self.minimum = minimum

    def read(self, value, raw: str, what: str) -> int:
        if not _is_whole(value) or value < self.minimum:
            bound = (
                "a positive whole number"
                if self.minimum == 1
                else (f"a whole number >= {self.minimum}")
            )
            raise ArgError(f"{what} must be {bound}, got {raw}")
        if value > MAX_SIZE:
            raise ArgError(f"{what} must be at most {MAX_SIZE:,}, got {raw}")
        return value


class Size(Kind):
    """N or HxW -> (h, w)."""

    def __init__(self, minimum: int = 1) -> None:
        self.minimum = minimum

    def read(self, value, raw: str, what: str) -> tuple[int, int]:
        if isinstance(value, tuple):
            if len(value) != 2 or not all(_is_whole(v) and v >= self.minimum for v in value):
                raise ArgError(f"{what} must be N or HxW with N >= {self.minimum}, got {raw}")
            if max(value) > MAX_SIZE:
                raise ArgError(f"{what} must be at most {MAX_SIZE:,}, got {raw}")
            return (value[0], value[1])
        single = Whole(self.minimum).read(value, raw, what)
        return (single, single)

    def text(self, value) -> str:
        if isinstance(value, str):
            return value
        h, w = value
        return str(h) if h == w else f"{h}x{w}"


class Choice(Kind):
    def __init__(self, *names: str) -> None:
        self.names = names

    def read(self, value, raw: str, what: str) -> str:
        if isinstance(value, str) and value.lower() in self.names:
            return value.lower()
        raise ArgError(f"{what} must be {' or '.join(self.names)}, got {raw}")

    def text(self, value) -> str:
        return str(value)


class Padding(Kind):
    """P, HxW, ``same`` or ``valid``."""

    def read(self, value, raw: str, what: str):
        if isinstance(value, str):
            return Choice("same", "valid").read(value, raw, what)
        return Size(0).read(value, raw, what)

    def text(self, value) -> str:
        return Size().text(value)


class Flag(Kind):
    def read(self, value, raw: str, what: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ArgError(f"{what} must be true or false, got {raw}")


class Number(Kind):
    def read(self, value, raw: str, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ArgError(f"{what} must be a number, got {raw}")
        if not math.isfinite(value):
            raise ArgError(f"{what} must be a finite number, got {raw}")
        return float(value)


class Numbers(Kind):
    """A number or a tuple of numbers (one per channel) -> a tuple of floats."""

    def read(self, value, raw: str, what: str) -> tuple[float, ...]:
        values = value if isinstance(value, tuple) else (value,)
        if not values:
            raise ArgError(f"{what} must be a number or (a, b, ...), got {raw}")
        return tuple(Number().read(v, raw, what) for v in values)

    def text(self, value) -> str:
        if len(value) == 1:
            return number_text(value[0])
        return "(" + ", ".join(number_text(v) for v in value) + ")"


class Literal(Kind):
    """Whatever was written: numbers, true/false, none, names, quoted text, HxW, tuples;
    written back exactly (``2.0`` stays a float, ``(5,)`` a tuple, ``"3"`` a string)."""

    def read(self, value, raw: str, what: str):
        return read_literal(value)


LITERAL = Literal()


class Branch(Kind):
    """A branch of layers, written in square brackets after the keyword:
    ``RES[CONV(D=8, F=3, P=1) - RELU | CONV(D=8, F=1)]`` (branches apart by ``|``). In a
    layer's config it is a layer (a Sequential); in an architecture, the layers' entries in
    order (objects with ``text()``, see :mod:`cnnkit.arch.specs`); None: no branch."""

    branch = True

    def read(self, value, raw: str, what: str):
        if value is None or (isinstance(value, tuple) and all(hasattr(v, "text") for v in value)):
            return value
        raise ArgError(f"{what} is a branch of layers, written in [...], got {raw}")

    def text(self, value) -> str:
        if value is None:
            return "none"
        return " - ".join(item.text() for item in value if not getattr(item, "implied", False))


@dataclass(frozen=True)
class Arg:
    """One argument of a layer in architecture strings (see the module docstring)."""

    name: str  # the constructor's keyword
    key: str | None  # as strings write it (case-insensitive); None: never written
    kind: Kind = LITERAL
    default: object = REQUIRED
    positional: bool = False  # given and written without its key (FC(10), POOL(max, ...))
    always: bool = False  # written in the canonical text even at its default
    infer: Callable | None = None  # input_shape (N, C, H, W) -> value, when not given
    meaning: str = ""  # for messages: "number of filters"
    label: str | None = None  # how messages name it, when not by its key
    default_from: str | None = None  # the default is this other argument's value (POOL's S)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and self.infer is None and self.default_from is None

    @property
    def what(self) -> str:
        return self.label or self.key or self.name


def arguments_of(cls) -> tuple[Arg, ...]:
    """A layer class's ``spec_args``, or one literal Arg per ``__init__`` argument (also when
    a subclass brings its own ``__init__`` and no ``spec_args`` of its own)."""
    for klass in cls.__mro__:
        declared = klass.__dict__.get("spec_args")
        if declared is not None:
            return tuple(declared)
        if "__init__" in klass.__dict__:
            break
    signature = inspect.signature(cls.__init__)
    args = []
    for parameter in signature.parameters.values():
        if parameter.name in SKIPPED or parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            continue
        args.append(Arg(parameter.name, parameter.name, LITERAL, parameter.default))
    return tuple(args)
