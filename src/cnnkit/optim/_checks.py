"""Argument checks shared by the optimizers and schedules."""

from __future__ import annotations

import math
import numbers

from cnnkit.backend import is_array
from cnnkit.errors import ConfigError, DTypeError
from cnnkit.nn.parameter import Parameter

# ---------------------------------------------------------------------------------------------
# argument checks


def _number(owner: str, name: str, value, *, low: float = 0.0, below: float | None = None) -> float:
    """A finite real >= ``low`` (and < ``below`` when given), as a Python float.

    Python floats keep float32 arrays float32 in arithmetic; a NumPy float64 scalar would not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DTypeError(f"{owner}: {name} must be a number, got {value!r}")
    value = float(value)
    if below is not None and not low <= value < below:
        raise ConfigError(f"{owner}: {name} must be in [{low:g}, {below:g}), got {value}")
    if not (math.isfinite(value) and value >= low):
        raise ConfigError(f"{owner}: {name} must be a finite number >= {low:g}, got {value}")
    return value


def _integer(owner: str, name: str, value, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DTypeError(f"{owner}: {name} must be an int, got {value!r}")
    if value < low:
        raise ConfigError(f"{owner}: {name} must be >= {low}, got {value}")
    return int(value)


def _flag(owner: str, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise DTypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return value


def _python_scalar(value):
    """A 0-d array or NumPy scalar (as an .npz round trip may give) -> the Python scalar."""
    if is_array(value):
        return value.item() if value.ndim == 0 else value
    return value.item() if hasattr(value, "item") else value


def _parameter_list(owner: str, parameters) -> list[Parameter]:
    parameters = list(parameters)
    if not parameters:
        raise ConfigError(f"{owner}: got no parameters to optimise; pass model.parameters()")
    for index, parameter in enumerate(parameters):
        if not isinstance(parameter, Parameter):
            raise DTypeError(
                f"{owner}: item {index} of parameters is {type(parameter).__name__}, not a "
                "cnnkit Parameter; pass model.parameters()"
            )
    if len({id(parameter) for parameter in parameters}) != len(parameters):
        raise ConfigError(
            f"{owner}: a parameter appears more than once, so it would be updated twice per "
            "step; pass each parameter once"
        )
    return parameters


# ---------------------------------------------------------------------------------------------
# optimizers
