"""The grammar of architecture strings: text -> calls, with columns for every message.

    INPUT(3x227x227) - CONV(D=96, F=11, S=4, P=0) - RELU - [CONV(D=8, F=3) - RELU] x 2 - FC(10)

Case-insensitive, spaces optional. A call is ``NAME`` or ``NAME(arg, key=value, ...)``; values
are whole numbers, decimals (``0.5``, ``1e-3``, ``-1``), names (``same``, ``true``,
``none``), quoted text (``"soft clip"``), sizes ``HxW`` and tuples (``(0.1, 0.2, 0.3)``,
``(5,)``, ``()``). ``[ ... ] x N`` repeats a group. A layer with branches writes them in
brackets right after its name, apart by ``|``: ``RES[CONV(D=8, F=3, P=1) - RELU | CONV(D=8,
F=1)]`` (groups and repetition work inside). Which names are layers,
and what their arguments mean, is the registry's business (:mod:`cnnkit.arch.architecture`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cnnkit.errors import CnnkitError
from cnnkit.nn.spec_args import Quoted

MAX_REPEAT = 1000
MAX_LAYERS = 10_000
MAX_SPEC_LENGTH = 20_000
MAX_DEPTH = 8

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<dims>\d+(?:\s*[x×]\s*\d+)+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"[^"]*"|'[^']*')
  | (?P<arrow>->|→)
  | (?P<punct>[()\[\],=*×|-])
    """,
    re.VERBOSE | re.IGNORECASE,
)


_VALUES = ("name", "number", "dims", "string")


class SpecError(CnnkitError, ValueError):
    """A malformed architecture string; ``column`` is 1-based, as editors count."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"col {column}: {message}")
        self.column = column


@dataclass(frozen=True)
class Token:
    kind: str  # name, number, dims, string, punct, end
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
    """One argument as written: its key (lower case, None when positional), its value as a
    Python literal, the text it was written as, and its 1-based column."""

    key: str | None
    value: object
    raw: str
    column: int


@dataclass(frozen=True)
class Call:
    name: str  # upper case, as written
    column: int
    args: tuple[Arg, ...]
    branches: tuple[tuple[Call, ...], ...] | None = None  # RES[a - b | c]: ((a, b), (c,))


def literal(token: Token):
    """A value token as a Python value: 3 -> 3, 0.5 -> 0.5, 3x5 -> (3, 5), same -> 'same'."""
    if token.kind == "dims":
        return tuple(int(part) for part in re.split(r"\s*[x×]\s*", token.text, flags=re.I))
    if token.kind == "number":
        return int(token.text) if token.text.isdigit() else float(token.text)
    if token.kind == "string":
        return Quoted(token.text[1:-1])
    return token.text


class Parser:
    def __init__(self, text: str, layer_names: str) -> None:
        self.source = text
        self.tokens = tokenize(text)
        self.position = 0
        self.layer_names = layer_names  # for "expected a layer (...)"

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
            if depth >= MAX_DEPTH:
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
            raise self.expected(f"a layer ({self.layer_names}) or '['")
        name = self.advance()
        args = self.arguments() if self.accept("(") else ()
        branches = self.branches(depth) if self.accept("[") else None
        return [Call(name.text.upper(), name.start + 1, args, branches)]

    def branches(self, depth: int) -> tuple[tuple[Call, ...], ...]:
        """``[a - b | c]`` right after a layer's name: its branches, apart by ``|``."""
        if depth >= MAX_DEPTH:
            raise SpecError(self.tokens[self.position - 1].start + 1, "branches nest too deep")
        found = [tuple(self.sequence(depth + 1))]
        while self.accept("|"):
            found.append(tuple(self.sequence(depth + 1)))
        if not self.accept("]"):
            raise self.expected("'-', '|' or ']'")
        return tuple(found)

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
            if self.token.kind != "number" or not self.token.text.isdigit():
                raise self.expected("a repeat count")
            number = self.advance()
            count, column = int(number.text), number.start + 1
        if not 1 <= count <= MAX_REPEAT:
            raise SpecError(column, f"repeat count must be 1..{MAX_REPEAT}, got {count}")
        return count

    def arguments(self) -> tuple[Arg, ...]:
        args = []
        if self.accept(")"):  # RELU(): no arguments
            return ()
        while True:
            token = self.token
            if token.kind == "name" and self.tokens[self.position + 1].text == "=":
                self.position += 2
                value, raw = self.value(f"a value for {token.text}")
                args.append(Arg(token.text.lower(), value, raw, token.start + 1))
            elif token.kind in _VALUES or token.text in ("-", "("):
                value, raw = self.value("an argument such as D=16")
                args.append(Arg(None, value, raw, token.start + 1))
            else:
                raise self.expected("an argument such as D=16")
            if self.accept(")"):
                return tuple(args)
            if not self.accept(","):
                raise self.expected("',' or ')'")

    def value(self, what: str):
        """One value (a number, possibly negative; a size; a name; quoted text; a tuple:
        ``()``, ``(5,)``, ``(1, 2)``) and its text."""
        start = self.token
        if self.accept("("):
            items = []
            while not self.accept(")"):
                item, _ = self.value("a value")
                items.append(item)
                if self.accept(")"):
                    break
                if not self.accept(","):
                    raise self.expected("',' or ')'")
            return tuple(items), self._text(start)
        negative = self.accept("-")
        token = self.token
        infinite = token.kind == "name" and token.text.lower() == "inf"
        if negative and token.kind == "dims":
            raise SpecError(start.start + 1, f"sizes are positive, got -{token.text}")
        if token.kind not in _VALUES or (negative and token.kind != "number" and not infinite):
            raise self.expected(what)
        self.advance()
        if negative and infinite:
            return -math.inf, self._text(start)
        value = literal(token)
        return (-value if negative else value), self._text(start)

    def _text(self, start: Token) -> str:
        """The source text from ``start`` to the last token read."""
        end = self.tokens[self.position - 1].end
        return self.source[start.start : end]


def parse_calls(text: str, layer_names: str) -> list[Call]:
    """The calls of ``text``, groups expanded; a SpecError points at the column."""
    return Parser(text, layer_names).parse()
