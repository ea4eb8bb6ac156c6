"""Text formatting shared by the explanations: numbers, sums, grids and blocks side by side."""

from __future__ import annotations

import numpy as np

from cnnkit.errors import ShapeError

MAX_PRINT_SIDE = 12  # padded input height/width that still prints as a readable grid
MAX_PRINT_CHANNELS = 4
MAX_PRINT_UNITS = 49
LINE = 100  # printed lines stay within this many characters where they can


def _num(value) -> str:
    """``3``, ``-1``, ``0.25``: whole numbers without a decimal point, others to 4 digits, or
    to every digit where 4 would show a fraction as whole (``1.00001``, ``500000000000.5``)."""
    value = float(value)
    if not np.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))  # also turns -0.0 into 0
    text = f"{value:.4g}"
    if value != int(value) and float(text) == int(float(text)):
        return repr(value)
    return text


def _factor(value) -> str:
    """A number as a factor of a product: negatives in parentheses, ``1*(-1)``."""
    text = _num(value)
    return f"({text})" if text.startswith("-") else text


def _sum_text(values) -> str:
    """``1 + 2 - 3``: the terms of a sum as a reader writes them."""
    parts = []
    for index, value in enumerate(values):
        text = _num(value)
        if index == 0:
            parts.append(text)
        elif text.startswith("-"):
            parts.append(f"- {text[1:]}")
        else:
            parts.append(f"+ {text}")
    return " ".join(parts)


def _article(text: str) -> str:
    """``a 3x3`` but ``an 11x11`` and ``an 8x8``."""
    spoken_vowel = text.startswith("8") or text in ("11", "18") or text.startswith(("11", "18"))
    return "an" if spoken_vowel and not text.startswith(("110", "180")) else "a"


def _thousands(value: int) -> str:
    return f"{value:,}"


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def _grid(values, width: int | None = None) -> list[str]:
    """Rows of right-aligned entries; ``values`` holds numbers or ready-made strings."""
    texts = [[v if isinstance(v, str) else _num(v) for v in row] for row in values]
    if width is None:
        width = max(2, *(len(text) for row in texts for text in row))
    return [" ".join(text.rjust(width) for text in row) for row in texts]


def _width(*arrays) -> int:
    return max(2, *(len(_num(v)) for array in arrays for v in np.asarray(array).flat))


def _side_by_side(blocks: list[tuple[str, list[str]]], gap: int = 4) -> list[str]:
    """Titled blocks next to each other, starting a new row of blocks past :data:`LINE`."""

    def width(block) -> int:
        title, body = block
        return max(len(title), *(len(line) for line in body))

    rows: list[list[tuple[str, list[str]]]] = [[]]
    used = 0
    for block in blocks:
        if rows[-1] and used + gap + width(block) > LINE:
            rows.append([])
            used = 0
        used += width(block) + (gap if rows[-1] else 0)
        rows[-1].append(block)
    lines: list[str] = []
    for row in rows:
        if lines:
            lines.append("")
        height = 1 + max(len(body) for _, body in row)
        for k in range(height):
            cells = []
            for block in row:
                title, body = block
                cell = title if k == 0 else (body[k - 1] if k - 1 < len(body) else "")
                cells.append(cell.ljust(width(block)))
            lines.append((" " * gap).join(cells).rstrip())
    return lines


def _span(letter: str, stride: int, size: int) -> str:
    """``2i:2i+3`` (or ``i:i+3`` at stride 1): the slice unit ``i`` reads."""
    start = letter if stride == 1 else f"{stride}{letter}"
    return f"{start}:{start}+{size}"


def _offset(letter: str, stride: int, offset: int) -> str:
    """``2p+1``, ``p``: where unit ``p`` meets filter position ``offset``."""
    start = letter if stride == 1 else f"{stride}{letter}"
    return start if offset == 0 else f"{start}+{offset}"


def _pair_text(pair) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def _check_printable(where: str, padded_hw, channels: int, output_hw, *, png: bool) -> None:
    """Refuse a printout too large to read, pointing at ``--png`` where there is one."""
    picture = ", or --png FILE for a picture" if png else ""
    ph, pw = padded_hw
    if max(ph, pw) > MAX_PRINT_SIDE:
        raise ShapeError(
            f"{where}: the zero-padded input is {ph}x{pw}, too large to print (at most "
            f"{MAX_PRINT_SIDE}x{MAX_PRINT_SIDE}); use a smaller --input or --padding{picture}"
        )
    if channels > MAX_PRINT_CHANNELS:
        raise ShapeError(
            f"{where}: {channels} channels are too many to print (at most "
            f"{MAX_PRINT_CHANNELS}); use --channels {MAX_PRINT_CHANNELS} or fewer{picture}"
        )
    oh, ow = output_hw
    if oh * ow > MAX_PRINT_UNITS:
        raise ShapeError(
            f"{where}: {oh}x{ow} = {oh * ow} output units are too many to print (at most "
            f"{MAX_PRINT_UNITS}); use a larger --stride or a smaller --input{picture}"
        )
