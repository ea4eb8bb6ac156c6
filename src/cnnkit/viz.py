"""Pictures of a trained run: ``cnnkit viz RUN_DIR`` (needs ``pip install cnnkit[viz]``).

:func:`write_pictures` reads a run directory written by ``cnnkit train`` (see
:mod:`cnnkit.train`) and writes five PNG files, by default into ``RUN_DIR/pictures/``::

    file                 pixels (width x height)  what it shows
    filters.png          800 x 800                the first CONV layer's filters, one tile each
    feature_maps.png     1600 x (150 + 100 * L)   one test image and its activations after each
                                                  of the L CONV/RELU/POOL layers (the lecture's
                                                  network: L = 6, so 1600 x 750)
    curves.png           1200 x 450               loss and accuracy per epoch, train and
                                                  validation (from history.json)
    confusion.png        700 x 600                the test set's confusion matrix, with counts
    misclassified.png    1200 x 300               up to 8 misclassified test images

Every figure has a fixed size in inches at :data:`DPI` = 100 and is saved without tight
cropping, so the sizes above are exact. Colours:

- filters: each filter is scaled on its own. One input channel: grey scale symmetric about
  zero, black = the filter's most negative weight, mid-grey = 0, white = its most positive
  weight (``0.5 + 0.5 * w / max|w|``). Three channels: RGB, the filter's weights mapped
  linearly from their min..max onto 0..1. Any other depth: the mean over the input channels,
  drawn as for one.
- feature maps: one scale per layer, shared by its channels so they can be compared. A layer
  whose values are all >= 0 (RELU, POOL after RELU) is grey from 0 (black) to its maximum
  (white); a layer with negative values (CONV) is blue (negative), white (0), red (positive),
  symmetric about zero. At most :data:`MAX_CHANNELS` channels per layer are drawn.
- images: the run's normalisation undone (``x * std + mean``) and clipped to [0, 1].

Each figure is built by a small function that takes arrays or a model (:func:`filters_figure`,
:func:`feature_maps_figure`, :func:`curves_figure`, :func:`confusion_figure`,
:func:`misclassified_figure`) and returns a ``matplotlib.figure.Figure``. They build figures
with ``Figure`` directly, never through ``pyplot``: no backend is switched, no global figure
list keeps them alive (nothing to close: Python's garbage collector frees them), and saving a PNG
always uses matplotlib's Agg renderer, with or without a display.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit.errors import ConfigError, DataError

DPI = 100
FILTERS_SIZE = (8.0, 8.0)  # inches -> 800 x 800 pixels
FEATURE_MAPS_WIDTH = 16.0  # inches; height 1.5 + 1.0 per CONV/RELU/POOL layer
CURVES_SIZE = (12.0, 4.5)
CONFUSION_SIZE = (7.0, 6.0)
MISCLASSIFIED_SIZE = (12.0, 3.0)
MAX_CHANNELS = 16  # feature-map tiles per layer
MAX_MISCLASSIFIED = 8
PICTURES = ("filters", "feature_maps", "curves", "confusion", "misclassified")
INSTALL = "pip install cnnkit[viz] (or pip install matplotlib)"


def _figure_class(where: str):
    """matplotlib's ``Figure``, or the ConfigError that says how to install it."""
    try:
        import matplotlib  # noqa: F401  (first, so a blocked parent package is noticed)
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(f"{where}: matplotlib is not installed; {INSTALL}") from None
    return Figure


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


def display_images(images: np.ndarray, mean, std) -> np.ndarray:
    """Normalised (N, C, H, W) images as (N, H, W) grey or (N, H, W, 3) RGB values in [0, 1].

    >>> display_images(np.zeros((2, 1, 3, 3), np.float32), [0.5], [0.25]).shape
    (2, 3, 3)
    """
    mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    pixels = np.clip(images * std + mean, 0.0, 1.0)
    if pixels.shape[1] == 3:
        return pixels.transpose(0, 2, 3, 1)  # (N, H, W, C)
    return pixels.mean(axis=1)  # (N, H, W)


