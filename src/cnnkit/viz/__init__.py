"""Pictures of a trained run (:mod:`.figures`, :mod:`.run`, drawn on :mod:`.picture`) and
its HTML report (:mod:`.report`).

Needs matplotlib (``pip install cnnkit[viz]``), imported only when a picture is drawn.
"""

from cnnkit.viz.figures import (
    MAX_CHANNELS,
    MAX_MISCLASSIFIED,
    PICTURES,
    FeatureMapRow,
    confusion_figure,
    curves_figure,
    display_images,
    feature_maps,
    feature_maps_figure,
    filter_tiles,
    filters_figure,
    grid_shape,
    misclassified,
    misclassified_figure,
)
from cnnkit.viz.picture import DPI, INSTALL, figure_png, png_size
from cnnkit.viz.report import report_html, write_report
from cnnkit.viz.run import RunView, build_figures, demo_pictures, load_view, write_pictures

__all__ = [
    "DPI",
    "INSTALL",
    "MAX_CHANNELS",
    "MAX_MISCLASSIFIED",
    "PICTURES",
    "FeatureMapRow",
    "RunView",
    "build_figures",
    "confusion_figure",
    "curves_figure",
    "demo_pictures",
    "display_images",
    "feature_maps",
    "feature_maps_figure",
    "figure_png",
    "filter_tiles",
    "filters_figure",
    "grid_shape",
    "load_view",
    "misclassified",
    "misclassified_figure",
    "png_size",
    "report_html",
    "write_pictures",
    "write_report",
]
