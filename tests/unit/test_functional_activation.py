"""ReLU's compiled loop (where numba is installed) against the NumPy path."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.functional.fast import jit as fastjit
from cnnkit.functional.fast import window_kernels
from cnnkit.functional.fast.activation import relu_backward, relu_forward
from cnnkit.functional.fast.layout import CNHW, NHWC, Workspace, in_layout, layout_of

pytestmark = pytest.mark.skipif(not fastjit.jit_available(), reason="numba not installed")

SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45]


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[: len(SPECIAL)] = SPECIAL
    dy = rng.standard_normal(shape).astype(dtype)
    return x, dy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [None, NHWC, CNHW])
def test_compiled_relu_gives_what_numpy_gives(layout, dtype):
    x, dy = _data((4, 6, 16, 16), dtype)
    if layout:
        x, dy = in_layout(x, layout), in_layout(dy, layout)
    with fastjit.use_jit(False):
        y_numpy, mask_numpy = relu_forward(x)
        dx_numpy = relu_backward(dy, mask_numpy)
    with fastjit.use_jit(True):
        assert window_kernels.relu(x) is not None  # the loop really runs
        y, mask = relu_forward(x, Workspace())
        dx = relu_backward(dy, mask, Workspace())
    np.testing.assert_array_equal(y, y_numpy)  # NaN where NumPy has NaN
    assert np.array_equal(np.signbit(y), np.signbit(y_numpy))  # even the zeros' signs
    np.testing.assert_array_equal(mask, mask_numpy)
    np.testing.assert_array_equal(dx, dx_numpy)
    assert layout_of(y) == layout_of(x) and layout_of(dx) == layout_of(dy)
    assert y.dtype == dx.dtype == dtype


def test_compiled_relu_backward_stops_infinite_gradients_as_pytorch_does():
    x, dy = _data((64, 64), np.float32)
    dy[x <= 0] = np.inf
    with fastjit.use_jit(True):
        _, mask = relu_forward(x)
        dx = relu_backward(dy, mask)
    assert np.isnan(dx[np.isnan(x)]).sum() == 0  # dy is finite or inf there; passes through
    assert (dx[x <= 0] == 0).all()
    np.testing.assert_array_equal(dx[mask], dy[mask])


def test_strided_or_mixed_layouts_stay_on_numpy():
    x, dy = _data((4, 6, 16, 16), np.float32)
    with fastjit.use_jit(True):
        assert window_kernels.relu(x[:, :, ::2]) is None
        _, mask = relu_forward(x)
        assert window_kernels.relu_backward(in_layout(dy, NHWC), mask) is None
        dx = relu_backward(in_layout(dy, NHWC), mask)  # NumPy takes it, same values
    np.testing.assert_array_equal(dx, np.where(mask, dy, 0))
