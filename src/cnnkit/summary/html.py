"""The summary as HTML: what a notebook shows for ``model.summary()`` and what the run report
embeds."""

from __future__ import annotations

import html

from cnnkit.display import table
from cnnkit.summary.render import layer_cell

_HEADINGS = [
    "#",
    "layer",
    "output HxWxD",
    "(I - F + 2P)/S + 1",
    "params",
    "multiply-adds",
    "inputs/unit",
    "receptive field",
    "jump",
]


def _cells(row) -> list:
    field, jump = row.receptive_field, row.jump
    return [
        "" if row.depth else row.index,
        layer_cell(row),
        row.output,
        row.formula or "",
        f"{row.params:,}",
        f"{row.macs:,}",
        f"{row.connections:,}",
        "all" if field is None else f"{field[0]}x{field[1]}",
        "" if jump is None else f"{jump[0]}x{jump[1]}",
    ]


def summary_html(summary) -> str:
    """The architecture, the per-layer table and the totals, every cell escaped.

    >>> import cnnkit
    >>> page = cnnkit.from_spec("lecture").summary()._repr_html_()
    >>> '<table id="summary">' in page and "(8 - 3 + 2*1)/1 + 1 = 8" in page
    True
    """
    c, h, w = summary.input_shape
    intro = (
        f'<p class="note"><code>{html.escape(summary.architecture)}</code><br>'
        f"Input {h}x{w}x{c}, per example (batch {summary.batch}), {summary.dtype_name}. "
        "Receptive field and jump are on the input image.</p>"
    )
    rows = table(
        _HEADINGS, [_cells(row) for row in summary.rows], numeric={0, 4, 5, 6}, id="summary"
    )
    totals = table(["total", ""], [list(pair) for pair in summary.total_lines()], id="totals")
    return "\n".join([intro, rows, totals])
