"""The lecture's arithmetic, in one place: how many computational units fit, and what they cost.

Number of units along one axis = (I - F + 2P)/S + 1 for input size I, filter (window) size F,
zero padding P on each side and stride S. Every layer's ``forward`` and ``output_shape`` use
:func:`output_size` below, so shapes known without data are the shapes the data gets.

Strict by default: a configuration where the formula is not a whole number and rounding down
would lose real input is refused with the arithmetic and the nearest fixes, as the lecture says
("some configurations are impossible"): (10 - 3 + 2*0)/2 + 1 = 4.5 would never read input row 9.
Rounding down that loses only padding, or only rows in the gap a stride larger than the window
skips anyway, is accepted (:func:`lost_rows`): ResNet's (32 - 3 + 2*1)/2 + 1 = 16.5 -> 16 leaves
only the last padding row unread, the same as padding 1 before and 0 after.
``rounding="floor"`` rounds down whatever it loses, as PyTorch does; pooling's ``ceil_mode``
rounds up (:func:`ceil_units`).

>>> output_size(227, 11, stride=4, padding=0)
55
>>> formula(10, 3, 2, 0)
'(10 - 3 + 2*0)/2 + 1'
>>> output_size(32, 3, stride=2, padding=1)
16
"""

from cnnkit.shapes.formula import (
    LETTERS,
    ROUNDINGS,
    AxisProblem,
    Fix,
    Padding,
    axis_problem,
    ceil_units,
    conv_parameter_count,
    exact_text,
    formula,
    lost_rows,
    output_hw,
    output_size,
    padding_sides,
    span,
    units,
    unshared_parameter_count,
)
from cnnkit.shapes.notes import ceil_note, unread_note
from cnnkit.shapes.ways import Solution, solutions
from cnnkit.shapes.window import Field, Pair, Sides, Window

__all__ = [
    "LETTERS",
    "ROUNDINGS",
    "AxisProblem",
    "Field",
    "Fix",
    "Padding",
    "Pair",
    "Sides",
    "Solution",
    "Window",
    "axis_problem",
    "ceil_note",
    "ceil_units",
    "conv_parameter_count",
    "exact_text",
    "formula",
    "lost_rows",
    "output_hw",
    "output_size",
    "padding_sides",
    "solutions",
    "span",
    "units",
    "unread_note",
    "unshared_parameter_count",
]
