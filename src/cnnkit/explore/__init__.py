"""``cnnkit explore``: a trained run in one self-contained browser page.

:func:`write_explorer` writes one HTML file holding the run's weights, a few test images and
all the code (no network request, opened from ``file://`` offline). The page computes the
network itself in JavaScript from each layer's registry keyword, configuration and
``state_dict`` arrays (:mod:`cnnkit.explore.network`): draw a digit or pick a test image and
the prediction and every layer's maps follow; click a unit for its dot product and receptive
field; a playground works the lecture's formula out; the first layer's filters and the
training curves are drawn. ``window.cnnkit.forward(image)`` gives scripts the page's numbers.
"""

from cnnkit.explore.network import SUPPORTED, describe_network
from cnnkit.explore.page import (
    MAX_BYTES,
    ExplorerPage,
    RunContent,
    build_explorer,
    explorer_page,
    load_run_content,
    write_explorer,
)

__all__ = [
    "MAX_BYTES",
    "SUPPORTED",
    "ExplorerPage",
    "RunContent",
    "build_explorer",
    "describe_network",
    "explorer_page",
    "load_run_content",
    "write_explorer",
]
