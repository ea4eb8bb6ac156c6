"""The lecture's arithmetic, in one place: how many computational units fit, and what they cost.

Number of units along one axis = (I - F + 2P)/S + 1 for input size I, filter (window) size F,
zero padding P on each side and stride S. Every layer's ``forward`` and ``output_shape`` use
:func:`output_size` below, so shapes known without data are the shapes the data gets.

Strict by default: a configuration where the formula is not a whole number is refused with the
arithmetic and the nearest fixes, as the lecture says ("some configurations are impossible").
``rounding="floor"`` instead rounds down as PyTorch does, and the last input rows are never read.

>>> output_size(227, 11, stride=4, padding=0)
55
>>> formula(10, 3, 2, 0)
'(10 - 3 + 2*0)/2 + 1'
"""

from cnnkit.shapes.formula import (
    LETTERS,
    ROUNDINGS,
    AxisProblem,
    Fix,
    Padding,
    axis_problem,
    conv_parameter_count,
    exact_text,
    formula,
    output_hw,
    output_size,
    padding_sides,
    span,
    units,
    unshared_parameter_count,
)
from cnnkit.shapes.search import Solution, solutions
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
    "conv_parameter_count",
    "exact_text",
    "formula",
    "output_hw",
    "output_size",
    "padding_sides",
    "solutions",
    "span",
    "units",
    "unshared_parameter_count",
]
