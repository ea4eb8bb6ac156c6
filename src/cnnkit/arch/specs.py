"""Architectures as plain data: an input volume and one :class:`LayerSpec` per layer.

A LayerSpec is a registered keyword and the layer's arguments (normalised: ``F=3`` is stored as
``kernel_size=(3, 3)``), nothing more, so it works for any registered layer, the user's own
included. :func:`parse` reads architecture strings through the registry; ``text()`` writes
the canonical string back (parsing it gives an equal Architecture).

>>> arch = parse("INPUT(3x227x227) - CONV(D=96, F=11, S=4) - RELU - POOL(F=3, S=2) - FC(10)")
>>> arch.text()
'INPUT(3x227x227) - CONV(D=96, F=11, S=4, P=0) - RELU - POOL(max, F=3, S=2) - FC(10)'
>>> arch.layers[0].get("kernel_size")
(11, 11)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cnnkit.arch.catalog import ARCHITECTURES
from cnnkit.arch.grammar import MAX_SPEC_LENGTH, Call, SpecError, parse_calls
from cnnkit.nn import registry
from cnnkit.nn.spec_args import REQUIRED, Arg, ArgError, Whole, arguments_of

FLATTEN = "FLATTEN"  # put before the first layer that needs a flat input, when not written


@dataclass(frozen=True)
class InputSpec:
    channels: int
    height: int
    width: int

    def text(self) -> str:
        return f"INPUT({self.channels}x{self.height}x{self.width})"

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


@dataclass(frozen=True)
class LayerSpec:
    """A registered keyword and its arguments (constructor names, normalised values)."""

    keyword: str
    config: tuple[tuple[str, object], ...] = ()
    column: int = field(default=0, compare=False)
    implied: bool = field(default=False, compare=False)  # a FLATTEN the string left out

    def get(self, name: str, default=None):
        return dict(self.config).get(name, default)

    @property
    def base_class(self):
        found = registry.lookup(self.keyword)
        if found is None:
            raise SpecError(self.column or 1, f"layer {self.keyword!r} is no longer registered")
        return found[1]

    @property
    def layer_class(self):
        """The class this spec builds (a registered class may pick a subclass)."""
        return self.base_class.spec_class(dict(self.config))

    @property
    def args(self) -> tuple[Arg, ...]:
        return arguments_of(self.base_class)

    def text(self) -> str:
        """``CONV(D=96, F=11, S=4, P=0)``: the canonical form; a layer with branches writes
        them in brackets, ``RES[CONV(D=8, F=3, S=1, P=1) - RELU | CONV(D=8, F=1, S=1, P=0)]``."""
        config = dict(self.config)
        parts = []
        branches = [
            arg.kind.text(config[arg.name])
            for arg in self.args
            if is_branch(arg) and config.get(arg.name) is not None
        ]
        for arg in self.args:
            if arg.key is None or arg.name not in config or is_branch(arg):
                continue
            value = config[arg.name]
            if arg.infer is None and not arg.always and _same(value, _default(arg, config)):
                continue
            shown = arg.kind.text(value)
            parts.append(shown if arg.positional else f"{arg.key}={shown}")
        text = f"{self.keyword}({', '.join(parts)})" if parts else self.keyword
        return text + (f"[{' | '.join(branches)}]" if branches else "")

    def branches(self) -> list[tuple[str, tuple[LayerSpec, ...]]]:
        """(argument name, its layers' entries) of every branch given (RES: body, shortcut)."""
        config = dict(self.config)
        return [
            (arg.name, config[arg.name])
            for arg in self.args
            if is_branch(arg) and config.get(arg.name) is not None
        ]

    def without(self, name: str) -> LayerSpec:
        return replace(self, config=tuple(item for item in self.config if item[0] != name))

    def with_value(self, name: str, value) -> LayerSpec:
        config = dict(self.config)
        config[name] = value
        order = [arg.name for arg in self.args]
        return replace(self, config=tuple((n, config[n]) for n in order if n in config))


@dataclass(frozen=True)
class Architecture:
    """An input volume (or None) and the layers in order; a FLATTEN before the first layer that
    needs a flat input is present (``implied`` when the string left it out)."""

    input: InputSpec | None
    layers: tuple[LayerSpec, ...]

    def text(self) -> str:
        """The canonical string; parsing it gives an equal Architecture."""
        parts = [self.input.text()] if self.input is not None else []
        parts += [layer.text() for layer in self.layers if not layer.implied]
        return " - ".join(parts)

    def with_input(self, shape: tuple[int, int, int] | None) -> Architecture:
        return self if shape is None else replace(self, input=InputSpec(*shape))


def is_branch(arg: Arg) -> bool:
    """An argument written as a bracketed branch of layers (RES's body and shortcut)."""
    return getattr(arg.kind, "branch", False)


def _default(arg: Arg, config: dict):
    if arg.default_from is not None:
        return config.get(arg.default_from)
    if arg.default is REQUIRED or arg.default is None:
        return arg.default
    try:
        return arg.kind.read(arg.default, str(arg.default), arg.what)
    except ArgError:
        return arg.default


def _same(a, b) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------
# Parsing


def layer_names() -> str:
    return ", ".join(["INPUT", *registry.keywords()])


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
    calls = parse_calls(text, layer_names())
    arch_input = None
    if calls[0].name == "INPUT":
        arch_input = _input(calls[0])
        calls = calls[1:]
        if not calls:
            raise SpecError(
                len(text.rstrip()) + 1,
                f"{arch_input.text()} has no layers after it; e.g. {arch_input.text()} - "
                "CONV(D=8, F=3) - RELU - FC(10)",
            )
    return Architecture(arch_input, _with_flatten([layer_spec(call) for call in calls]))


def _with_flatten(layers: list[LayerSpec]) -> tuple[LayerSpec, ...]:
    out: list[LayerSpec] = []
    flattened = False
    for spec in layers:
        flattened = flattened or spec.keyword == FLATTEN
        if not flattened and getattr(spec.layer_class, "flat_input", False):
            out.append(layer_spec(Call(FLATTEN, spec.column, ()), implied=True))
            flattened = True
        out.append(spec)
    return tuple(out)


def _input(call: Call) -> InputSpec:
    if len(call.args) != 1 or call.args[0].key is not None:
        raise SpecError(call.column, "INPUT takes one size, e.g. INPUT(3x32x32) or INPUT(28x28)")
    arg = call.args[0]
    sizes = arg.value if isinstance(arg.value, tuple) else None
    if sizes is None or len(sizes) not in (2, 3) or not all(isinstance(s, int) for s in sizes):
        raise SpecError(arg.column, f"INPUT size must be CxHxW or HxW, got {arg.raw}")
    try:
        for size in sizes:
            Whole().read(size, arg.raw, "every INPUT size")
    except ArgError as error:
        raise SpecError(arg.column, str(error)) from None
    return InputSpec(*sizes) if len(sizes) == 3 else InputSpec(1, *sizes)


def layer_spec(call: Call, *, implied: bool = False) -> LayerSpec:
    """One call checked against its layer's arguments (see :mod:`cnnkit.nn.spec_args`)."""
    if call.name == "INPUT":
        raise SpecError(call.column, "INPUT can only come first")
    found = registry.lookup(call.name)
    if found is None:
        raise SpecError(call.column, _unknown(call.name))
    keyword, cls, preset = found
    args = arguments_of(cls)
    given = _branches(call, args)
    plain = tuple(arg for arg in args if not is_branch(arg))
    given.update(_assign(call, plain, preset))
    config: dict = {}
    for arg in args:
        if arg.name in given:
            value, raw, column = given[arg.name]
            try:
                config[arg.name] = arg.kind.read(value, raw, arg.what)
            except ArgError as error:
                raise SpecError(column, str(error)) from None
    for arg in args:
        if arg.name in config or arg.infer is not None:
            continue
        if arg.required:
            raise SpecError(call.column, _needs(call.name, arg, cls))
        config[arg.name] = _default(arg, config)
    for name, message in cls.spec_problems(config):
        raise SpecError(given.get(name, (None, None, call.column))[2], message)
    ordered = tuple((arg.name, config[arg.name]) for arg in args if arg.name in config)
    return LayerSpec(keyword, ordered, call.column, implied)


def _branches(call: Call, args: tuple[Arg, ...]) -> dict:
    """{argument name: (layer entries, text, column)} for the branches written in brackets."""
    slots = [arg for arg in args if is_branch(arg)]
    written = call.branches or ()
    if written and not slots:
        raise SpecError(call.column, f"{call.name} takes no branches in [...]")
    if len(written) > len(slots):
        names = " | ".join(arg.name for arg in slots)
        raise SpecError(call.column, f"{call.name} takes at most {len(slots)} branches: [{names}]")
    given = {}
    for arg, calls in zip(slots, written, strict=False):
        if not calls:
            raise SpecError(call.column, f"{call.name}'s {arg.name} is empty")
        entries = _with_flatten([layer_spec(item) for item in calls])
        given[arg.name] = (entries, arg.name, calls[0].column)
    return given


def reread(spec: LayerSpec) -> LayerSpec:
    """``spec``'s text parsed again (what a saved architecture string gives back)."""
    return layer_spec(parse_calls(spec.text(), layer_names())[0], implied=spec.implied)


def _assign(call: Call, args: tuple[Arg, ...], preset: dict) -> dict:
    """{argument name: (value, text, column)} from the call's keyed and positional values."""
    by_key = {arg.key.lower(): arg for arg in args if arg.key is not None}
    positional = [arg for arg in args if arg.positional and arg.name not in preset]
    given = {name: (value, str(value), call.column) for name, value in preset.items()}
    written = [arg for arg in args if arg.key is not None]
    for item in call.args:
        if item.key is None:
            if not written:
                raise SpecError(item.column, f"{call.name} takes no arguments; write {call.name}")
            free = [arg for arg in positional if arg.name not in given]
            if not free:
                first = next((arg.key for arg in written if not arg.positional), written[0].key)
                raise SpecError(
                    item.column,
                    f"{call.name} got an unexpected value {item.raw}; name it, e.g. {first}=...",
                )
            arg = free[0]
        else:
            arg = by_key.get(item.key)
            if arg is None and not written:
                raise SpecError(item.column, f"{call.name} takes no arguments; write {call.name}")
            if arg is None:
                keys = ", ".join(a.key for a in written)
                raise SpecError(
                    item.column, f"{call.name} has no argument {item.key!r}; it takes {keys}"
                )
            if arg.name in preset:
                raise SpecError(item.column, f"{call.name} sets {arg.key} itself")
        if arg.name in given:
            raise SpecError(item.column, f"{call.name} got {arg.key} twice")
        given[arg.name] = (item.value, item.raw, item.column)
    return given


def _needs(name: str, arg: Arg, cls) -> str:
    example = getattr(cls, "spec_example", None) or f"{name}({arg.key}=...)"
    if arg.positional:
        return f"{name} needs {arg.meaning or arg.key}, e.g. {example}"
    meaning = f" ({arg.meaning})" if arg.meaning else ""
    return f"{name} needs {arg.key}{meaning}, e.g. {example}"


def _unknown(name: str) -> str:
    close = registry.closest(name)
    hint = f"did you mean {close}? " if close else ""
    return (
        f"unknown layer {name!r}; {hint}the registered layers are {', '.join(registry.keywords())} "
        "(INPUT comes first); a layer of your own needs @cnnkit.register_layer('NAME') "
        "(and, on the command line, cnnkit --import MODULE)"
    )
