"""cnnkit's errors: one base class, so the CLI and users can catch every cnnkit error at once.

Messages follow one template: where (the layer), what is wrong, what was expected, what was
received, and a fix. Inside a ``Sequential`` the layer's index comes first
(``layer 3 Conv2d(...)``).
"""

from __future__ import annotations

import copy


class CnnkitError(Exception):
    """Base class of every error cnnkit raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.where: tuple[int, ...] = ()

    def located(self, index: int) -> CnnkitError:
        """A copy whose message starts with ``layer {index}`` (nested: ``layer 1.3``)."""
        clone = copy.copy(self)
        clone.where = (index, *self.where)
        clone.args = (f"layer {'.'.join(map(str, clone.where))} {self.message}",)
        return clone

    def __str__(self) -> str:
        return str(self.args[0])


class ShapeError(CnnkitError, ValueError):
    """Sizes that do not fit: (I - F + 2P)/S + 1 is not whole, channels differ, and so on."""


class ConfigError(CnnkitError, ValueError):
    """A hyperparameter with an impossible value (stride 0, an unknown padding mode)."""


class DTypeError(CnnkitError, TypeError):
    """An argument of the wrong type or dtype (integer images, float64 input to a float32 layer)."""


class StateError(CnnkitError, RuntimeError):
    """A call in the wrong order, such as ``backward()`` before ``forward()``."""


class DataError(CnnkitError, ValueError):
    """A data file or array that cannot be read as what it claims to be."""


class TrainingError(CnnkitError, RuntimeError):
    """Training cannot go on: the loss became NaN/Inf, or a run directory is in the way."""


class WriteError(CnnkitError, OSError):
    """A file could not be written (a full disk, no permission): nothing was replaced."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno
