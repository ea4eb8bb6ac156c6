"""Result memory that a layer's workspace reuses: only once nothing else refers to it."""

from __future__ import annotations

import numpy as np
import pytest

import cnnkit
from cnnkit.functional.fast.layout import NHWC, Workspace, in_layout, layout_of, result


def test_a_result_nobody_holds_is_reused():
    workspace = Workspace()
    first = workspace.result("y", (4, 5), np.float32, np)
    address = first.ctypes.data
    del first
    again = workspace.result("y", (4, 5), np.float32, np)
    assert again.ctypes.data == address


@pytest.mark.parametrize("holder", ["variable", "view", "list"])
def test_a_result_still_held_anywhere_is_never_reused(holder):
    workspace = Workspace()
    first = workspace.result("y", (4, 5), np.float32, np)
    first[...] = 7
    kept = {"variable": first, "view": first[1:, ::2], "list": [first]}[holder]
    del first
    for _ in range(3):  # more calls than there are slots
        workspace.result("y", (4, 5), np.float32, np)[...] = -1
    held = kept[0] if holder == "list" else kept
    assert (held == 7).all()


def test_other_shapes_and_dtypes_get_their_own_memory():
    workspace = Workspace()
    first = workspace.result("y", (4, 5), np.float32, np)
    address = first.ctypes.data
    del first
    assert workspace.result("y", (5, 4), np.float32, np).ctypes.data != address
    assert workspace.result("y", (4, 5), np.float64, np).dtype == np.float64


def test_result_helper_stores_in_the_layout_asked_for():
    workspace = Workspace()
    y = result(workspace, "y", (2, 3, 4, 5), np.float32, NHWC, np)
    assert y.shape == (2, 3, 4, 5) and layout_of(y) == NHWC
    assert result(None, "y", (2, 3, 4, 5), np.float32, NHWC, np).shape == (2, 3, 4, 5)


def test_huge_results_are_not_kept(monkeypatch):
    from cnnkit.functional.fast import layout

    monkeypatch.setattr(layout, "RESULT_MAX_BYTES", 16)
    workspace = Workspace()
    workspace.result("y", (100,), np.float32, np)
    assert workspace.nbytes() == 0


def _layers(rng):
    return {
        "conv-rows": (cnnkit.Conv2d(32, 32, 3, padding=1, rng=rng), (2, 32, 8, 8), NHWC),
        "conv-images": (cnnkit.Conv2d(3, 4, 3, padding=1, rng=rng), (3, 3, 16, 16), None),
        "relu": (cnnkit.ReLU(), (4, 8, 16, 16), None),
        "relu-nhwc": (cnnkit.ReLU(), (4, 8, 16, 16), NHWC),
        "maxpool": (cnnkit.MaxPool2d(2), (4, 8, 16, 16), NHWC),
        "avgpool": (cnnkit.AvgPool2d(2), (4, 8, 16, 16), None),
    }


@pytest.mark.parametrize("name", list(_layers(np.random.default_rng(0))))
def test_outputs_and_gradients_the_caller_keeps_never_change(name):
    """Whatever the layer reuses from call to call, results the caller holds stay as given."""
    rng = np.random.default_rng(1)
    layer, shape, layout = _layers(rng)[name]
    kept = []
    for _ in range(4):
        x = rng.standard_normal(shape).astype(np.float32)
        x = in_layout(x, layout) if layout else x
        y = layer.forward(x)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = layer.backward(dy)
        kept.append((y, y.copy(), dx, dx.copy()))
    for y, y_then, dx, dx_then in kept:
        np.testing.assert_array_equal(y, y_then)
        np.testing.assert_array_equal(dx, dx_then)


@pytest.mark.parametrize("name", ["conv-rows", "relu", "maxpool"])
def test_an_output_the_caller_let_go_of_is_reused(name):
    rng = np.random.default_rng(2)
    layer, shape, layout = _layers(rng)[name]
    x = rng.standard_normal(shape).astype(np.float32)
    x = in_layout(x, layout) if layout else x
    address = layer.forward(x).__array_interface__["data"][0]
    assert layer.forward(x).__array_interface__["data"][0] == address