# ---------------------------------------------------------------------------------------------
# Filters


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of a near-square grid for ``count`` tiles, filled row by row.

    >>> grid_shape(16), grid_shape(32), grid_shape(96)
    ((4, 4), (6, 6), (10, 10))
    """
    columns = max(1, math.ceil(math.sqrt(count)))
    return max(1, math.ceil(count / columns)), columns


def filter_tiles(weight: np.ndarray) -> np.ndarray:
    """A CONV weight (D, C, KH, KW) as D display tiles with values in [0, 1], each filter on
    its own scale: (D, KH, KW) symmetric grey for C != 3 (0.5 = a zero weight; C > 1 averages
    the channels), (D, KH, KW, 3) RGB min..max for C = 3.

    >>> w = np.array([[[[-2.0, 0.0], [1.0, 2.0]]]])  # one 2x2 filter on one channel
    >>> filter_tiles(w)[0].tolist()
    [[0.0, 0.5], [0.75, 1.0]]
    """
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 4:
        raise DataError(f"filter_tiles: expected a (D, C, KH, KW) weight, got shape {w.shape}")
    if w.shape[1] == 3:
        low = w.min(axis=(1, 2, 3), keepdims=True)
        span = w.max(axis=(1, 2, 3), keepdims=True) - low
        tiles = (w - low) / np.where(span > 0, span, 1.0)
        return tiles.transpose(0, 2, 3, 1)  # (D, KH, KW, C)
    w = w.mean(axis=1)  # (D, KH, KW)
    bound = np.abs(w).max(axis=(1, 2), keepdims=True)
    return 0.5 + 0.5 * w / np.where(bound > 0, bound, 1.0)


def filters_figure(weight: np.ndarray, *, title: str | None = None):
    """One tile per filter of ``weight`` (D, C, KH, KW) on a near-square grid; 800 x 800 px."""
    Figure = _figure_class("filters_figure")
    tiles = filter_tiles(weight)
    count, channels = len(tiles), np.shape(weight)[1]
    rows, columns = grid_shape(count)
    figure = Figure(figsize=FILTERS_SIZE, dpi=DPI)
    grid = figure.add_gridspec(
        rows, columns, left=0.03, right=0.97, bottom=0.03, top=0.88, wspace=0.1, hspace=0.25
    )
    for k, tile in enumerate(tiles):
        ax = figure.add_subplot(grid[k // columns, k % columns])
        ax.imshow(tile, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if count <= 64:
            ax.set_title(str(k), fontsize=8, pad=2)
    kh, kw = np.shape(weight)[2:]
    scale = (
        "RGB, each filter scaled min..max"
        if channels == 3
        else "each filter on its own scale: black = most negative, mid-grey = 0, "
        "white = most positive"
    )
    figure.suptitle(
        f"{title or 'first CONV layer'}: {count} filters of {kh}x{kw}x{channels}\n{scale}",
        fontsize=11,
    )
    return figure


# ---------------------------------------------------------------------------------------------
# Feature maps


@dataclass(frozen=True)
class FeatureMapRow:
    """The activation of one image after layer ``index`` (a CONV, RELU or POOL layer)."""

    index: int
    layer: str  # the layer's architecture text, e.g. "CONV(D=16, F=3, S=1, P=1)"
    activation: np.ndarray  # (D, H, W)

    @property
    def volume(self) -> str:
        """HxWxD, as the lecture writes volumes."""
        depth, height, width = self.activation.shape
        return f"{height}x{width}x{depth}"


def feature_maps(model, image: np.ndarray) -> list[FeatureMapRow]:
    """Run one normalised image (C, H, W) through ``model`` layer by layer and keep the output
    of every CONV, RELU and POOL layer, up to the first layer whose output is not a volume.

    Row ``r`` with ``index`` k holds ``model[: k + 1].forward(image[None])[0]``.
    """
    from cnnkit.architecture import architecture_of
    from cnnkit.layers import AvgPool2d, Conv2d, MaxPool2d, ReLU

    image = np.asarray(image)
    if image.ndim != 3:
        raise DataError(f"feature_maps: expected one image (C, H, W), got shape {image.shape}")
    texts = [spec.text() for spec in architecture_of(model, image.shape).layers]
    x = image[None]  # (1, C, H, W)
    rows = []
    for index, layer in enumerate(model):
        x = layer.forward(x)
        if x.ndim != 4:
            break
        if isinstance(layer, Conv2d | ReLU | MaxPool2d | AvgPool2d):
            rows.append(FeatureMapRow(index, texts[index], x[0].copy()))
    return rows


def feature_maps_figure(rows: list[FeatureMapRow], image: np.ndarray, *, title: str = ""):
    """The input image on top, then one row of channel tiles per layer in ``rows``.

    ``image`` is for display: (H, W) grey or (H, W, 3) RGB in [0, 1] (see
    :func:`display_images`). Each row is one Axes: its label on the left, then one image per
    channel shown (at most :data:`MAX_CHANNELS`). Size: 1600 x (150 + 100 * len(rows)) pixels.
    """
    Figure = _figure_class("feature_maps_figure")
    height = 1.5 + 1.0 * len(rows)
    figure = Figure(figsize=(FEATURE_MAPS_WIDTH, height), dpi=DPI)
    grid = figure.add_gridspec(
        len(rows) + 1, 1, left=0.01, right=0.99, bottom=0.2 / height, top=1 - 0.5 / height
    )
    _tile_row(
        figure.add_subplot(grid[0]),
        f"input image\n{_volume_of(image)}",
        [image],
        cmap="gray",
        low=0.0,
        high=1.0,
    )
    for r, row in enumerate(rows, start=1):
        activation = row.activation
        shown = min(len(activation), MAX_CHANNELS)
        more = f", channels 0-{shown - 1} of {len(activation)}" if shown < len(activation) else ""
        high = float(np.abs(activation).max()) or 1.0
        cmap, low = ("gray", 0.0) if activation.min() >= 0 else ("RdBu_r", -high)
        label = f"{row.index} {row.layer}\n{row.volume}{more}"
        _tile_row(figure.add_subplot(grid[r]), label, activation[:shown], cmap, low, high)
    figure.suptitle(title, fontsize=12)
    return figure


_LABEL_WIDTH = 4.5  # tile heights left of the first tile, for the row's label
_GAP = 0.1  # between tiles, in tile heights


def _tile_row(ax, label: str, tiles, cmap: str, low: float, high: float) -> None:
    """Draw ``tiles`` side by side in one Axes, each 1 unit high, with ``label`` on the left
    (far cheaper than one Axes per tile)."""
    from matplotlib.patches import Rectangle

    ax.set_axis_off()
    ax.text(-_LABEL_WIDTH, 0.5, label, fontsize=9, va="center", ha="left")
    x = 0.0
    for tile in tiles:
        width = tile.shape[1] / tile.shape[0]
        extent = (x, x + width, 0.0, 1.0)
        ax.imshow(tile, cmap=cmap, vmin=low, vmax=high, interpolation="nearest", extent=extent)
        ax.add_patch(Rectangle((x, 0.0), width, 1.0, fill=False, lw=0.6, ec="0.3", clip_on=False))
        x += width + _GAP
    ax.set_xlim(-_LABEL_WIDTH, MAX_CHANNELS * (1 + _GAP))
    ax.set_ylim(0.0, 1.0)
    ax.set_aspect("equal", anchor="W")


def _volume_of(image: np.ndarray) -> str:
    height, width = image.shape[:2]
    return f"{height}x{width}x{image.shape[2] if image.ndim == 3 else 1}"


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------------------------------------
# Training curves, confusion matrix, mistakes


def curves_figure(history: list[dict]):
    """Loss and accuracy per epoch, train and validation; 1200 x 450 pixels.

    ``history``: the rows of ``history.json`` (dicts with ``epoch``, ``train_loss``,
    ``val_loss``, ``train_accuracy``, ``val_accuracy``; validation values may be None).
    """
    Figure = _figure_class("curves_figure")
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=CURVES_SIZE, dpi=DPI, layout="constrained")
    loss_ax, accuracy_ax = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    for ax, key, scale, name in (
        (loss_ax, "loss", 1.0, "cross-entropy loss"),
        (accuracy_ax, "accuracy", 100.0, "accuracy (%)"),
    ):
        for split, style in (("train", "o-"), ("val", "s--")):
            points = [
                (epoch, row[f"{split}_{key}"] * scale)
                for epoch, row in zip(epochs, history, strict=True)
                if row.get(f"{split}_{key}") is not None
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                label = "train" if split == "train" else "validation"
                ax.plot(xs, ys, style, label=label, markersize=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    figure.suptitle(
        "train: mean over the epoch's batches (augmented, weights still changing); "
        "validation: after the epoch",
        fontsize=10,
    )
    return figure


def confusion_figure(matrix: np.ndarray, classes: list[str], *, title: str = ""):
    """Rows: true class, columns: predicted, each cell with its count; 700 x 600 pixels."""
    Figure = _figure_class("confusion_figure")
    matrix = np.asarray(matrix)
    figure = Figure(figsize=CONFUSION_SIZE, dpi=DPI, layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    figure.colorbar(image, ax=ax, shrink=0.8)
    count = len(classes)
    names = [name[:10] for name in classes]
    ax.set_xticks(range(count), names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(count), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "confusion matrix", fontsize=11)
    if count <= 20:
        half = matrix.max() / 2
        for (r, c), value in np.ndenumerate(matrix):
            color = "white" if value > half else "black"
            ax.text(c, r, str(int(value)), ha="center", va="center", fontsize=8, color=color)
    return figure


def misclassified(labels: np.ndarray, probabilities: np.ndarray, limit=MAX_MISCLASSIFIED):
    """Indices of up to ``limit`` misclassified examples, most confident mistakes first
    (ties in index order).

    >>> misclassified(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2]]))
    [2, 1]
    """
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    order = np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")
    return [int(i) for i in wrong[order][:limit]]


def misclassified_figure(
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: list[str],
    *,
    indices: list[int] | None = None,
    title: str = "",
):
    """Up to 8 misclassified images with true and predicted class and the predicted class's
    probability; 1200 x 300 pixels. ``images`` for display, (N, H, W) or (N, H, W, 3) in
    [0, 1]; ``probabilities`` (N, K). ``indices``: which to show (default
    :func:`misclassified`)."""
    Figure = _figure_class("misclassified_figure")
    if indices is None:
        indices = misclassified(labels, probabilities)
    figure = Figure(figsize=MISCLASSIFIED_SIZE, dpi=DPI)
    grid = figure.add_gridspec(
        1, MAX_MISCLASSIFIED, left=0.01, right=0.99, bottom=0.03, top=0.7, wspace=0.15
    )
    for slot, i in enumerate(indices[:MAX_MISCLASSIFIED]):
        ax = figure.add_subplot(grid[0, slot])
        ax.imshow(images[i], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        _bare(ax)
        guess = int(probabilities[i].argmax())
        ax.set_title(
            f"test[{i}]\ntrue: {classes[int(labels[i])]}\n"
            f"predicted: {classes[guess]} ({probabilities[i, guess]:.0%})",
            fontsize=8,
        )
    if not indices:
        figure.text(0.5, 0.4, "no misclassified images", ha="center", va="center", fontsize=14)
    figure.suptitle(title or "misclassified images", fontsize=11)
    return figure


# ---------------------------------------------------------------------------------------------
# A run directory


@dataclass
class RunView:
    """What the pictures and the report need from a run directory, loaded once."""

    run_dir: Path
    which: str
    model: object  # Sequential with the ``which`` checkpoint's weights, in evaluation mode
    header: dict
    settings: dict
    history: list[dict]
    source: str
    classes: list[str]
    images: np.ndarray  # test images normalised with the run's statistics (N, C, H, W)
    labels: np.ndarray
    probabilities: np.ndarray  # (N, K)

    @property
    def accuracy(self) -> float:
        return float((self.probabilities.argmax(axis=1) == self.labels).mean())

    def confusion(self) -> np.ndarray:
        from cnnkit.train import confusion_matrix

        predicted = self.probabilities.argmax(axis=1)
        return confusion_matrix(self.labels, predicted, len(self.classes))

    def shown(self, images: np.ndarray) -> np.ndarray:
        return display_images(images, self.header["mean"], self.header["std"])


def load_view(run_dir: str | Path, which: str = "best") -> RunView:
    """Load a run's ``which`` checkpoint, its history and its test set, and score the test set."""
    from cnnkit.cli_train import _run_data
    from cnnkit.train import load_run, predict

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(
            f"{run_dir}: no such run directory; give the RUN_DIR that cnnkit train wrote "
            "(its --out)"
        )
    if which not in ("best", "last"):
        raise ConfigError(f"checkpoint must be 'best' or 'last', got {which!r}")
    if not (run_dir / f"{which}.npz").is_file():
        raise DataError(
            f"{run_dir}: no {which}.npz: not a cnnkit train run, or one stopped before its "
            "first epoch ended; give the RUN_DIR that cnnkit train wrote (its --out)"
        )
    model, header = load_run(run_dir, which)
    settings = _read_json(run_dir / "settings.json", {})
    history = _read_json(run_dir / "history.json", header.get("history", []))
    data, source, renormalise = _run_data(header, None)
    if len(data.test_images) == 0:
        raise ConfigError(f"{run_dir}: the test split of {source} is empty; nothing to draw")
    images = renormalise(data.test_images)
    scores = predict(model, images)
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    return RunView(
        run_dir,
        which,
        model,
        header,
        settings,
        history,
        source,
        list(header["classes"]),
        images,
        np.asarray(data.test_labels),
        probabilities,
    )


