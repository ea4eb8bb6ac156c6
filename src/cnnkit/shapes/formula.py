"""(I - F + 2P)/S + 1 along one axis: the count, the formula written out, the rule that decides
whether a non-whole result may be rounded down (:func:`lost_rows`), what is wrong when it may
not, and the nearest fixes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cnnkit.errors import ShapeError
from cnnkit.shapes.search import (
    nearest_divisor,
    nearest_in_progression,
    nearest_symmetric_padding,
)

ROUNDINGS = ("strict", "floor")
LETTERS = {"kernel_size": "F", "stride": "S", "padding": "P"}

Padding = int | tuple[int, int]


def padding_sides(padding: Padding) -> tuple[int, int]:
    """``P`` -> ``(P, P)``; a ``(before, after)`` pair stays as it is."""
    if isinstance(padding, tuple):
        return padding
    return (padding, padding)


def units(size: int, kernel: int, stride: int = 1, padding: Padding = 0) -> int:
    """floor((I - F + P_before + P_after)/S) + 1: how many windows fit along one axis (the
    count every layer and engine uses once a configuration has been accepted).

    >>> units(10, 3, 2)
    4
    """
    if type(padding) is int:  # the engines ask on every call: no helper calls here
        return (size + 2 * padding - kernel) // stride + 1
    before, after = padding
    return (size + before + after - kernel) // stride + 1


def span(kernel: int, dilation: int = 1) -> int:
    """The input extent of a window of ``kernel`` taps ``dilation`` apart: d(F - 1) + 1."""
    return dilation * (kernel - 1) + 1


def ceil_units(size: int, extent: int, stride: int, before: int, after: int) -> int:
    """PyTorch's ``ceil_mode`` count: ceil((I + 2P - F)/S) + 1, less one when that last window
    would start at or beyond I + P (past the input and its left padding), for a window
    spanning ``extent`` inputs. May be 0 or less: then not even one window fits.

    >>> ceil_units(7, 3, 2, 0, 0), ceil_units(6, 3, 2, 1, 1), ceil_units(5, 2, 2, 1, 1)
    (3, 4, 3)
    """
    count = -(-(size + before + after - extent) // stride) + 1
    if (count - 1) * stride >= size + before:
        count -= 1
    return count


def lost_rows(size: int, extent: int, stride: int, before: int, after: int) -> int:
    """The rule of ``rounding="strict"``: how many rows (or columns) of real input rounding
    down leaves unread although a further window would have read them; 0 accepts.

    With r = (I + P_before + P_after - F) mod S rows left over after the last window (F the
    window's span), rounding down is harmless when those rows are only padding (r <= P_after:
    as if padded P_before before and P_after - r after) or lie in the gap that a stride larger
    than the window skips after every window anyway (r - P_after <= S - F). A window larger
    than the padded input is another matter (see :func:`axis_problem`).

    >>> lost_rows(32, 3, 2, 1, 1), lost_rows(32, 1, 2, 0, 0), lost_rows(10, 3, 2, 0, 0)
    (0, 0, 1)
    """
    left = (size + before + after - extent) % stride
    return max(0, left - after - max(0, stride - extent))


def formula(
    size: int,
    kernel: int,
    stride: int,
    padding: Padding,
    dilation: int = 1,
    *,
    ceil: bool = False,
) -> str:
    """The formula with the numbers in: ``(10 - 3 + 2*0)/2 + 1``.

    Asymmetric padding (``(before, after)``, as from ``padding="same"`` with an even filter) is
    written ``(8 - 4 + 1 + 2)/1 + 1``. A dilated window (taps ``dilation`` apart) spans
    d(F - 1) + 1 inputs: ``(32 + 2*2 - 2*(3 - 1) - 1)/1 + 1``, PyTorch's
    (I + 2P - d(F - 1) - 1)/S + 1. ``ceil`` (pooling's ``ceil_mode``) rounds the quotient up:
    ``ceil((7 - 3 + 2*0)/2) + 1``.
    """
    before, after = padding_sides(padding)
    pad_text = f"2*{before}" if before == after else f"{before} + {after}"
    if dilation != 1:
        quotient = f"({size} + {pad_text} - {dilation}*({kernel} - 1) - 1)/{stride}"
    else:
        quotient = f"({size} - {kernel} + {pad_text})/{stride}"
    return f"ceil({quotient}) + 1" if ceil else f"{quotient} + 1"


def exact_text(span: int, stride: int) -> str:
    """span/S + 1 written exactly enough to see whether it is whole: ``4.5``, ``2.333``; beyond
    a float's sure digits the remainder as a fraction, ``1000000000003 + 1/2``.

    >>> exact_text(7, 2), exact_text(2 * 10**12 + 5, 2), exact_text(1, 10**5)
    ('4.5', '1000000000003 + 1/2', '1 + 1/100000')
    """
    whole, rest = divmod(span, stride)
    if rest == 0:
        return str(whole + 1)
    if abs(span) < 10**6 and stride < 10**6:
        text = f"{span / stride + 1:.4g}"
        if "." in text and "e" not in text:  # 1.99999 rounds to "2": never shown as whole
            return text
    return f"{whole + 1} + {rest}/{stride}"


@dataclass(frozen=True)
class Fix:
    """One change of one hyperparameter that makes an axis feasible: ``stride=1 (-> 8)``."""

    name: str  # "padding", "stride" or "kernel_size"
    value: int
    output: int


@dataclass(frozen=True)
class AxisProblem:
    """Why one axis (height or width) of one layer does not fit, with the arithmetic and fixes."""

    axis: str
    size: int
    kernel: int
    stride: int
    padding: tuple[int, int]
    window: str = "filter"
    fixes: tuple[Fix, ...] = field(default=())
    dilation: int = 1

    @property
    def padded_size(self) -> int:
        return self.size + sum(self.padding)

    @property
    def span(self) -> int:
        """The input extent of one window: d(F - 1) + 1 (F when not dilated)."""
        return span(self.kernel, self.dilation)

    @property
    def too_large(self) -> bool:
        """The window does not fit into the padded input even once."""
        return self.span > self.padded_size

    @property
    def exact(self) -> float:
        return (self.padded_size - self.span) / self.stride + 1

    @property
    def exact_text(self) -> str:
        """:attr:`exact` as text that never shows a non-whole number as whole."""
        return exact_text(self.padded_size - self.span, self.stride)

    @property
    def floor_output(self) -> int:
        return (self.padded_size - self.span) // self.stride + 1

    @property
    def dropped(self) -> int:
        """Rows or columns of the padded input that ``rounding="floor"`` never reads."""
        return (self.padded_size - self.span) % self.stride

    def describe(self) -> str:
        """The arithmetic and the verdict, without fixes."""
        if self.too_large:
            before, after = self.padding
            pad_text = f"2*{before}" if before == after else f"{before} + {after}"
            wide = (
                f"{self.kernel}-wide"
                if self.dilation == 1
                else f"{self.kernel}-tap, dilation-{self.dilation} ({self.span}-wide)"
            )
            return (
                f"the {wide} {self.window} is larger than the padded input "
                f"({self.size} + {pad_text} = {self.padded_size})"
            )
        arithmetic = formula(self.size, self.kernel, self.stride, self.padding, self.dilation)
        return f"{arithmetic} = {self.exact_text} is not a whole number"

    def advice(self, *, letters: bool = False) -> str:
        """The fixes, nearest first, in PyTorch's argument names or the lecture's letters."""
        names = LETTERS if letters else {name: name for name in LETTERS}
        options = [f"{names[fix.name]}={fix.value} (-> {fix.output})" for fix in self.fixes]
        if self.too_large:
            return "use " + " or ".join(options) if options else "use a larger input"
        lines = {"height": "row", "width": "column"}.get(self.axis, "row and column")
        if self.dropped > 1:
            lines = {"height": "rows", "width": "columns"}.get(self.axis, "rows and columns")
        floor = (
            f"rounding='floor' (-> {self.floor_output}, never reads the last "
            f"{self.dropped} {lines}, as PyTorch does)"
        )
        if letters:
            floor = floor.replace("rounding='floor'", "--floor")
        if not options:
            return f"use {floor}"
        return "use " + " or ".join(options) + f", or {'' if letters else 'pass '}{floor}"

    def message(self, *, label: bool) -> str:
        prefix = f"{self.axis}: " if label else ""
        return f"{prefix}{self.describe()}; {self.advice()}"


def _fixes(
    size: int,
    kernel: int,
    stride: int,
    padding: tuple[int, int],
    max_padding: int | None,
    dilation: int = 1,
) -> tuple[Fix, ...]:
    """One fix per hyperparameter (the nearest feasible value), changing only that one; found
    by arithmetic (:mod:`cnnkit.shapes.search`), so huge sizes answer as fast as small ones.
    A dilated window is fixed by its padding or stride (a filter size is not offered)."""
    before, after = padding
    fixes: list[Fix] = []
    if dilation != 1:
        return _extent_fixes(size, span(kernel, dilation), stride, padding, max_padding)
    if before == after:
        limit = max(before + stride, kernel) if max_padding is None else max_padding
        best = nearest_symmetric_padding(size, kernel, stride, before, limit)
        if best is not None:
            fixes.append(Fix("padding", best, (size + 2 * best - kernel) // stride + 1))
    padded = size + before + after
    left = padded - kernel
    if left > 0:  # 0 fits any stride: there is nothing to fix
        best = nearest_divisor(left, stride, exclude=stride)
        if best is not None:
            fixes.append(Fix("stride", best, left // best + 1))
    lowest = 1 if max_padding is None else max(1, 2 * max(before, after))
    best = nearest_in_progression(padded % stride, stride, lowest, padded, kernel, exclude=kernel)
    if best is not None:
        fixes.append(Fix("kernel_size", best, (padded - best) // stride + 1))
    return tuple(fixes)


def _extent_fixes(size, extent, stride, padding, max_padding) -> tuple[Fix, ...]:
    """Padding and stride fixes for a window spanning ``extent`` inputs."""
    found = [
        fix
        for fix in _fixes(size, extent, stride, padding, max_padding)
        if fix.name != "kernel_size"
    ]
    return tuple(found)


def axis_problem(
    axis: str,
    size: int,
    kernel: int,
    stride: int,
    padding: Padding,
    *,
    rounding: str = "strict",
    window: str = "filter",
    max_padding: int | None = None,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> AxisProblem | None:
    """Check one axis; ``None`` when it fits, else the problem with its arithmetic and fixes.

    ``rounding="strict"`` accepts what :func:`lost_rows` accepts (a whole number, or rounding
    down that loses no real input), ``"floor"`` any window that fits. ``max_padding`` bounds
    padding fixes (pooling windows allow at most half the window). ``dilation`` spaces the
    window's taps: it then spans d(F - 1) + 1 inputs. ``ceil_mode`` (pooling) counts with
    :func:`ceil_units`, which fits by construction whenever one window starts in the input.
    """
    sides = padding_sides(padding)
    padded = size + sum(sides)
    extent = span(kernel, dilation)
    if ceil_mode:
        if ceil_units(size, extent, stride, *sides) >= 1:
            return None
    elif extent <= padded and (rounding == "floor" or lost_rows(size, extent, stride, *sides) == 0):
        return None
    fixes = _fixes(size, kernel, stride, sides, max_padding, dilation)
    return AxisProblem(axis, size, kernel, stride, sides, window, fixes, dilation)


def output_size(
    size: int, kernel: int, stride: int = 1, padding: Padding = 0, *, rounding: str = "strict"
) -> int:
    """(I - F + 2P)/S + 1 along one axis; raises :class:`ShapeError` where it is impossible.

    ``padding`` is P on each side, or a ``(before, after)`` pair.
    """
    problem = axis_problem("size", size, kernel, stride, padding, rounding=rounding)
    if problem is not None:
        raise ShapeError(problem.message(label=False))
    return units(size, kernel, stride, padding)


def output_hw(
    owner,
    input_hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[Padding, Padding],
    *,
    rounding: str = "strict",
    window: str = "filter",
    max_padding: tuple[int, int] | None = None,
    dilation: tuple[int, int] = (1, 1),
    ceil_mode: bool = False,
) -> tuple[int, int]:
    """Output (height, width) of a window sliding over ``input_hw``, or one :class:`ShapeError`.

    ``owner`` names the layer in the message, e.g. ``Conv2d(3, 16, kernel_size=3, stride=2)``
    (a string, or the layer itself, whose repr is then built only for an error).
    When both axes fail the same way the message says it once; otherwise it labels each axis.
    """
    problems = []
    for index, axis in enumerate(("height", "width")):
        problem = axis_problem(
            axis,
            input_hw[index],
            kernel[index],
            stride[index],
            padding[index],
            rounding=rounding,
            window=window,
            max_padding=None if max_padding is None else max_padding[index],
            dilation=dilation[index],
            ceil_mode=ceil_mode,
        )
        if problem is not None:
            problems.append(problem)
    if problems:
        same = len(problems) == 2 and replace(problems[0], axis="") == replace(problems[1], axis="")
        shown = [replace(problems[0], axis="both")] if same else problems
        text = "; ".join(p.message(label=not same) for p in shown)
        error = ShapeError(f"{owner}: {text}")
        error.problems = tuple(problems)
        raise error
    extents = [span(kernel[i], dilation[i]) for i in range(2)]
    if ceil_mode:
        return tuple(  # type: ignore[return-value]
            ceil_units(input_hw[i], extents[i], stride[i], *padding_sides(padding[i]))
            for i in range(2)
        )
    return tuple(  # type: ignore[return-value]
        units(input_hw[i], extents[i], stride[i], padding[i]) for i in range(2)
    )


def conv_parameter_count(
    in_channels: int, out_channels: int, kernel: tuple[int, int], bias: bool = True
) -> int:
    """Parameters with sharing: D*(F*F*C + 1). AlexNet conv1: 96*(11*11*3 + 1) = 34,944."""
    return out_channels * (in_channels * kernel[0] * kernel[1] + int(bias))


def unshared_parameter_count(
    in_channels: int,
    out_channels: int,
    kernel: tuple[int, int],
    output_hw: tuple[int, int],
    bias: bool = True,
) -> int:
    """Parameters if every unit had its own filter: OH*OW*D*(F*F*C + 1) (105,705,600 for conv1)."""
    units = output_hw[0] * output_hw[1]
    return units * conv_parameter_count(in_channels, out_channels, kernel, bias)
