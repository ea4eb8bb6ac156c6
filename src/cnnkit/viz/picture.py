"""The figure every picture is drawn on: matplotlib's ``Figure``, loaded when first needed,
extended to show itself in a notebook; and its PNG bytes."""

from __future__ import annotations

import functools
import io
from pathlib import Path

from cnnkit.errors import ConfigError, DataError

DPI = 100
INSTALL = "pip install cnnkit[viz] (or pip install matplotlib)"


def _figure_class(where: str):
    """matplotlib's ``Figure`` as :func:`_picture_class` extends it, or the ConfigError that
    says how to install it."""
    try:
        import matplotlib  # noqa: F401  (first, so a blocked parent package is noticed)
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(f"{where}: matplotlib is not installed; {INSTALL}") from None
    return _picture_class(Figure)


@functools.cache
def _picture_class(figure_class):
    """A Figure that shows itself in a notebook: Jupyter asks ``_repr_png_`` for the picture,
    with no pyplot and no ``%matplotlib inline`` needed."""

    class Picture(figure_class):
        def _repr_png_(self) -> bytes:
            return figure_png(self)

    Picture.__qualname__ = Picture.__name__ = "Figure"
    return Picture


def png_size(path: str | Path) -> tuple[int, int]:
    """(width, height) in pixels read from a PNG file's header (its IHDR chunk)."""
    head = Path(path).read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise DataError(f"{path}: not a PNG file")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def figure_png(figure) -> bytes:
    """The figure as PNG bytes, at :data:`DPI`, uncropped (so its size is figsize * DPI)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()
