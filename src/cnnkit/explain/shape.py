"""``explain shape``: (I - F + 2P)/S + 1 step by step, with the verdict of ``cnnkit shape``.

A result that is not whole is possible when rounding it down loses no real input (the rule of
:func:`cnnkit.shapes.lost_rows`): ResNet's 3x3 stride-2 convolution with P=1 on 32 rows gives
(32 - 3 + 2*1)/2 + 1 = 16.5 -> 16, and only the last padding row goes unread."""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit import shapes
from cnnkit.display import TextDisplay
from cnnkit.errors import ConfigError
from cnnkit.nn.checks import positive_int


@dataclass(frozen=True, repr=False)
class ShapeExplanation(TextDisplay):
    """(I - F + 2P)/S + 1 evaluated step by step, with the verdict of ``cnnkit shape``."""

    size: int
    kernel: int
    stride: int
    padding: int
    floor: bool
    problem: shapes.AxisProblem | None
    dilation: int = 1  # taps d apart: the window spans d(F - 1) + 1 inputs
    ceil: bool = False  # ceil_mode: round up, as PyTorch's pools can

    @property
    def extent(self) -> int:
        return shapes.span(self.kernel, self.dilation)

    @property
    def formula(self) -> str:
        text = shapes.formula(self.size, self.kernel, self.stride, self.padding, self.dilation)
        return f"ceil({text.removesuffix(' + 1')}) + 1" if self.ceil else text

    @property
    def span(self) -> int:
        return self.size + 2 * self.padding - self.extent

    @property
    def exact(self) -> float:
        return self.span / self.stride + 1

    @property
    def possible(self) -> bool:
        if self.ceil:
            return self.span >= 0
        return self.problem is None or (self.floor and not self.problem.too_large)

    @property
    def output(self) -> int | None:
        if not self.possible:
            return None
        if self.ceil:
            p = self.padding
            return shapes.ceil_units(self.size, self.extent, self.stride, p, p)
        return self.span // self.stride + 1

    @property
    def count(self) -> int:
        """How many windows fit."""
        return self.span // self.stride + 1 if self.span >= 0 else 0

    @property
    def positions(self) -> list[int]:
        """The first padded pixel of every window that fits (the first 64, and the last)."""
        if self.span < 0:
            return []
        first = list(range(0, min(self.span, 63 * self.stride) + 1, self.stride))
        last = (self.count - 1) * self.stride
        return first if first[-1] == last else [*first, last]

    @property
    def unread(self) -> int:
        return self.span % self.stride if self.span >= 0 else 0

    @property
    def note(self) -> str | None:
        """Which padded rows rounding down never reads, and why that loses nothing (only
        padding, or no more than the gap a stride larger than F skips), or None."""
        p = self.padding
        return shapes.unread_note("rows", self.size, self.extent, self.stride, p, p)

    def _ceil_or_lost_text(self) -> str:
        """What ceil_mode's extra window reads, or what strict would lose by rounding down."""
        if not self.ceil:
            return self._lost_text()
        extra = (self.output or 0) - self.count
        if extra <= 0:
            return ""
        return (
            f"; ceil_mode adds a window at pixel {self.count * self.stride}, which reads them "
            "(what it covers past the padded input holds nothing)"
        )

    def _lost_text(self) -> str:
        """Why strict refuses a result it may not round down: the real input it would lose."""
        p = self.padding
        lost = shapes.lost_rows(self.size, self.extent, self.stride, p, p)
        if not lost or self.span < 0:
            return ""
        them = "it is input" if self.unread == 1 else f"{lost} of them input"
        return f" ({them} that one more window would read)"

    def verdict(self) -> tuple[str, str | None]:
        """The lines ``cnnkit shape`` prints: the verdict, and the advice when impossible."""
        problem = self.problem
        if self.ceil and self.possible:
            n = self.output
            units = f"{n} unit{'s' if n != 1 else ''}"
            return (
                f"{self.formula} = {n}: possible, {units} along this axis (ceil_mode rounds up "
                "as PyTorch does; a last window that would start past the input is dropped)",
                None,
            )
        if problem is None:
            n = self.output
            if not self.unread:
                units = f"{n} unit{'s' if n != 1 else ''}"
                return f"{self.formula} = {n}: possible, {units} along this axis", None
            exact = shapes.exact_text(self.span, self.stride)
            return (
                f"{self.formula} = {exact} -> {n}: possible, {n} units along this axis; "
                f"{self.note}",
                None,
            )
        if self.floor and not problem.too_large:
            return (
                f"{self.formula} = {problem.exact_text} -> floor "
                f"{problem.floor_output} (as PyTorch): the last {problem.dropped} of the "
                f"{problem.padded_size} padded input positions are never read",
                None,
            )
        return f"{problem.describe()}: impossible", problem.advice(letters=True)

    def to_dict(self) -> dict:
        verdict, advice = self.verdict()
        fixes = self.problem.fixes if self.problem is not None else ()
        return {
            "schema": "cnnkit.explain.shape/2",
            "I": self.size,
            "F": self.kernel,
            "S": self.stride,
            "P": self.padding,
            "dilation": self.dilation,
            "ceil": self.ceil,
            "formula": self.formula,
            "span": self.span,
            "exact": self.exact,
            "possible": self.possible,
            "output": self.output,
            "floor": self.floor,
            "positions": self.positions[:64],
            "unread": self.unread,
            "note": self.note,
            "verdict": verdict,
            "advice": advice,
            "fixes": [
                {"letter": shapes.LETTERS[fix.name], "value": fix.value, "output": fix.output}
                for fix in fixes
            ],
        }

    def text(self) -> str:
        i, f, s, p = self.size, self.kernel, self.stride, self.padding
        lead = "units along one axis = "
        pad = " " * (len(lead) - 2)
        general = "(I - F + 2P)/S + 1"
        given = f"I={i}, F={f}, S={s}, P={p}"
        if self.dilation != 1:
            general, given = "(I + 2P - d(F - 1) - 1)/S + 1", f"{given}, dilation d={self.dilation}"
        if self.ceil:
            general = f"ceil({general.removesuffix(' + 1')}) + 1"
        lines = [
            f"{lead}{general}   with {given}",
            f"{pad}= {self.formula}",
            f"{pad}= {self.span}/{s} + 1",
            f"{pad}= {shapes.exact_text(self.span, s)}",
        ]
        if self.ceil and self.possible:
            lines[-2:] = [f"{pad}= ceil({self.span}/{s}) + 1", f"{pad}= {self.output}"]
        padded = i + 2 * p
        if self.span >= 0:
            starts, count = self.positions, self.count
            shown = (
                ", ".join(map(str, starts))
                if count <= 8
                else (f"{starts[0]}, {starts[1]}, ..., {starts[-1]}")
            )
            last = starts[-1] + self.extent - 1
            wide = f"{f}-wide" if self.dilation == 1 else f"{f}-tap ({self.extent}-wide)"
            if self.unread:
                read = f": the last {self.unread} {'is' if self.unread == 1 else 'are'} never read"
            elif s > self.extent and count > 1:
                gap = s - self.extent
                pixels = (
                    "pixel after each window is" if gap == 1 else "pixels after each window are"
                )
                read = f": the {gap} {pixels} skipped (S is larger than the window)"
            else:
                read = ": every pixel is read" if self.dilation == 1 else ""
            lines.append(
                f"the {wide} filter starts at padded pixels {shown} ({count:,} "
                f"position{'s' if count > 1 else ''}, S={s} apart) and reads up to "
                f"pixel {last} of 0..{padded - 1}" + read + self._ceil_or_lost_text()
            )
        verdict, advice = self.verdict()
        lines.append(verdict)
        if advice is not None:
            lines.append(advice)
        return "\n".join(lines)


def explain_shape(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    *,
    floor=False,
    dilation: int = 1,
    ceil: bool = False,
):
    """:class:`ShapeExplanation` of one axis: I=size, F=kernel, S=stride, P=padding, taps
    ``dilation`` apart; ``ceil`` rounds up as a pool's ``ceil_mode`` does."""
    where = "explain shape"
    size = positive_int(where, "I", size)
    kernel = positive_int(where, "F", kernel)
    stride = positive_int(where, "S", stride)
    padding = positive_int(where, "P", padding, minimum=0)
    dilation = positive_int(where, "dilation", dilation)
    if floor and ceil:
        raise ConfigError(f"{where}: give --floor or --ceil, not both (down or up)")
    problem = shapes.axis_problem("size", size, kernel, stride, padding, dilation=dilation)
    return ShapeExplanation(
        size, kernel, stride, padding, bool(floor), problem, dilation, bool(ceil)
    )
