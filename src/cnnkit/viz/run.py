"""A run directory as the pictures and the report see it: its model, history and test set.

:func:`write_pictures` reads a run directory written by ``cnnkit train`` (see
:mod:`cnnkit.train`) and writes the five pictures of :mod:`cnnkit.viz.figures`, by default into
``RUN_DIR/pictures/``. The run's model (``cnnkit.load_run``) takes the test images as the
loader returns them: its NORMALIZE layer applies the run's statistics.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit.arch.convert import describe
from cnnkit.atomic import write_bytes
from cnnkit.errors import ConfigError
from cnnkit.train.runfiles import read_history, read_settings
from cnnkit.viz.figures import (
    confusion_figure,
    curves_figure,
    display_images,
    feature_maps,
    feature_maps_figure,
    filters_figure,
    misclassified_figure,
)
from cnnkit.viz.picture import INSTALL, _figure_class, figure_png

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
    images: np.ndarray  # test images as the loader returns them (N, C, H, W), in [0, 1]
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
        return display_images(images)


def load_view(run_dir: str | Path, which: str = "best") -> RunView:
    """Load a run's ``which`` checkpoint, its history and its test set, and score the test set.

    Every file is checked before use (:func:`cnnkit.load_run`,
    :func:`cnnkit.train.runfiles.read_settings` and ``read_history``): a damaged one raises
    DataError naming it."""
    from cnnkit.train import load_run, predict, run_data
    from cnnkit.train.runs import checked_run_dir

    run_dir = checked_run_dir(run_dir, which)
    model, header = load_run(run_dir, which)
    settings = read_settings(run_dir, required=(), missing_ok=True) or {}
    history = read_history(run_dir, header.get("history") or [])
    data, source = run_data(header, None)
    if len(data.test_images) == 0:
        raise ConfigError(f"{run_dir}: the test split of {source} is empty; nothing to draw")
    images = np.asarray(data.test_images)
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


def build_figures(view: RunView, *, index: int = 0) -> dict:
    """The five figures of :data:`PICTURES` for a loaded run (``index``: the test image whose
    feature maps are drawn)."""
    count = len(view.images)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise ConfigError(
            f"index {index!r} is outside the test set of {view.source} (0..{count - 1}); "
            f"pass --index between 0 and {count - 1}"
        )
    filtered = [(i, layer) for i, layer in enumerate(view.model) if _filters_of(layer) is not None]
    if not filtered:
        raise ConfigError(f"{view.run_dir}: the network has no CONV layer, so no filters to draw")
    first, conv = filtered[0]
    rows = feature_maps(view.model, view.images[index])
    label, guess = int(view.labels[index]), int(view.probabilities[index].argmax())
    name = view.classes
    accuracy = f"{view.accuracy:.2%}"
    return {
        "filters": filters_figure(
            _filters_of(conv), title=f"layer {first} {describe(conv, _input_of(view, first))}"
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


def _filters_of(layer):
    """A layer's filters as pictures see them: a (D, C, KH, KW) ``weight``, else None."""
    weight = getattr(layer, "weight", None)
    data = getattr(weight, "data", None)
    return data if getattr(data, "ndim", 0) == 4 else None


def _input_of(view: RunView, index: int):
    """The shape (N, C, H, W) reaching layer ``index`` of the view's model."""
    shape = (1, *view.images.shape[1:])
    for layer in list(view.model)[:index]:
        shape = layer.output_shape(shape)
    return shape


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
    paths = {}
    for name, figure in figures.items():  # each whole or not at all (one WriteError line)
        paths[name] = write_bytes(out / f"{name}.png", figure_png(figure))
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
