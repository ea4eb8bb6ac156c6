"""Notebook display: explanations, summaries and Sequential show HTML in Jupyter, text elsewhere."""

from __future__ import annotations

import html

import numpy as np
import pytest

import cnnkit
from cnnkit import explain


class _Printer:
    """What IPython hands ``_repr_pretty_``: collects the text."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def text(self, value: str) -> None:
        self.parts.append(value)


EXPLANATIONS = {
    "conv": lambda: explain.explain_conv(
        explain.LECTURE_X, explain.LECTURE_W, explain.LECTURE_B, stride=2, padding=1
    ),
    "shape": lambda: explain.explain_shape(10, 3, 2, 0),
    "sharing": lambda: explain.explain_sharing("alexnet-conv1"),
    "sparse": lambda: explain.explain_sparse("alexnet-conv1"),
    "layers": lambda: explain.explain_layers("lecture"),
    "batchnorm": lambda: explain.explain_batchnorm(),
    "dropout": lambda: explain.explain_dropout(0.5),
    "residual": lambda: explain.explain_residual_backprop(),
    "equivariance": lambda: explain.explain_equivariance("lecture", shifts=2),
}


@pytest.mark.parametrize("topic", sorted(EXPLANATIONS))
def test_every_explanation_is_text_in_print_and_html_in_a_notebook(topic):
    result = EXPLANATIONS[topic]()
    text = result.text()
    assert str(result) == text
    page = result._repr_html_()
    assert page == f'<pre class="cnnkit">{html.escape(text)}</pre>'
    printer = _Printer()
    result._repr_pretty_(printer, False)
    assert printer.parts == [text]


def test_html_escapes_what_the_text_holds():
    result = explain.explain_shape(10, 3, 2, 0)  # impossible: its fixes are arrows, "->"
    assert ">" in result.text()
    page = result._repr_html_()
    assert "<" not in page.removeprefix('<pre class="cnnkit">').removesuffix("</pre>")
    assert html.unescape(page.removeprefix('<pre class="cnnkit">').removesuffix("</pre>")) == (
        result.text()
    )


def test_summary_html_has_one_row_per_layer_and_the_totals():
    summary = cnnkit.from_spec("lecture").summary()
    page = summary._repr_html_()
    table = page.split('<table id="summary">')[1].split("</table>")[0]
    assert table.count("<tr>") == len(summary.rows) + 1  # the heading row
    for row in summary.rows:
        assert f"{row.params:,}" in table
    totals = page.split('<table id="totals">')[1]
    for label, _ in summary.total_lines():
        assert html.escape(label) in totals
    printer = _Printer()
    summary._repr_pretty_(printer, False)
    assert printer.parts == [summary.table()]


def test_residual_branches_are_indented_in_the_html_summary():
    model = cnnkit.from_spec("INPUT(1x8x8) - CONV(D=4, F=3, P=1) - RES[CONV(D=4, F=3, P=1) - RELU]")
    page = model.summary()._repr_html_()
    assert "RES[body]" in page and "body.0" in page


def test_sequential_shows_its_layers_and_its_summary_when_the_input_size_is_known():
    model = cnnkit.from_spec("lecture")
    page = model._repr_html_()
    assert page.startswith(f'<pre class="cnnkit">{html.escape(repr(model))}</pre>')
    assert '<table id="summary">' in page
    loose = cnnkit.Sequential(cnnkit.ReLU(), cnnkit.Flatten())
    assert loose._repr_html_() == f'<pre class="cnnkit">{html.escape(repr(loose))}</pre>'


def test_a_sequential_whose_summary_fails_says_why_instead_of_raising():
    model = cnnkit.Sequential(
        cnnkit.Conv2d(1, 2, 3, rng=np.random.default_rng(0)), input_shape=(3, 8, 8)
    )
    page = model._repr_html_()
    assert "no summary:" in page and '<table id="summary">' not in page


def test_pictures_show_themselves_as_png_in_a_notebook():
    pytest.importorskip("matplotlib")
    from cnnkit import viz

    weight = np.random.default_rng(0).standard_normal((4, 1, 3, 3))
    figure = viz.filters_figure(weight, title="four filters")
    png = figure._repr_png_()
    assert png == viz.figure_png(figure)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_reprs_stay_short_for_developers():
    summary = cnnkit.from_spec("lecture").summary()
    assert repr(summary).startswith("<Summary of INPUT(1x8x8) - CONV(D=32")
    shape = explain.explain_shape(8, 3, 1, 1)
    assert repr(shape) == f"<ShapeExplanation: {shape.text().splitlines()[0]}>"
