"""Shapes through an architecture, without data and without weights, and every problem.

:func:`trace` builds each layer of an :class:`~cnnkit.arch.specs.Architecture` with shape-only
parameters (nothing allocated, no random number drawn: VGG16 in milliseconds), asks it for its
output shape, and collects every problem in the lecture's letters instead of stopping at the
first: a window that does not divide evenly, where rounding down would lose input, is reported
with its fixes and the trace goes on with PyTorch's rounding; a layer that cannot run at all
ends it. Each step notes what rounding leaves unread (only padding, say, for ResNet's 3x3
stride-2 convolutions on even sizes).

>>> from cnnkit.arch.specs import parse
>>> traced = trace(parse("INPUT(1x10x10) - CONV(D=16, F=3, S=2)"))
>>> traced.problems[0][:60]
'layer 0 CONV(D=16, F=3, S=2, P=0) on 10x10: (10 - 3 + 2*0)/2'
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace

import numpy as np

from cnnkit.arch.specs import Architecture, LayerSpec
from cnnkit.errors import CnnkitError, ConfigError, ShapeError
from cnnkit.nn import probe
from cnnkit.nn.containers import Sequential
from cnnkit.nn.parameter import making_meta, meta_parameters
from cnnkit.shapes import LETTERS


@dataclass(frozen=True)
class Step:
    """One layer with the shape it receives and gives, per example: (C, H, W) or (F,)."""

    index: int
    spec: LayerSpec
    layer: object  # the layer, built with shape-only parameters
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    notes: tuple[str, ...] = ()  # e.g. what rounding down leaves unread

    def output_text(self) -> str:
        return volume_text(self.output_shape)


def volume_text(shape: tuple[int, ...]) -> str:
    """The lecture's order: (C, H, W) -> ``HxWxC``; a vector (F,) -> ``F``."""
    if len(shape) == 3:
        return f"{shape[1]}x{shape[2]}x{shape[0]}"
    return "x".join(map(str, shape))


def _on(shape: tuple[int, ...]) -> str:
    """What a layer receives, for messages: ``10x10`` or ``256 values``."""
    if len(shape) == 3:
        return f"{shape[1]}x{shape[2]}"
    return f"{shape[0]} values" if len(shape) == 1 else "x".join(map(str, shape))


@dataclass(frozen=True)
class Trace:
    steps: tuple[Step, ...]
    problems: tuple[str, ...]  # one line each: "layer 3 CONV(...) on 10x10: ... ; use ..."

    def raise_problems(self) -> None:
        if self.problems:
            raise ShapeError("\n".join(self.problems))


def make_layer(spec: LayerSpec, input_shape, *, rng=None, dtype=np.float32, overrides=None):
    """The layer ``spec`` describes for inputs of ``input_shape`` (N, C, H, W): arguments the
    string left out (a CONV's input channels) inferred from the shape, then built."""
    cls = spec.layer_class
    config = dict(spec.config)
    for arg in spec.args:
        if arg.infer is not None and arg.name not in config:
            config[arg.name] = arg.infer(input_shape)
    for name, entries in spec.branches():
        config[name] = _branch(name, entries, input_shape, rng, dtype, overrides)
    config.update(overrides or {})
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {name: value for name, value in config.items() if name in accepted}
    if "rng" in accepted:
        kwargs["rng"] = rng
    if "dtype" in accepted:
        kwargs["dtype"] = dtype
    try:
        layer = cls(**kwargs)
    except CnnkitError:
        raise
    except Exception as error:  # a user's __init__ refusing its settings: located, one line
        raise ConfigError(
            f"{cls.__name__}({_settings(kwargs)}) raised {type(error).__name__}: {error}"
        ) from None
    dtype = np.dtype(dtype)
    if any(module.dtype != dtype for module in layer.modules()):
        layer.to(dtype)  # children a layer makes in __init__ too
    probe.build_once(layer, tuple(input_shape))
    return layer


