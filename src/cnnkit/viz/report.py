"""``cnnkit report RUN_DIR``: one self-contained HTML page about a trained run.

:func:`write_report` writes ``RUN_DIR/report.html`` (or ``path``) with, in order: the test
accuracy, the network's architecture string, the data and the recipe (``settings.json``), the
summary table of :meth:`Sequential.summary` with its totals, the training curves and the epoch
history, the first layer's filters, one test image's feature maps, the confusion matrix, the
most confident mistakes, and the equivariance measurements of
:func:`cnnkit.explain.explain_equivariance` on the trained network.

Everything is inside the one file: the five pictures of :mod:`cnnkit.viz.figures` as
``data:image/png;base64,...`` images, the style sheet inline, no script and no link to
anything outside, so it opens offline and can be sent as one attachment. Every text taken
from the run is escaped with :func:`html.escape`. Needs matplotlib (``pip install
cnnkit[viz]``).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from cnnkit.atomic import write_text
from cnnkit.display import table as html_table
from cnnkit.errors import CnnkitError
from cnnkit.explain.equivariance import explain_equivariance
from cnnkit.summary.html import summary_html
from cnnkit.viz.picture import _figure_class, figure_png
from cnnkit.viz.run import build_figures, load_view

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1640px; margin: 1.5em auto;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre, code { background: #f6f6f6; font-size: 0.9em; }
pre { padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
.accuracy { font-size: 1.4em; }
.note { color: #555; font-size: 0.9em; }
figure { margin: 0.8em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
"""

CAPTIONS = {
    "curves": (
        "Training curves",
        "Loss and accuracy per epoch. Training values are means over each epoch's batches "
        "(augmented, while the weights change); validation values are measured after the "
        "epoch.",
    ),
    "filters": (
        "First-layer filters",
        "One tile per filter of the first CONV layer, each on its own scale (one channel: "
        "black = most negative weight, mid-grey = 0, white = most positive; three channels: "
        "RGB from the filter's min to its max).",
    ),
    "feature_maps": (
        "Feature maps",
        "One test image and the activations after every CONV, RELU and POOL layer, labelled "
        "with the layer and its output volume HxWxD; one colour scale per layer (grey from 0 "
        "when all values are >= 0, blue-white-red around 0 otherwise).",
    ),
    "confusion": (
        "Confusion matrix",
        "Test set; rows: true class, columns: predicted class, cells: counts.",
    ),
    "misclassified": (
        "Misclassified test images",
        "The most confident mistakes, with the true class, the predicted class and its "
        "probability.",
    ),
}


def write_report(
    run_dir: str | Path, path: str | Path | None = None, *, which: str = "best", index: int = 0
) -> Path:
    """Write the HTML report of the run in ``run_dir``; returns its path (default
    ``RUN_DIR/report.html``). ``which``: the checkpoint (``best`` or ``last``); ``index``: the
    test image whose feature maps are shown."""
    _figure_class("cnnkit report")
    view = load_view(run_dir, which)
    figures = build_figures(view, index=index)
    pictures = {name: figure_png(figure) for name, figure in figures.items()}
    del figures
    page = report_html(view, pictures)
    target = Path(path) if path is not None else view.run_dir / "report.html"
    return write_text(target, page)  # whole or not at all; a failure is one WriteError line


