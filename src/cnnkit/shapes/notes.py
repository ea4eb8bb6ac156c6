"""What a window leaves unread, or reads past, along one axis: the sentences the summary,
``cnnkit shape`` and ``explain shape`` add to the arithmetic.

Rows are named by their index in the padded input (0..I + 2P - 1), as in the formula.

>>> unread_note("rows", 32, 3, 2, 1, 1)
'the last padding row (33 of 0..33) is never read: the same as padding 1 before and 0 after'
>>> ceil_note("rows", 6, 3, 2, 1, 1)[:57]
'ceil: the last window covers padded rows 6..8 (of 0..7): '
"""

from __future__ import annotations

from cnnkit.shapes.formula import ceil_units, lost_rows

SINGULAR = {"rows": "row", "columns": "column", "positions": "position"}


def _range(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}..{last}"


def _lines(words: str, count: int) -> str:
    """``row``, ``2 rows``."""
    return SINGULAR.get(words, words) if count == 1 else f"{count} {words}"


def _count(words: str, count: int) -> str:
    """``1 row``, ``2 rows``."""
    return f"{count} {SINGULAR.get(words, words) if count == 1 else words}"


def unread_note(
    words: str, size: int, extent: int, stride: int, before: int, after: int
) -> str | None:
    """The padded rows (``words``: "rows", "columns") after the last window that rounding down
    never reads, and why that loses nothing (:func:`~cnnkit.shapes.formula.lost_rows` is 0),
    or, where it loses input, which rows ``rounding="floor"`` drops; None when nothing is left
    over."""
    padded = size + before + after
    if padded < extent or (padded - extent) % stride == 0:
        return None
    left = (padded - extent) % stride
    first, last = padded - left, padded - 1
    where = f"{_range(first, last)} of 0..{last}"
    verb = "is" if left == 1 else "are"
    if lost_rows(size, extent, stride, before, after):
        return f"floor: padded {words} {_range(first, last)} (of 0..{last}) are never read"
    padding = min(left, after)
    real = left - padding
    if real == 0:
        which = "the last padding " + _lines(words, 1) if left == 1 else f"the last {left} padding"
        which += "" if left == 1 else f" {words}"
        return (
            f"{which} ({where}) {verb} never read: the same as padding {before} before and "
            f"{after - left} after"
        )
    if padding == 0:
        which = f"the last input {_lines(words, 1)}" if real == 1 else f"the last {real} input"
        which += "" if real == 1 else f" {words}"
    else:
        which = f"the last {left} padded {words}"
        where += f": {_count(words, real)} of input, {_count(words, padding)} of padding"
    gap = stride - extent
    return (
        f"{which} ({where}) {verb} never read, no more than the {_lines(words, gap)} S={stride} "
        f"skips after every {extent}-wide window anyway"
    )


def ceil_note(
    words: str, size: int, extent: int, stride: int, before: int, after: int
) -> str | None:
    """``ceil_mode``: where the last window runs past the padded input, which rows it covers
    (nothing is read there: max pooling never picks them, average pooling does not count
    them); None when it does not."""
    count = ceil_units(size, extent, stride, before, after)
    start = (count - 1) * stride
    end, last = start + extent - 1, size + before + after - 1
    if count < 1 or end <= last:
        return None
    return (
        f"ceil: the last window covers padded {words} {start}..{end} (of 0..{last}): "
        f"{end - last} past the input and its padding, where nothing is read"
    )