def _branch(name: str, entries, input_shape, rng, dtype, overrides):
    """The Sequential of a branch's entries (RES's body), each built for what it receives;
    a problem inside names its place (``body.1``). ``rounding`` overrides (``--floor``) reach
    the layers inside that have it."""
    layers, shape = [], tuple(input_shape)
    for index, entry in enumerate(entries):
        inner = {k: v for k, v in (overrides or {}).items() if k in dict(entry.config)}
        try:
            layer = make_layer(entry, shape, rng=rng, dtype=dtype, overrides=inner)
            shape = tuple(layer.output_shape(shape))
        except CnnkitError as error:
            raise error.located(index).located(name) from None
        layers.append(layer)
    return Sequential(*layers)


def _settings(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k not in ("rng", "dtype"))


def trace(arch: Architecture, *, floor: bool = False) -> Trace:
    """Shapes layer by layer, collecting every problem instead of stopping at the first.

    ``floor=True`` rounds every non-whole output size down as PyTorch does; the notes say
    which padded input rows/columns are never read.
    """
    if arch.input is None:
        raise ShapeError(
            "the architecture has no input size; start it with INPUT(CxHxW), or pass "
            "input_shape=(C, H, W) (--input CxHxW on the command line)"
        )
    shape: tuple[int, ...] = arch.input.shape
    steps: list[Step] = []
    problems: list[str] = []
    with meta_parameters():
        for index, spec in enumerate(arch.layers):
            label = f"layer {index} {spec.text()}"
            step, found, fatal = _step(index, spec, shape, label, floor)
            problems += found
            if fatal:
                break
            steps.append(step)
            shape = step.output_shape
    return Trace(tuple(steps), tuple(problems))


def _step(index: int, spec: LayerSpec, shape, label: str, floor: bool):
    """(step, problem lines, whether the trace must stop)."""
    batch_shape = (1, *shape)
    problems = _inferred_problems(spec, batch_shape, label, shape)
    spec = _without_given_inferred(spec, batch_shape)
    floor_here = floor and ("rounding" in dict(spec.config) or bool(spec.branches()))
    overrides = {"rounding": "floor"} if floor_here else {}
    try:
        layer, out = _measured(spec, batch_shape, overrides)
    except ShapeError as error:
        window = _window_of(spec, batch_shape)
        if window is None or len(shape) != 3 or not getattr(error, "problems", ()):
            return None, [*problems, _fatal(label, shape, error)], True
        found = _window_problem(label, spec, window, shape[1:], floor)
        if found is None:  # not the output size: another refusal of the window's geometry
            return None, [*problems, _fatal(label, shape, error)], True
        line, fatal = found
        if fatal:
            return None, [*problems, line], True
        layer, out = _measured(spec, batch_shape, {"rounding": "floor"})
        problems.append(line)
    except CnnkitError as error:
        return None, [*problems, _fatal(label, shape, error)], True
    unread = getattr(getattr(layer, "window", None), "unread_notes", None)
    notes = unread(shape[1:]) if unread is not None and len(shape) == 3 else ()
    return Step(index, spec, layer, tuple(shape), tuple(out[1:]), notes), problems, False


def _measured(spec: LayerSpec, batch_shape, overrides: dict):
    """(the layer, its output shape), with shape-only parameters where the layer allows: a
    user's layer whose build or forward writes into its weights (``weight.data *= gain``)
    gets real ones, as it would in a model."""
    try:
        layer = make_layer(spec, batch_shape, overrides=overrides)
        return layer, layer.output_shape(batch_shape)
    except CnnkitError:
        raise
    except Exception:
        if not making_meta():
            raise
    with meta_parameters(False):
        layer = make_layer(spec, batch_shape, overrides=overrides)
        return layer, layer.output_shape(batch_shape)


def _fatal(label: str, shape, error: CnnkitError) -> str:
    """The line of a layer that cannot run on what it receives."""
    line = f"{label} on {_on(shape)}: {_plain(error)}"
    if len(shape) == 1 and isinstance(error, ShapeError):
        line += (
            "; after FC or FLATTEN the volume is a flat vector: put CONV and POOL layers "
            "before them"
        )
    return line


def _plain(error: CnnkitError) -> str:
    return str(error).split("\n")[0]


