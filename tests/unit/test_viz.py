"""The figure builders of cnnkit.viz on arrays and small models (no run directory needed)."""

import io
import sys

import numpy as np
import pytest

import cnnkit
from cnnkit import ConfigError, DataError, from_spec, lecture_network, viz

matplotlib = pytest.importorskip("matplotlib")


def image_axes(figure):
    return [ax for ax in figure.axes if ax.images]


def png_pixels(figure) -> tuple[int, int]:
    """(width, height) of the figure's PNG, read by Pillow."""
    from PIL import Image

    with Image.open(io.BytesIO(viz.figure_png(figure))) as image:
        return image.size


# ---------------------------------------------------------------------------------------------
# Filters


def test_filter_tiles_single_channel_is_symmetric_about_zero_per_filter():
    w = np.array([[[[-2.0, 0.0], [1.0, 2.0]]], [[[0.0, 0.5], [0.25, 0.0]]], [[[0.0] * 2] * 2]])
    tiles = viz.filter_tiles(w)
    assert tiles.shape == (3, 2, 2)
    np.testing.assert_allclose(tiles[0], [[0.0, 0.5], [0.75, 1.0]])
    np.testing.assert_allclose(tiles[1], [[0.5, 1.0], [0.75, 0.5]])  # its own scale
    np.testing.assert_allclose(tiles[2], 0.5)  # an all-zero filter is mid-grey, not NaN


def test_filter_tiles_rgb_is_min_max_per_filter():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 3, 4, 4))
    tiles = viz.filter_tiles(w)
    assert tiles.shape == (5, 4, 4, 3)
    assert np.allclose(tiles.min(axis=(1, 2, 3)), 0.0) and np.allclose(tiles.max(axis=(1, 2, 3)), 1)
    np.testing.assert_allclose(tiles[2, 1, 3], (w[2, :, 1, 3] - w[2].min()) / np.ptp(w[2]))


def test_filter_tiles_rejects_a_weight_that_is_not_4d():
    with pytest.raises(DataError, match=r"^filter_tiles: expected a \(D, C, KH, KW\) weight, got"):
        viz.filter_tiles(np.zeros((3, 3)))


@pytest.mark.parametrize(("count", "grid"), [(1, (1, 1)), (6, (2, 3)), (16, (4, 4)), (17, (4, 5))])
def test_grid_shape_holds_every_tile(count, grid):
    rows, columns = viz.grid_shape(count)
    assert (rows, columns) == grid and rows * columns >= count > (rows - 1) * columns


@pytest.mark.parametrize(("out_channels", "in_channels"), [(16, 1), (6, 3), (20, 2)])
def test_filters_figure_has_one_tile_per_filter(out_channels, in_channels):
    model = from_spec(
        f"INPUT({in_channels}x12x12) - CONV(D={out_channels}, F=5) - RELU",
        rng=np.random.default_rng(0),
    )
    weight = model[0].weight.data
    figure = viz.filters_figure(weight)
    tiles = image_axes(figure)
    assert len(tiles) == out_channels
    shape = (5, 5, 3) if in_channels == 3 else (5, 5)
    assert all(ax.images[0].get_array().shape == shape for ax in tiles)
    np.testing.assert_allclose(tiles[3].images[0].get_array(), viz.filter_tiles(weight)[3])
    assert png_pixels(figure) == (800, 800)


# ---------------------------------------------------------------------------------------------
# Feature maps


@pytest.mark.parametrize(
    ("spec", "kinds"),
    [
        (None, 6),  # the lecture's network: CONV RELU POOL CONV RELU POOL, then FLATTEN FC
        ("INPUT(3x11x11) - CONV(D=4, F=3, S=2) - RELU - POOL(avg, F=5) - FC(2)", 3),
        ("INPUT(2x9x9) - CONV(D=20, F=3, P=1) - CONV(D=3, F=3) - FLATTEN - FC(4) - RELU", 2),
    ],
)
def test_feature_maps_match_the_model_prefixes(spec, kinds):
    rng = np.random.default_rng(1)
    if spec is None:
        model = lecture_network((1, 8, 8), 10, rng=rng)
    else:
        model = from_spec(spec, rng=rng)
    image = rng.standard_normal(model.input_shape).astype(np.float32)
    rows = viz.feature_maps(model, image)
    assert len(rows) == kinds
    texts = model.summary().rows
    for row in rows:
        expected = model[: row.index + 1].forward(image[None])[0]
        assert row.activation.shape == expected.shape
        np.testing.assert_array_equal(row.activation, expected)
        assert row.layer == texts[row.index].layer
        assert row.volume == texts[row.index].output


def test_feature_maps_rows_and_size_of_the_lecture_network():
    model = lecture_network((1, 8, 8), 10, depths=(16, 32), rng=np.random.default_rng(0))
    rows = viz.feature_maps(model, np.ones((1, 8, 8), np.float32))
    assert [row.layer.split("(")[0] for row in rows] == ["CONV", "RELU", "POOL"] * 2
    assert [row.volume for row in rows][::3] == ["8x8x16", "4x4x32"]
    figure = viz.feature_maps_figure(rows, np.zeros((8, 8)), title="t")
    # one Axes per row: the input image, then min(D, 16) channel tiles per layer
    assert [len(ax.images) for ax in figure.axes] == [1] + [16] * 6
    np.testing.assert_array_equal(figure.axes[4].images[5].get_array(), rows[3].activation[5])
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert "0 CONV(D=16, F=3, S=1, P=1)\n8x8x16" in texts
    assert "5 POOL(max, F=2, S=2)\n2x2x32, channels 0-15 of 32" in texts
    assert png_pixels(figure) == (1600, 150 + 100 * 6)