def report_html(view, pictures: dict[str, bytes]) -> str:
    """The page for a loaded run (:class:`cnnkit.viz.run.RunView`) and its PNG ``pictures``."""
    e = html.escape
    header, settings = view.header, view.settings
    title = f"cnnkit run {view.run_dir.name or view.run_dir}"
    epochs = (settings.get("recipe") or header.get("recipe") or {}).get("epochs", len(view.history))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="note">{e(str(view.run_dir))}, checkpoint {e(view.which)}.npz '
        f"(epoch {e(str(header.get('epoch', '?')))} of {e(str(epochs))})</p>",
        f'<p class="accuracy">Test accuracy <strong id="test-accuracy">{view.accuracy:.2%}'
        f"</strong> on {len(view.labels):,} test images of {e(view.source)}</p>",
        "<h2>Network</h2>",
        f"<pre>{e(header.get('spec', settings.get('spec', '')))}</pre>",
        _settings_table(view),
        "<h2>Summary</h2>",
        _summary_section(view.model),
    ]
    for name in ("curves", "filters", "feature_maps", "confusion", "misclassified"):
        heading, caption = CAPTIONS[name]
        parts.append(f"<h2>{e(heading)}</h2>")
        parts.append(_figure(name, pictures[name], caption))
        if name == "curves":
            parts.append(_history_table(view.history))
    parts += ["<h2>Equivariance to translation</h2>", _equivariance_section(view.model)]
    parts += [
        '<p class="note">Written by <code>cnnkit report</code>; every number on this page was '
        "computed by cnnkit from the run's files.</p>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _figure(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure id="{name}"><img src="data:image/png;base64,{data}" '
        f'alt="{html.escape(name)}"><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def _settings_table(view) -> str:
    header, settings = view.header, view.settings
    channels, height, width = header["input_shape"]
    classes = ", ".join(view.classes)
    rows = [
        ["data", view.source],
        ["validation share", settings.get("validation", header.get("validation", ""))],
        ["input volume", f"{height}x{width}x{channels}"],
        ["classes", f"{len(view.classes)}: {classes}"],
    ]
    recipe = settings.get("recipe") or header.get("recipe") or {}
    rows += [[f"recipe: {key}", value] for key, value in recipe.items()]
    return html_table(["setting", "value"], rows, id="settings")


def _summary_section(model) -> str:
    return summary_html(model.summary())


def _history_table(history: list[dict]) -> str:
    def number(value, percent: bool = False) -> str:
        if value is None:
            return "-"
        return f"{value:.2%}" if percent else f"{value:.4f}"

    rows = [
        [
            record["epoch"],
            number(record.get("train_loss")),
            number(record.get("train_accuracy"), True),
            number(record.get("val_loss")),
            number(record.get("val_accuracy"), True),
            f"{record.get('lr', 0):.3g}",
            f"{record.get('seconds', 0):.1f}",
        ]
        for record in history
    ]
    headings = ["epoch", "train loss", "train acc", "val loss", "val acc", "lr", "seconds"]
    return html_table(headings, rows, numeric={0, 1, 2, 3, 4, 5, 6}, id="history")


def _equivariance_section(model) -> str:
    """explain_equivariance on the trained network, as a table (or why it was not measured)."""
    e = html.escape
    width = model.input_shape[2]
    shifts = min(4, width - 1)
    if shifts < 1:
        return f'<p class="note">Not measured: the input is only {width} pixel wide.</p>'
    try:
        result = explain_equivariance(model, shifts=shifts, axis="width", seed=0)
    except CnnkitError as error:
        return f'<p class="note">Not measured: {e(str(error))}</p>'
    c, h, w = result.input_shape
    intro = (
        "<p>Is f(g(x)) = g'(f(x)) layer by layer? <em>f</em>: the trained network up to and "
        f"including the row's layer; <em>g</em>: np.roll of a random {c}x{h}x{w} input (seed "
        f"{result.seed}) by k pixels along the width; <em>g'</em>: the same roll of the "
        "layer's output by k/J units (J: the layer's cumulative stride). Each cell: "
        "max |f(g(x)) - g'(f(x))| over the units whose receptive field (RF) lies inside the "
        "image and avoids the wrapped-around columns.</p>"
    )
    rows = [
        [
            f"{row.index} {row.layer}",
            _pair(row.jump),
            _pair(row.receptive_field),
            *(cell.text() for cell in row.cells),
        ]
        for row in result.rows
    ]
    headings = ["layer", "J", "RF", *(f"k={k}" for k in result.shifts)]
    table = html_table(headings, rows, numeric=set(range(1, len(headings))), id="equivariance")
    notes = [
        "* k is not a multiple of J: no whole shift of the output matches; compared with the "
        "closer of floor(k/J) and ceil(k/J) units.",
        *(f"Not measured: {text}." for text in result.skipped),
    ]
    if any(cell.error is None for row in result.rows for cell in row.cells):
        notes.append("n/a: no unit is far enough from the borders for this shift.")
    return "\n".join([intro, table, *(f'<p class="note">{e(n)}</p>' for n in notes)])


def _pair(pair) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"
