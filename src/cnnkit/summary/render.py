"""The summary as text: the plain table (``cnnkit summary``) and Markdown."""

from __future__ import annotations

import textwrap


def human_bytes(count: int) -> str:
    """``512 B``, ``1.1 MiB``: binary units with one decimal."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def _pair(pair) -> str:
    if pair is None:
        return "all"
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def _shape_text(shape) -> str:
    return "x".join(map(str, shape))


# (heading, right-aligned?) for the first line of each row
_COLUMNS = (
    ("#", True),
    ("layer", False),
    ("output", False),
    ("params", True),
    ("MACs", True),
    ("out/ex", True),
    ("keep/ex", True),
    ("RF/jump", True),
)
_GAP = "  "
_LEGEND = (
    "output: HxWxD. MACs: multiply-adds per example. out/ex: bytes of the layer's new output "
    "per example; keep/ex: what it keeps for backward per example. RF/jump: receptive field on "
    "the input and the input distance between neighbouring units ('all' after an FC)."
)


def layer_cell(row) -> str:
    """The layer's text; a layer whose branches follow as rows is shown by its branches'
    names (``RES[body | shortcut]``), and a row inside a branch indented under it, led by its
    place (``body.0``)."""
    if row.branches:
        return f"{row.kind}[{' | '.join(row.branches)}]"
    if row.depth:
        place = ".".join(row.path.split(".")[-2:])
        return f"{'  ' * row.depth}{place} {row.layer}"
    return row.layer


def _main_cells(row) -> list[str]:
    rf = "all" if row.receptive_field is None else f"{_pair(row.receptive_field)}/"
    rf += "" if row.jump is None else _pair(row.jump)
    return [
        "" if row.depth else str(row.index),
        layer_cell(row),
        row.output,
        f"{row.params:,}",
        f"{row.macs:,}",
        _output_bytes(row),
        _kept(row, short=True),
        rf,
    ]


def _output_bytes(row) -> str:
    """A layer whose output is a view of its input takes no new memory."""
    return human_bytes(row.activation_bytes) if row.activation_bytes else "view"


def _kept(row, *, short: bool = False) -> str:
    if row.cache_bytes is None:
        return "?"
    if short and not row.cache_bytes:
        return "0"
    return human_bytes(row.cache_bytes)


def _detail_parts(row, previous_shape) -> list[str]:
    """Second-line facts: the formula, NCHW (where the shape changes), sharing and
    connections, notes."""
    parts = [row.formula] if row.formula else []
    if row.formula or row.params or row.shared_params or row.output_shape != previous_shape:
        label = "NCHW" if len(row.output_shape) == 4 else "NF"
        parts.append(f"{label} {_shape_text(row.output_shape)}")
    if row.buffers:
        parts.append(f"non-trainable {row.buffers:,}")
    if row.unshared_params != row.params + row.shared_params:
        parts.append(f"without sharing {row.unshared_params:,}")
    if row.fc_connections is not None and row.fc_connections != row.connections:
        parts.append(f"inputs/unit {row.connections:,} (FC: {row.fc_connections:,})")
    elif row.connections > 1:
        parts.append(f"inputs/unit {row.connections:,}")
    return parts + list(row.notes)


def _pack(parts: list[str], indent: int, width: int) -> list[str]:
    """Join parts with '; ' into lines of at most ``width`` columns, each starting at ``indent``."""
    lines: list[str] = []
    current = ""
    room = max(width - indent, 20)
    for part in parts:
        candidate = f"{current}; {part}" if current else part
        if len(candidate) <= room:
            current = candidate
            continue
        if current:
            lines.append(current)
        pieces = textwrap.wrap(part, room, subsequent_indent="  ") or [""]
        lines.extend(pieces[:-1])
        current = pieces[-1]
    if current:
        lines.append(current)
    return [" " * indent + line for line in lines]


def _wrap_layer(text: str, size: int) -> list[str]:
    """Fit a layer's text into ``size`` columns: drop the spaces after commas, then break
    after commas (continuation lines start with one space)."""
    if len(text) <= size:
        return [text]
    pieces = [piece + "," for piece in _split_arguments(text)]
    pieces[-1] = pieces[-1][:-1]
    lines = [""]
    for piece in pieces:
        if lines[-1].strip() and len(lines[-1]) + len(piece) > size:
            lines.append(" ")
        lines[-1] += piece
    return lines


def _split_arguments(text: str) -> list[str]:
    """``text`` cut at the commas between arguments (and the space after them), never inside
    quoted text, which stays exactly as written."""
    pieces, start, quote, i = [], 0, None, 0
    while i < len(text):
        char = text[i]
        if quote is not None:
            if char == "\\":
                i += 1  # an escaped character, whatever it is
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == ",":
            pieces.append(text[start:i])
            start = i + 1 + (text[i + 1 : i + 2] == " ")
        i += 1
    return [*pieces, text[start:]]


def _widths(cells: list[list[str]], width: int) -> list[int]:
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _) in enumerate(_COLUMNS)]
    others = sum(widths) - widths[1] + len(_GAP) * (len(_COLUMNS) - 1)
    widths[1] = max(min(widths[1], width - others), len("layer"), 12)
    return widths


def _format_line(cells: list[str], widths: list[int]) -> str:
    shown = [
        cell.rjust(size) if right else cell.ljust(size)
        for cell, size, (_, right) in zip(cells, widths, _COLUMNS, strict=True)
    ]
    return _GAP.join(shown).rstrip()


def _row_lines(row, cells: list[str], widths: list[int], width: int, previous) -> list[str]:
    layer_lines = _wrap_layer(cells[1], widths[1])
    lines = [_format_line([cells[0], layer_lines[0], *cells[2:]], widths)]
    blank = [""] * len(_COLUMNS)
    for extra in layer_lines[1:]:
        extra = "  " * row.depth + extra
        lines.append(_format_line([*blank[:1], extra, *blank[2:]], widths))
    indent = widths[0] + len(_GAP) + 2 * row.depth
    return lines + _pack(_detail_parts(row, previous), indent + 2, width)


def table(summary, width: int) -> str:
    cells = [_main_cells(row) for row in summary.rows]
    widths = _widths(cells, width)
    c, h, w = summary.input_shape
    head = (
        f"INPUT {h}x{w}x{c} (NCHW {summary.batch}x{c}x{h}x{w}), batch {summary.batch}, "
        f"{summary.dtype_name}"
    )
    lines = textwrap.wrap(head, width)
    header = _format_line([name for name, _ in _COLUMNS], widths)
    rule = "-" * min(width, max(len(header), 40))
    lines += [rule, header, rule]
    previous = (summary.batch, c, h, w)
    for row, row_cells in zip(summary.rows, cells, strict=True):
        lines += _row_lines(row, row_cells, widths, width, previous)
        previous = row.output_shape
    lines.append(rule)
    label_size = max(len(label) for label, _ in summary.total_lines())
    for label, text in summary.total_lines():
        lines += textwrap.wrap(
            f"{label.ljust(label_size)}  {text}", width, subsequent_indent=" " * (label_size + 2)
        )
    lines.append(rule)
    lines += textwrap.wrap(_LEGEND, width)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Markdown

_MD_HEAD = (
    "| # | layer | output (HxWxD) | NCHW | formula | params | without sharing | inputs/unit "
    "| FC inputs/unit | MACs | output bytes | kept for backward | RF | jump | notes |"
)


def _markdown_row(row) -> str:
    fc = "" if row.fc_connections is None else f"{row.fc_connections:,}"
    cells = [
        "" if row.depth else str(row.index),
        f"`{layer_cell(row)}`",
        row.output,
        _shape_text(row.output_shape),
        f"`{row.formula}`" if row.formula else "",
        f"{row.params:,}",
        f"{row.unshared_params:,}",
        f"{row.connections:,}",
        fc,
        f"{row.macs:,}",
        _output_bytes(row),
        _kept(row),
        _pair(row.receptive_field),
        "" if row.jump is None else _pair(row.jump),
        "; ".join(row.notes),
    ]
    return "| " + " | ".join(cells) + " |"


def markdown(summary) -> str:
    c, h, w = summary.input_shape
    lines = [
        f"`{summary.architecture}`",
        "",
        f"Input {h}x{w}x{c}, batch {summary.batch}, {summary.dtype_name}; per example except "
        "NCHW and the totals.",
        "",
        _MD_HEAD,
        "|" + "---|" * _MD_HEAD.count(" | ") + "---|",
    ]
    lines += [_markdown_row(row) for row in summary.rows]
    lines.append("")
    lines += [f"- **{label}**: {text}" for label, text in summary.total_lines()]
    return "\n".join(lines) + "\n"