def test_feature_map_labels_round_long_decimals():
    model = cnnkit.Sequential(cnnkit.Normalize(0.3077392280101776, 0.37725630402565), cnnkit.ReLU())
    rows = viz.feature_maps(model, np.ones((1, 4, 4), np.float32))
    assert rows[0].layer == "NORMALIZE(mean=0.3077392280101776, std=0.37725630402565)"
    figure = viz.feature_maps_figure(rows, np.zeros((4, 4)))
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert "0 NORMALIZE(mean=0.3077, std=0.3773)\n4x4x1" in texts


def test_feature_maps_want_one_image():
    model = lecture_network((1, 8, 8), 10, rng=np.random.default_rng(0))
    with pytest.raises(DataError, match=r"^feature_maps: expected one image \(C, H, W\)"):
        viz.feature_maps(model, np.zeros((2, 1, 8, 8), np.float32))


# ---------------------------------------------------------------------------------------------
# Curves, confusion, mistakes, images


def history(validation: bool) -> list[dict]:
    return [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "train_accuracy": 0.5 + e / 10,
            "val_loss": 1.2 / e if validation else None,
            "val_accuracy": 0.4 + e / 10 if validation else None,
        }
        for e in (1, 2, 3)
    ]


@pytest.mark.parametrize(("validation", "lines"), [(True, 2), (False, 1)])
def test_curves_figure_draws_train_and_validation(validation, lines):
    figure = viz.curves_figure(history(validation))
    loss_ax, accuracy_ax = figure.axes
    assert len(loss_ax.lines) == len(accuracy_ax.lines) == lines
    np.testing.assert_allclose(accuracy_ax.lines[0].get_ydata(), [60.0, 70.0, 80.0])
    np.testing.assert_allclose(loss_ax.lines[0].get_xdata(), [1, 2, 3])
    assert png_pixels(figure) == (1200, 450)


def test_confusion_figure_shows_the_matrix_and_its_counts():
    from cnnkit.train import confusion_matrix

    labels = np.array([0, 0, 1, 2, 2, 2])
    matrix = confusion_matrix(labels, np.array([0, 1, 1, 2, 2, 0]), 3)
    figure = viz.confusion_figure(matrix, ["a", "b", "c"])
    np.testing.assert_array_equal(figure.axes[0].images[0].get_array(), matrix)
    counts = [t.get_text() for t in figure.axes[0].texts]
    assert counts == [str(v) for v in matrix.flat]
    assert png_pixels(figure) == (700, 600)


def test_misclassified_picks_the_most_confident_mistakes_first():
    labels = np.array([0, 1, 1, 0, 1])
    probabilities = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.3, 0.7], [0.8, 0.2]])
    assert viz.misclassified(labels, probabilities) == [4, 1, 3]  # ties in index order
    assert viz.misclassified(labels, probabilities, limit=1) == [4]


def test_misclassified_figure_titles_and_empty_case():
    images = np.zeros((3, 4, 4))
    labels = np.array([0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.75, 0.25], [0.2, 0.8]])
    figure = viz.misclassified_figure(images, labels, probabilities, ["cat", "dog"])
    (ax,) = image_axes(figure)
    assert ax.get_title() == "test[1]\ntrue: dog\npredicted: cat (75%)"
    assert png_pixels(figure) == (1200, 300)
    none = viz.misclassified_figure(images, labels, probabilities, ["cat", "dog"], indices=[])
    assert not image_axes(none)
    assert "no misclassified images" in [t.get_text() for t in none.texts]


def test_display_images_undo_the_normalisation():
    grey = np.array([[[[-1.0, 0.0], [1.0, 9.0]]]], np.float32)
    np.testing.assert_allclose(viz.display_images(grey, [0.5], [0.25])[0], [[0.25, 0.5], [0.75, 1]])
    rgb = np.zeros((2, 3, 4, 5), np.float32)
    assert viz.display_images(rgb, [0.1, 0.2, 0.3], [1, 1, 1]).shape == (2, 4, 5, 3)


def test_png_size_reads_the_header(tmp_path):
    figure = viz.confusion_figure(np.eye(2, dtype=int), ["a", "b"])
    path = tmp_path / "c.png"
    path.write_bytes(viz.figure_png(figure))
    assert viz.png_size(path) == (700, 600)
    (tmp_path / "x.png").write_text("not a png")
    with pytest.raises(DataError, match=r"x\.png: not a PNG file$"):
        viz.png_size(tmp_path / "x.png")


def test_without_matplotlib_each_builder_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    message = (
        r"matplotlib is not installed; pip install cnnkit\[viz\] \(or pip install matplotlib\)$"
    )
    with pytest.raises(ConfigError, match=r"^filters_figure: " + message):
        viz.filters_figure(np.zeros((2, 1, 3, 3)))
    with pytest.raises(ConfigError, match=r"^curves_figure: " + message):
        viz.curves_figure(history(True))
