"""Pictures of a trained run: ``cnnkit viz RUN_DIR`` (needs ``pip install cnnkit[viz]``).

:func:`cnnkit.viz.run.write_pictures` reads a run directory written by ``cnnkit train`` and
writes five PNG files, by default into ``RUN_DIR/pictures/``::

    file                 pixels (width x height)  what it shows
    filters.png          800 x 800                the first CONV layer's filters, one tile each
    feature_maps.png     1600 x (150 + 100 * L)   one test image and its activations after each
                                                  of the L layers before the first FLATTEN or FC
                                                  (a run's model: NORMALIZE and the lecture's six
                                                  CONV/RELU/POOL layers, L = 7, so 1600 x 850)
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
- images: as the loader returns them (values in [0, 1]), clipped to [0, 1].

Each figure is built by a small function that takes arrays or a model (:func:`filters_figure`,
:func:`feature_maps_figure`, :func:`curves_figure`, :func:`confusion_figure`,
:func:`misclassified_figure`) and returns a ``matplotlib.figure.Figure``. They build figures
with ``Figure`` directly, never through ``pyplot``: no backend is switched, nothing to close,
and a PNG is always saved by matplotlib's Agg renderer, with or without a display.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnnkit.arch.convert import describe
from cnnkit.display import short_decimals
from cnnkit.errors import DataError
from cnnkit.nn.modes import no_grad
from cnnkit.nn.probe import evaluating
from cnnkit.viz.picture import DPI, _figure_class

FILTERS_SIZE = (8.0, 8.0)  # inches -> 800 x 800 pixels
FEATURE_MAPS_WIDTH = 16.0  # inches; height 1.5 + 1.0 per CONV/RELU/POOL layer
CURVES_SIZE = (12.0, 4.5)
CONFUSION_SIZE = (7.0, 6.0)
MISCLASSIFIED_SIZE = (12.0, 3.0)
MAX_CHANNELS = 16  # feature-map tiles per layer
MAX_MISCLASSIFIED = 8
PICTURES = ("filters", "feature_maps", "curves", "confusion", "misclassified")


def display_images(images: np.ndarray, mean=None, std=None) -> np.ndarray:
    """(N, C, H, W) images in [0, 1] (or normalised ones, with the ``mean`` and ``std`` that
    normalised them) as (N, H, W) grey or (N, H, W, 3) RGB values in [0, 1].

    >>> display_images(np.zeros((2, 1, 3, 3), np.float32), [0.5], [0.25]).shape
    (2, 3, 3)
    """
    pixels = np.asarray(images, np.float32)
    if mean is not None and std is not None:
        mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
        pixels = pixels * std + mean
    pixels = np.clip(pixels, 0.0, 1.0)
    if pixels.shape[1] == 3:
        return pixels.transpose(0, 2, 3, 1)  # (N, H, W, C)
    return pixels.mean(axis=1)  # (N, H, W)


# --- Filters


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


# --- Feature maps


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
    """Run one image (C, H, W), as the model takes it, through ``model`` layer by layer and
    keep the output of every layer up to the first whose output is not a volume (an FC,
    FLATTEN): CONV, RELU, POOL and any other layer, the user's own included.

    Row ``r`` with ``index`` k holds ``model[: k + 1].forward(image[None])[0]``, in
    evaluation mode (the model's modes are put back afterwards). ``model`` may be one layer.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise DataError(f"feature_maps: expected one image (C, H, W), got shape {image.shape}")
    x = image[None]  # (1, C, H, W)
    rows = []
    with evaluating(model), no_grad():
        for index, layer in enumerate(model.sequence()):
            text = describe(layer, x.shape)
            x = layer.forward(x)
            if x.ndim != 4:
                break
            rows.append(FeatureMapRow(index, text, np.array(x[0])))
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
        label = f"{row.index} {short_decimals(row.layer)}\n{row.volume}{more}"
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


# --- Training curves, confusion matrix, mistakes


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