def _read_json(path: Path, default):
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None


def build_figures(view: RunView, *, index: int = 0) -> dict:
    """The five figures of :data:`PICTURES` for a loaded run (``index``: the test image whose
    feature maps are drawn)."""
    from cnnkit.layers import Conv2d

    count = len(view.images)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise ConfigError(
            f"index {index!r} is outside the test set of {view.source} (0..{count - 1}); "
            f"pass --index between 0 and {count - 1}"
        )
    convs = [(i, layer) for i, layer in enumerate(view.model) if isinstance(layer, Conv2d)]
    if not convs:
        raise ConfigError(f"{view.run_dir}: the network has no CONV layer, so no filters to draw")
    first, conv = convs[0]
    rows = feature_maps(view.model, view.images[index])
    label, guess = int(view.labels[index]), int(view.probabilities[index].argmax())
    name = view.classes
    accuracy = f"{view.accuracy:.2%}"
    return {
        "filters": filters_figure(
            conv.weight.data, title=f"layer {first} {rows[0].layer if rows else 'CONV'}"
        ),
        "feature_maps": feature_maps_figure(
            rows,
            view.shown(view.images[index : index + 1])[0],
            title=f"test[{index}]: class {name[label]}, predicted {name[guess]} "
            f"({view.probabilities[index, guess]:.1%}) - {view.which}.npz",
        ),
        "curves": curves_figure(view.history),
        "confusion": confusion_figure(
            view.confusion(),
            view.classes,
            title=f"{view.source} test set: {count} images, accuracy {accuracy}",
        ),
        "misclassified": misclassified_figure(
            view.shown(view.images),
            view.labels,
            view.probabilities,
            view.classes,
            title=f"most confident mistakes on the test set "
            f"({int((view.probabilities.argmax(axis=1) != view.labels).sum())} of {count})",
        ),
    }


