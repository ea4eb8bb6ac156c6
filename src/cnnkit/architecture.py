"""Layer configurations: what a network is, as plain data, and the shapes that flow through it.

An :class:`Architecture` is an input volume and frozen layer configurations (no weights), so
shapes and counts of VGG-sized networks are known instantly: :func:`trace` walks the layers with
the arithmetic of :mod:`cnnkit.shapes` and collects every problem, in the lecture's letters,
instead of stopping at the first. :meth:`Architecture.build` makes the
:class:`~cnnkit.model.Sequential` with real weights; :func:`architecture_of` goes back from a
live model. Architecture strings (:mod:`cnnkit.spec`) parse into these configurations.

>>> arch = Architecture(InputSpec(1, 10, 10), (ConvSpec(16, (3, 3), (2, 2)),))
>>> trace(arch).problems[0][:60]
'layer 0 CONV(D=16, F=3, S=2, P=0) on 10x10: (10 - 3 + 2*0)/2'
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from cnnkit import shapes
from cnnkit.errors import ShapeError


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


def _pair_text(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


@dataclass(frozen=True)
class ConvSpec:
    depth: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] | str = (0, 0)  # (h, w) on each side, or "same" / "valid"
    bias: bool = True
    rounding: str = "strict"
    column: int = field(default=0, compare=False)

    def text(self) -> str:
        padding = self.padding if isinstance(self.padding, str) else _pair_text(self.padding)
        text = (
            f"CONV(D={self.depth}, F={_pair_text(self.kernel)}, S={_pair_text(self.stride)}, "
            f"P={padding}"
        )
        if not self.bias:
            text += ", bias=false"
        if self.rounding != "strict":
            text += f", round={self.rounding}"
        return text + ")"

    def sides(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Padding as ((top, bottom), (left, right)), resolving "same" and "valid"."""
        if self.padding == "valid":
            return (0, 0), (0, 0)
        if self.padding == "same":  # an even filter pads one more at the bottom/right
            return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in self.kernel)  # type: ignore[return-value]
        return tuple((p, p) for p in self.padding)  # type: ignore[return-value]


