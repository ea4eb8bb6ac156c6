"""Windows and receptive fields: the geometry a convolution or a pooling layer shares with the
summary and the explanations, computed with the formulas of :mod:`cnnkit.shapes.formula`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit.shapes.formula import (
    AxisProblem,
    axis_problem,
    ceil_units,
    exact_text,
    formula,
    output_hw,
    span,
    units,
)
from cnnkit.shapes.notes import ceil_note, unread_note

Pair = tuple[int, int]
Sides = tuple[Pair, Pair]  # ((top, bottom), (left, right))


@dataclass(frozen=True)
class Field:
    """What one unit sees of the network's input: its receptive field (rows, columns), the
    input distance between neighbouring units (the jump, the product of the strides so far)
    and where unit 0's field starts (minus the padding so far, in input pixels)."""

    size: Pair = (1, 1)
    jump: Pair = (1, 1)
    offset: Pair = (0, 0)

    def through(self, kernel: Pair, stride: Pair, before: Pair) -> Field:
        """After a window spanning ``kernel`` inputs (d(F - 1) + 1 when dilated) moved by
        ``stride`` over input padded by ``before`` (top, left): r = r + (F - 1)*j, O = O + P*j,
        j = j*S."""
        return Field(
            tuple(r + (k - 1) * j for r, k, j in zip(self.size, kernel, self.jump, strict=True)),
            tuple(j * s for j, s in zip(self.jump, stride, strict=True)),
            tuple(o + p * j for o, p, j in zip(self.offset, before, self.jump, strict=True)),
        )


@dataclass(frozen=True)
class Window:
    """A window of ``kernel`` moved by ``stride`` over an input padded by ``sides``: the
    geometry a convolution or pooling layer shares with summaries and explanations."""

    kernel: Pair
    stride: Pair
    sides: Sides
    rounding: str = "strict"
    kind: str = "filter"  # "filter" (CONV) or "window" (POOL), for messages
    max_padding: Pair | None = None  # pooling: at most half the window
    dilation: Pair = (1, 1)  # taps d apart: a window spans d(F - 1) + 1 inputs
    ceil_mode: bool = False  # pooling: round up, PyTorch's ceil_mode (see formula.ceil_units)

    @property
    def before(self) -> Pair:
        return (self.sides[0][0], self.sides[1][0])

    @property
    def spans(self) -> Pair:
        """The input extent of one window per axis: d(F - 1) + 1."""
        return tuple(span(k, d) for k, d in zip(self.kernel, self.dilation, strict=True))

    def output_hw(self, owner, input_hw, *, rounding: str | None = None) -> Pair:
        """(OH, OW), or one ShapeError with the arithmetic and fixes naming ``owner``."""
        return output_hw(
            owner,
            tuple(input_hw),
            self.kernel,
            self.stride,
            self.sides,
            rounding=rounding or self.rounding,
            window=self.kind,
            max_padding=self.max_padding,
            dilation=self.dilation,
            ceil_mode=self.ceil_mode,
        )

    def floor_hw(self, input_hw) -> Pair:
        return tuple(  # type: ignore[return-value]
            units(size, k, s, p)
            for size, k, s, p in zip(input_hw, self.spans, self.stride, self.sides, strict=True)
        )

    def problems(self, input_hw, *, floor: bool = False) -> list[AxisProblem]:
        """What does not fit along each axis (empty when everything does)."""
        found = []
        limits = self.max_padding or (None, None)
        for axis, size, k, s, sides, limit, d in zip(
            ("height", "width"),
            input_hw,
            self.kernel,
            self.stride,
            self.sides,
            limits,
            self.dilation,
            strict=True,
        ):
            rounding = "floor" if floor else self.rounding
            problem = axis_problem(
                axis,
                size,
                k,
                s,
                sides,
                rounding=rounding,
                window=self.kind,
                max_padding=limit,
                dilation=d,
                ceil_mode=self.ceil_mode,
            )
            if problem is not None:
                found.append(problem)
        return found

    def formula(self, input_hw, output_hw, *, floor: bool = False) -> str:
        """``(227 - 11 + 2*0)/4 + 1 = 55``; both axes labelled when they differ; a result
        rounded down written ``16.5 -> 16`` (``4.5 -> 4 (floor)`` where the layer, or
        ``floor``, rounds down whatever it loses); with ``ceil_mode``
        ``ceil((7 - 3 + 2*0)/2) + 1 = 3``."""
        floor = floor or self.rounding == "floor"
        axes = []
        for size, k, s, sides, result, d in zip(
            input_hw, self.kernel, self.stride, self.sides, output_hw, self.dilation, strict=True
        ):
            left = size + sum(sides) - span(k, d)
            if self.ceil_mode:
                up = -(-left // s) + 1
                value = str(up) if up == result else f"{up} -> {result} ({_ceil_why(up)})"
            elif left % s == 0:
                value = str(result)
            else:
                value = f"{exact_text(left, s)} -> {result}{' (floor)' if floor else ''}"
            axes.append(f"{formula(size, k, s, sides, d, ceil=self.ceil_mode)} = {value}")
        return axes[0] if axes[0] == axes[1] else f"H: {axes[0]}, W: {axes[1]}"

    def unread_notes(self, input_hw) -> tuple[str, ...]:
        """What rounding leaves unread (padded rows and columns after the last window, and
        why that loses nothing, or ``floor: ...`` where it loses input), and where a
        ``ceil_mode`` window runs past the padded input."""
        notes = []
        for words, size, extent, s, (before, after) in zip(
            ("rows", "columns"), input_hw, self.spans, self.stride, self.sides, strict=True
        ):
            note = None
            if self.ceil_mode:
                note = ceil_note(words, size, extent, s, before, after)
                floor_count = units(size, extent, s, (before, after))
                if note is None and ceil_units(size, extent, s, before, after) != floor_count:
                    continue  # the extra window ends exactly at the padded input's end
            if note is None:
                note = unread_note(words, size, extent, s, before, after)
            if note is not None:
                notes.append(note)
        return tuple(notes)

    def padding_only(self, input_hw) -> str | None:
        """Where a dilated window's taps all fall in the padding (a max over nothing but -inf),
        in words, else None. Only a window that starts in the top/left padding can: any other
        window's first tap is input."""
        for axis, words, size, k, s, (before, after), d in zip(
            ("height", "width"),
            ("rows", "columns"),
            input_hw,
            self.kernel,
            self.stride,
            self.sides,
            self.dilation,
            strict=True,
        ):
            for o in range(-(-before // s) if d > 1 else 0):
                start = o * s
                first = -(-(before - start) // d)  # the first tap at or after the input's start
                if first < k and start + first * d < before + size:
                    continue
                taps = ", ".join(str(start + j * d) for j in range(min(k, 4)))
                more = ", ..." if k > 4 else ""
                return (
                    f"window {o} along the {axis} reads only padding (taps at padded {words} "
                    f"{taps}{more}; the input is {before}..{before + size - 1} of "
                    f"0..{size + before + after - 1}), so its max would be -inf"
                )
        return None

    def field_after(self, field: Field) -> Field:
        return field.through(self.spans, self.stride, self.before)

    @property
    def taps(self) -> int:
        """Positions in one window (F*F)."""
        return int(np.prod(self.kernel))


def _ceil_why(count: int) -> str:
    """Why ``ceil_mode`` drops its last window: PyTorch's rule."""
    return f"the {_ordinal(count)} window would start in the padding after the input"


def _ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``, ``21st``."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