def write_pictures(
    run_dir: str | Path, *, out_dir: str | Path | None = None, which: str = "best", index: int = 0
) -> dict[str, Path]:
    """Write ``filters.png``, ``feature_maps.png``, ``curves.png``, ``confusion.png`` and
    ``misclassified.png`` for the run in ``run_dir`` into ``out_dir`` (default
    ``RUN_DIR/pictures``); returns {name: path} in that order. ``which``: the checkpoint
    (``best`` or ``last``); ``index``: the test image whose feature maps are drawn."""
    _figure_class("cnnkit viz")
    view = load_view(run_dir, which)
    figures = build_figures(view, index=index)
    out = Path(out_dir) if out_dir is not None else view.run_dir / "pictures"
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, figure in figures.items():
            paths[name] = out / f"{name}.png"
            paths[name].write_bytes(figure_png(figure))
    except OSError as error:
        raise DataError(
            f"cannot write the pictures into {out}: {error.strerror or error}"
        ) from None
    return paths


def demo_pictures(run_dir: str | Path) -> list[Path]:
    """The end of ``cnnkit demo``: write the run's pictures and print their paths; without
    matplotlib, print how to get them instead (the demo itself has succeeded)."""
    if importlib.util.find_spec("matplotlib") is None:
        print(f"pictures: {INSTALL}, then cnnkit viz {run_dir}")
        return []
    paths = list(write_pictures(run_dir).values())
    print(f"pictures (cnnkit viz {run_dir}; cnnkit report {run_dir} puts them in one page):")
    for path in paths:
        print(f"  {path}")
    return paths