@dataclass(frozen=True)
class PoolSpec:
    kind: str  # "max" or "avg"
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    rounding: str = "strict"
    column: int = field(default=0, compare=False)

    def text(self) -> str:
        text = f"POOL({self.kind}, F={_pair_text(self.kernel)}, S={_pair_text(self.stride)}"
        if self.padding != (0, 0):
            text += f", P={_pair_text(self.padding)}"
        if self.rounding != "strict":
            text += f", round={self.rounding}"
        return text + ")"

    def sides(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return tuple((p, p) for p in self.padding)  # type: ignore[return-value]


@dataclass(frozen=True)
class ReluSpec:
    column: int = field(default=0, compare=False)

    def text(self) -> str:
        return "RELU"


@dataclass(frozen=True)
class FlattenSpec:
    implied: bool = field(default=False, compare=False)
    column: int = field(default=0, compare=False)

    def text(self) -> str:
        return "FLATTEN"


@dataclass(frozen=True)
class FCSpec:
    out_features: int
    in_features: int | None = None  # None: inferred from the volume before it
    bias: bool = True
    column: int = field(default=0, compare=False)

    def text(self) -> str:
        text = f"FC({self.out_features}"
        if self.in_features is not None:
            text = f"FC(in={self.in_features}, {self.out_features}"
        return text + (", bias=false)" if not self.bias else ")")


LayerSpec = ConvSpec | PoolSpec | ReluSpec | FlattenSpec | FCSpec


@dataclass(frozen=True)
class Architecture:
    """An input volume (or None) and the layers in order; FLATTEN before the first FC is present
    (marked ``implied`` when the string left it out)."""

    input: InputSpec | None
    layers: tuple[LayerSpec, ...]

    def text(self) -> str:
        """The canonical string; parsing it gives an equal Architecture."""
        parts = [self.input.text()] if self.input is not None else []
        parts += [layer.text() for layer in self.layers if not _implied(layer)]
        return " - ".join(parts)

    def with_input(self, shape: tuple[int, int, int] | None) -> Architecture:
        return self if shape is None else replace(self, input=InputSpec(*shape))

    def build(self, *, rng: np.random.Generator | None = None, dtype=np.float32):
        """The Sequential this describes, with freshly initialised weights.

        Raises :class:`ShapeError` listing every problem (one per line) when the shapes do not
        work out; CONV input channels and FC input sizes come from the traced shapes.
        """
        from cnnkit.model import Sequential

        traced = trace(self)
        traced.raise_problems()
        rng = np.random.default_rng() if rng is None else rng
        layers = [_make_layer(step, rng, dtype) for step in traced.steps]
        model = Sequential(*layers)
        model.input_shape = self.input.shape if self.input is not None else None
        return model


def _implied(layer: LayerSpec) -> bool:
    return isinstance(layer, FlattenSpec) and layer.implied


def _make_layer(step: Step, rng, dtype):
    from cnnkit.layers import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU

    spec = step.spec
    if isinstance(spec, ConvSpec):
        return Conv2d(
            step.input_shape[0],
            spec.depth,
            spec.kernel,
            stride=spec.stride,
            padding=spec.padding,
            bias=spec.bias,
            rng=rng,
            dtype=dtype,
            rounding=spec.rounding,
        )
    if isinstance(spec, PoolSpec):
        pool = MaxPool2d if spec.kind == "max" else AvgPool2d
        return pool(spec.kernel, stride=spec.stride, padding=spec.padding, rounding=spec.rounding)
    if isinstance(spec, ReluSpec):
        return ReLU()
    if isinstance(spec, FlattenSpec):
        return Flatten()
    return Linear(step.input_shape[0], spec.out_features, bias=spec.bias, rng=rng, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Shapes through an architecture, without data


@dataclass(frozen=True)
class Step:
    """One layer with the shape it receives and gives, per example: (C, H, W) or (F,)."""

    index: int
    spec: LayerSpec
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    notes: tuple[str, ...] = ()  # e.g. what rounding="floor" leaves unread

    def output_text(self) -> str:
        return volume_text(self.output_shape)


def volume_text(shape: tuple[int, ...]) -> str:
    """The lecture's order: (C, H, W) -> ``HxWxC``; a vector (F,) -> ``F``."""
    if len(shape) == 3:
        return f"{shape[1]}x{shape[2]}x{shape[0]}"
    return "x".join(map(str, shape))


@dataclass(frozen=True)
class Trace:
    steps: tuple[Step, ...]
    problems: tuple[str, ...]  # one line each: "layer 3 CONV(...) on 10x10: ... ; use ..."

    def raise_problems(self) -> None:
        if self.problems:
            raise ShapeError("\n".join(self.problems))


def _lecture_fix(spec, name: str, value: int, input_hw, floor: bool) -> str | None:
    """Apply one fix to both axes of a square layer and say what the output becomes."""
    letter = {"padding": "P", "stride": "S", "kernel_size": "F"}[name]
    field_name = {"padding": "padding", "stride": "stride", "kernel_size": "kernel"}[name]
    current = getattr(spec, field_name)
    if isinstance(current, str) or current[0] != current[1]:
        return None
    fixed = replace(spec, **{field_name: (value, value)})
    try:
        oh, ow = shapes.output_hw(
            "",
            input_hw,
            fixed.kernel,
            fixed.stride,
            fixed.sides(),
            rounding="floor" if floor else fixed.rounding,
        )
    except ShapeError:
        return None
    return f"{letter}={value} (-> {oh}x{ow})"


def _window_problem(step_text: str, spec, input_hw, floor: bool, is_pool: bool) -> str | None:
    """None if the window fits; else the problem line in lecture letters, with fixes."""
    rounding = "floor" if floor else spec.rounding
    problems = []
    for axis, size, k, s, sides in zip(
        ("height", "width"), input_hw, spec.kernel, spec.stride, spec.sides(), strict=True
    ):
        problem = shapes.axis_problem(
            axis,
            size,
            k,
            s,
            sides,
            rounding=rounding,
            window="window" if is_pool else "filter",
            max_padding=k // 2 if is_pool else None,
        )
        if problem is not None:
            problems.append(problem)
    if not problems:
        return None
    first = problems[0]
    fixes = []
    for fix in first.fixes:
        text = _lecture_fix(spec, fix.name, fix.value, input_hw, floor)
        if text is not None:
            fixes.append(text)
    where = "" if len(problems) == 2 or input_hw[0] == input_hw[1] else f"{first.axis}: "
    advice = f"; use {' or '.join(fixes)}" if fixes else ""
    if not first.too_large and not floor:
        advice += f"{',' if fixes else ';'} or --floor (-> {first.floor_output}, as PyTorch)"
    return f"{step_text} on {input_hw[0]}x{input_hw[1]}: {where}{first.describe()}{advice}"


def _floor_notes(spec, input_hw) -> tuple[str, ...]:
    notes = []
    for axis, size, k, s, sides in zip(
        ("rows", "columns"), input_hw, spec.kernel, spec.stride, spec.sides(), strict=True
    ):
        padded = size + sum(sides)
        if padded >= k and (padded - k) % s:
            dropped = (padded - k) % s
            first = padded - dropped
            names = f"{first}" if dropped == 1 else f"{first}..{padded - 1}"
            notes.append(f"floor: padded {axis} {names} (of 0..{padded - 1}) are never read")
    return tuple(notes)


def trace(arch: Architecture, *, floor: bool = False) -> Trace:
    """Shapes layer by layer, collecting every problem instead of stopping at the first.

    ``floor=True`` rounds every non-whole output size down as PyTorch does and notes which
    padded input rows/columns are never read. A layer that cannot run at all (window larger
    than its input, missing input size) ends the trace.
    """
    if arch.input is None:
        raise ShapeError(
            "the architecture has no input size; start it with INPUT(CxHxW), or pass "
            "input_shape=(C, H, W) (--input CxHxW on the command line)"
        )
    shape: tuple[int, ...] = arch.input.shape
    steps: list[Step] = []
    problems: list[str] = []
    for index, spec in enumerate(arch.layers):
        label = f"layer {index} {spec.text()}"
        out, notes, problem, fatal = _step(spec, shape, label, floor)
        if problem:
            problems.append(problem)
        if fatal:
            break
        steps.append(Step(index, spec, shape, out, notes))
        shape = out
    return Trace(tuple(steps), tuple(problems))


def _step(spec, shape, label: str, floor: bool):
    """(output shape, notes, problem line or None, whether the trace must stop)."""
    if isinstance(spec, ConvSpec | PoolSpec):
        if len(shape) != 3:
            kind = "CONV" if isinstance(spec, ConvSpec) else "POOL"
            return shape, (), f"{label}: {kind} needs a volume, got a vector of {shape[0]}", True
        hw = shape[1:]
        problem = _window_problem(label, spec, hw, floor, isinstance(spec, PoolSpec))
        padded_ok = all(
            size + sum(sides) >= k
            for size, k, sides in zip(hw, spec.kernel, spec.sides(), strict=True)
        )
        if not padded_ok:
            return shape, (), problem, True
        out_hw = tuple(
            (size + sum(sides) - k) // s + 1
            for size, k, s, sides in zip(hw, spec.kernel, spec.stride, spec.sides(), strict=True)
        )
        notes = _floor_notes(spec, hw) if (floor or spec.rounding == "floor") else ()
        depth = spec.depth if isinstance(spec, ConvSpec) else shape[0]
        return (depth, *out_hw), notes, problem, False
    if isinstance(spec, ReluSpec):
        return shape, (), None, False
    if isinstance(spec, FlattenSpec):
        return (int(np.prod(shape)),), (), None, False
    if len(shape) != 1:
        return shape, (), f"{label}: FC needs a vector; put FLATTEN before it", True
    if spec.in_features is not None and spec.in_features != shape[0]:
        problem = (
            f"{label} on {shape[0]} values: in={spec.in_features} does not match the "
            f"{shape[0]} values it receives; use FC({spec.out_features}) to infer it "
            f"or in={shape[0]}"
        )
        return (spec.out_features,), (), problem, False
    return (spec.out_features,), (), None, False


# ---------------------------------------------------------------------------------------------
# From a live model back to configurations


def architecture_of(model, input_shape: tuple[int, int, int] | None = None) -> Architecture:
    """The configuration of a Sequential of cnnkit layers (no weights read)."""
    from cnnkit.layers import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU

    layers: list[LayerSpec] = []
    for index, layer in enumerate(model):
        if isinstance(layer, Conv2d):
            padding = layer.padding_mode or layer.padding
            layers.append(
                ConvSpec(
                    layer.out_channels,
                    layer.kernel_size,
                    layer.stride,
                    padding,
                    layer.bias is not None,
                    layer.rounding,
                )
            )
        elif isinstance(layer, MaxPool2d | AvgPool2d):
            kind = "max" if isinstance(layer, MaxPool2d) else "avg"
            layers.append(
                PoolSpec(kind, layer.kernel_size, layer.stride, layer.padding, layer.rounding)
            )
        elif isinstance(layer, ReLU):
            layers.append(ReluSpec())
        elif isinstance(layer, Flatten) and (layer.start_dim, layer.end_dim) == (1, -1):
            implied = (
                index + 1 < len(model)
                and isinstance(model[index + 1], Linear)
                and not any(isinstance(earlier, FlattenSpec) for earlier in layers)
            )
            layers.append(FlattenSpec(implied=implied))
        elif isinstance(layer, Linear):
            layers.append(FCSpec(layer.out_features, layer.in_features, layer.bias is not None))
        else:
            raise ShapeError(f"layer {index} {layer!r} has no architecture-string form yet")
    shape = input_shape or getattr(model, "input_shape", None)
    if shape is not None and len(shape) == 4:  # (N, C, H, W): the batch size plays no part
        shape = tuple(shape[1:])
    if shape is not None and (len(shape) != 3 or min(shape) < 1):
        raise ShapeError(f"input_shape must be (C, H, W), got {tuple(shape)}")
    arch = Architecture(InputSpec(*shape) if shape else None, tuple(layers))
    return _drop_inferable_fc_inputs(arch)


def _drop_inferable_fc_inputs(arch: Architecture) -> Architecture:
    """Write FC(10) rather than FC(in=128, 10) where the traced shapes give 128 anyway."""
    if arch.input is None:
        return arch
    traced = trace(arch)
    if traced.problems:
        return arch
    layers = list(arch.layers)
    for step in traced.steps:
        if isinstance(step.spec, FCSpec) and step.spec.in_features == step.input_shape[0]:
            layers[step.index] = replace(step.spec, in_features=None)
    return replace(arch, layers=tuple(layers))