def _inferred_problems(spec: LayerSpec, batch_shape, label: str, shape) -> list[str]:
    """An argument the shapes give away, written by hand with another value."""
    problems = []
    for arg in spec.args:
        given = spec.get(arg.name)
        if arg.infer is None or arg.key is None or given is None:
            continue
        inferred = arg.infer(batch_shape)
        if given != inferred:
            problems.append(
                f"{label} on {_on(shape)}: {arg.key}={given} does not match the {inferred} "
                f"{arg.meaning or 'values'} it receives; use {spec.without(arg.name).text()} "
                f"to infer it or {arg.key}={inferred}"
            )
    return problems


def _without_given_inferred(spec: LayerSpec, batch_shape) -> LayerSpec:
    for arg in spec.args:
        if arg.infer is not None and spec.get(arg.name) is not None:
            if spec.get(arg.name) != arg.infer(batch_shape):
                spec = spec.without(arg.name)
    return spec


def _window_of(spec: LayerSpec, batch_shape):
    """The window of the layer ``spec`` describes, built with PyTorch's rounding (so it can
    be built at all), or None for a layer without one."""
    try:
        return make_layer(spec, batch_shape, overrides={"rounding": "floor"}).window
    except (CnnkitError, AttributeError, TypeError):
        return None


def _window_problem(label, spec: LayerSpec, window, input_hw, floor: bool):
    """The problem line in lecture letters with fixes, and whether it is fatal; None when
    the output size is not what is wrong."""
    window = _with_rounding(window, spec.get("rounding", "strict"))
    problems = window.problems(input_hw, floor=floor)
    if not problems:
        return None
    first = problems[0]
    fixes = [
        text
        for fix in first.fixes
        if (text := _lecture_fix(spec, fix.name, fix.value, input_hw, floor)) is not None
    ]
    if not first.too_large and (text := _ceil_fix(spec, input_hw)) is not None:
        fixes.append(text)
    where = "" if len(problems) == 2 or input_hw[0] == input_hw[1] else f"{first.axis}: "
    advice = f"; use {' or '.join(fixes)}" if fixes else ""
    if not first.too_large and not floor:
        advice += (
            f"{',' if fixes else ';'} or round=floor (-> {first.floor_output}, as PyTorch; "
            "--floor for every layer)"
        )
    fatal = any(problem.too_large for problem in problems)
    return f"{label} on {input_hw[0]}x{input_hw[1]}: {where}{first.describe()}{advice}", fatal


def _ceil_fix(spec: LayerSpec, input_hw) -> str | None:
    """``ceil=true (-> 5x5)`` for a layer that can round up (pooling's ceil_mode), when that
    fits."""
    arg = next((arg for arg in spec.args if arg.name == "ceil_mode"), None)
    if arg is None or arg.key is None or spec.get("ceil_mode") is not False:
        return None
    try:
        layer = make_layer(spec.with_value("ceil_mode", True), (1, 1, *input_hw))
        _, _, oh, ow = layer.output_shape((1, 1, *input_hw))
    except (CnnkitError, AttributeError, TypeError, ValueError):
        return None
    return f"{arg.key}=true (-> {oh}x{ow})"


def _with_rounding(window, rounding: str):
    return replace(window, rounding=rounding)


def _lecture_fix(spec: LayerSpec, name: str, value: int, input_hw, floor: bool) -> str | None:
    """Apply one fix to both axes of a square layer and say what the output becomes."""
    letter = next((arg.key for arg in spec.args if arg.name == name), LETTERS.get(name, name))
    current = spec.get(name)
    if not isinstance(current, tuple) or current[0] != current[1]:
        return None
    fixed = spec.with_value(name, (value, value))
    try:
        layer = make_layer(fixed, (1, 1, *input_hw), overrides={"rounding": "floor"})
        rounding = "floor" if floor else spec.get("rounding", "strict")
        oh, ow = layer.window.output_hw("", input_hw, rounding=rounding)
    except (CnnkitError, AttributeError, TypeError):
        return None
    return f"{letter}={value} (-> {oh}x{ow})"
