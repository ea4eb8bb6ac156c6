"""How cnnkit's objects show themselves: plain text in a terminal, HTML in a notebook.

Jupyter asks an object for ``_repr_html_()`` and shows the HTML; IPython's terminal asks for
``_repr_pretty_``; ``print`` and everything else use ``str``. An explanation, a summary and a
``Sequential`` answer all three, so the same call reads well in each place.

>>> class Note(TextDisplay):
...     def text(self):
...         return "(I - F + 2P)/S + 1 = (5 - 3 + 2)/2 + 1 = 3 <ok>"
>>> str(Note())
'(I - F + 2P)/S + 1 = (5 - 3 + 2)/2 + 1 = 3 <ok>'
>>> Note()
<Note: (I - F + 2P)/S + 1 = (5 - 3 + 2)/2 + 1 = 3 <ok>>
>>> Note()._repr_html_()
'<pre class="cnnkit">(I - F + 2P)/S + 1 = (5 - 3 + 2)/2 + 1 = 3 &lt;ok&gt;</pre>'
"""

from __future__ import annotations

import html
import re

_LONG_DECIMAL = re.compile(r"\d+\.\d{5,}(?:e[-+]?\d+)?")


def short_decimals(text: str) -> str:
    """A label's text with long decimals cut to 4 significant digits (summaries keep all).

    >>> short_decimals("NORMALIZE(mean=0.3077392280101776, std=0.25)")
    'NORMALIZE(mean=0.3077, std=0.25)'
    """
    return _LONG_DECIMAL.sub(lambda match: f"{float(match.group()):.4g}", text)


def pre(text: str) -> str:
    """Text kept as laid out (the explanations are aligned in columns), every character
    escaped."""
    return f'<pre class="cnnkit">{html.escape(text)}</pre>'


def table(headings: list[str], rows: list[list], numeric=frozenset(), **attrs) -> str:
    """An HTML table; every cell escaped; the columns in ``numeric`` right-aligned.

    >>> print(table(["F", "P"], [[3, 1]], numeric={0, 1}))
    <table>
    <tr><th>F</th><th>P</th></tr>
    <tr><td class="num">3</td><td class="num">1</td></tr>
    </table>
    """
    e = html.escape
    extra = "".join(f' {key}="{e(str(value))}"' for key, value in attrs.items())
    lines = [f"<table{extra}>", "<tr>" + "".join(f"<th>{e(h)}</th>" for h in headings) + "</tr>"]
    for row in rows:
        cells = "".join(
            f'<td class="num">{e(str(c))}</td>' if i in numeric else f"<td>{e(str(c))}</td>"
            for i, c in enumerate(row)
        )
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</table>")
    return "\n".join(lines)


class TextDisplay:
    """For objects with a ``text()`` method: ``str`` gives the text, a notebook shows it as
    preformatted HTML, IPython's terminal prints it rather than the object's fields."""

    __slots__ = ()

    def text(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        first = self.text().split("\n", 1)[0]
        return f"<{type(self).__name__}: {first}>"

    def _repr_html_(self) -> str:
        return pre(self.text())

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text("..." if cycle else self.text())