# ---------------------------------------------------------------------------------------------
# The command line: cnnkit viz, cnnkit report


def _index(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_viz_parsers(commands) -> None:
    """Register ``viz`` and ``report`` on the CLI's subparsers."""
    viz = commands.add_parser(
        "viz",
        help="pictures of a trained run: filters, feature maps, curves, confusion, mistakes",
        description="Write PNG pictures of a run (needs matplotlib: pip install cnnkit[viz]): "
        "the first CONV layer's filters, one test image's feature maps after every CONV, RELU "
        "and POOL layer, the training curves, the test confusion matrix and misclassified "
        "test images. Prints one path per line.",
    )
    viz.add_argument("run_dir", metavar="RUN_DIR")
    viz.add_argument("--out", metavar="DIR", help="default: RUN_DIR/pictures")
    _common(viz)
    viz.set_defaults(run=run_viz)
    report = commands.add_parser(
        "report",
        help="one self-contained HTML page of a run: summary, curves, pictures, equivariance",
        description="Write one HTML file with everything embedded (no network needed to view "
        "it): the run's spec and recipe, test accuracy, the summary table, the pictures of "
        "cnnkit viz and the equivariance measurements of the trained network. Needs "
        "matplotlib. Prints the path.",
    )
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.add_argument("--out", metavar="FILE", help="default: RUN_DIR/report.html")
    _common(report)
    report.set_defaults(run=run_report)


def _common(parser) -> None:
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best")
    parser.add_argument(
        "--index", type=_index, default=0, metavar="I", help="test image for the feature maps (0)"
    )


def run_viz(args: argparse.Namespace) -> int:
    paths = write_pictures(args.run_dir, out_dir=args.out, which=args.checkpoint, index=args.index)
    for path in paths.values():
        print(path)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from cnnkit.report import write_report

    print(write_report(args.run_dir, args.out, which=args.checkpoint, index=args.index))
    return 0
