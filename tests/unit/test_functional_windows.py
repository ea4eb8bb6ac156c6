"""im2col (``unfold``) and col2im (``fold``) for the IMAGES column order: the compiled loops
(where numba is installed) against the NumPy path, element for element, and the convolutions
built on them against PyTorch both ways.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.functional.fast import jit as fastjit
from cnnkit.functional.fast import window_kernels
from cnnkit.functional.fast.conv import conv2d_backward, conv2d_forward
from cnnkit.functional.fast.layout import CNHW, NCHW, NHWC, in_layout
from cnnkit.functional.fast.plan import IMAGES, ConvPlan
from cnnkit.functional.fast.windows import (
    COLUMNS,
    ROWS,
    _sizes,
    columns_shape,
    fold,
    fold_into,
    unfold,
)

torch = pytest.importorskip("torch")

JIT = [
    pytest.param(False, id="numpy"),
    pytest.param(
        True,
        id="numba",
        marks=pytest.mark.skipif(not fastjit.jit_available(), reason="numba not installed"),
    ),
]
# (padded shape, kernel, stride): LeNet's two layers (chunks of their batch), strides above 1,
# floor leftovers, and one too small for the loops (NumPy either way).
CASES = {
    "lenet-conv1": ((13, 1, 32, 32), (5, 5), (1, 1)),
    "lenet-conv2": ((17, 6, 14, 14), (5, 5), (1, 1)),
    "3x2-s2x3-floor": ((6, 4, 17, 20), (3, 2), (2, 3)),
    "1x1": ((8, 8, 9, 9), (1, 1), (1, 1)),
    "tiny": ((2, 2, 5, 5), (3, 3), (1, 1)),
}


def _columns_shape(shape, kernel, stride):
    sizes = _sizes(shape, kernel, stride)
    return tuple(sizes[axis] for axis in IMAGES)


@pytest.mark.skipif(not fastjit.jit_available(), reason="numba not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [NCHW, CNHW])
@pytest.mark.parametrize("case", CASES)
def test_compiled_unfold_and_fold_give_exactly_what_numpy_gives(case, layout, dtype):
    shape, kernel, stride = CASES[case]
    rng = np.random.default_rng(0)
    x = in_layout(rng.standard_normal(shape).astype(dtype), layout)
    dcols = rng.standard_normal(_columns_shape(shape, kernel, stride)).astype(dtype)
    start = rng.standard_normal(shape).astype(dtype)  # fold adds onto what is there
    results = {}
    for jit in (False, True):
        with fastjit.use_jit(jit):
            cols = np.full(dcols.shape, np.nan, dtype)
            unfold(x, kernel, stride, cols, IMAGES)
            target = in_layout(start.copy(), layout)
            fold(dcols, target, kernel, stride, IMAGES)
            results[jit] = cols, target
    np.testing.assert_array_equal(results[True][0], results[False][0])
    np.testing.assert_array_equal(results[True][1], results[False][1])


@pytest.mark.skipif(not fastjit.jit_available(), reason="numba not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_compiled_fold_of_columns_order_gives_exactly_what_numpy_gives(case, dtype):
    """COLUMNS (C, KH, KW, N, OH, OW) goes through the same loop, on a transposed view."""
    shape, kernel, stride = CASES[case]
    rng = np.random.default_rng(6)
    sizes = _sizes(shape, kernel, stride)
    dcols = rng.standard_normal([sizes[axis] for axis in COLUMNS]).astype(dtype)
    start = rng.standard_normal(shape).astype(dtype)
    results = {}
    for jit in (False, True):
        with fastjit.use_jit(jit):
            target = start.copy()
            fold(dcols, target, kernel, stride, COLUMNS)
            results[jit] = target
    np.testing.assert_array_equal(results[True], results[False])


@pytest.mark.skipif(not fastjit.jit_available(), reason="numba not installed")
def test_loops_take_only_what_they_can():
    shape, kernel, stride = CASES["lenet-conv2"]
    x = np.zeros(shape, np.float32)
    cols = np.zeros(_columns_shape(shape, kernel, stride), np.float32)
    with fastjit.use_jit(True):
        assert window_kernels.unfold_images(x, kernel, stride, cols)
        assert window_kernels.fold_images(cols, x, kernel, stride)
        assert not window_kernels.fold_images(cols.astype(np.float64), x, kernel, stride)
        assert not window_kernels.fold_images(cols[:1, :1, :1], x[:1, :1], kernel, stride)  # tiny
    with fastjit.use_jit(False):
        assert not window_kernels.unfold_images(x, kernel, stride, cols)
        assert not window_kernels.fold_images(cols, x, kernel, stride)


@pytest.mark.parametrize("jit", JIT)
def test_other_orders_stay_on_numpy_and_agree(jit):
    """ROWS from NCHW goes through NumPy's strided copy whatever the switch (from channels-last
    input, see unfold_rows); fold is unfold's adjoint."""
    shape, kernel, stride = CASES["lenet-conv2"]
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    with fastjit.use_jit(jit):
        images = np.empty(_columns_shape(shape, kernel, stride))
        unfold(x, kernel, stride, images, IMAGES)
        rows = np.empty(images.size)
        unfold(x, kernel, stride, rows, ROWS)
        # <unfold(x), c> == <x, fold(c)>
        c = rng.standard_normal(images.shape)
        back = np.zeros(shape)
        fold(c, back, kernel, stride, IMAGES)
    np.testing.assert_array_equal(
        rows.reshape(17, 10, 10, 5, 5, 6).transpose(0, 5, 3, 4, 1, 2), images
    )
    np.testing.assert_allclose(np.vdot(images, c), np.vdot(x, back), rtol=1e-12)


@pytest.mark.parametrize("jit", JIT)
@pytest.mark.parametrize(
    "geometry",
    [
        ((64, 1, 28, 28), 6, (5, 5), (1, 1), ((2, 2), (2, 2))),  # LeNet conv1
        ((64, 6, 14, 14), 16, (5, 5), (1, 1), ((0, 0), (0, 0))),  # LeNet conv2
        ((9, 3, 15, 16), 5, (3, 4), (2, 3), ((1, 0), (2, 1))),
    ],
    ids=["lenet-conv1", "lenet-conv2", "strided-padded"],
)
def test_images_plan_matches_torch_both_ways(geometry, jit):
    (n, c, h, w), d, kernel, stride, padding = geometry
    x = np.random.default_rng(3).standard_normal((n, c, h, w)).astype(np.float32)
    plan = ConvPlan(IMAGES, NCHW, NCHW, 5, True)
    _assert_plan_matches_torch(x, d, kernel, stride, padding, plan, jit)


def _assert_plan_matches_torch(x, d, kernel, stride, padding, plan, jit):
    """The plan's forward and every gradient, with the loops on or off, against PyTorch."""
    rng = np.random.default_rng(4)
    weight = rng.standard_normal((d, x.shape[1], *kernel)).astype(np.float32)
    bias = rng.standard_normal(d).astype(np.float32)
    with fastjit.use_jit(jit):
        y, cache = conv2d_forward(x, weight, bias, stride=stride, padding=padding, plan=plan)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx, dw, db = conv2d_backward(dy, cache)
    (top, bottom), (left, right) = padding
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    tw = torch.from_numpy(weight.astype(np.float64)).requires_grad_()
    ty = torch.nn.functional.conv2d(
        torch.nn.functional.pad(tx, (left, right, top, bottom)),
        tw,
        torch.from_numpy(bias.astype(np.float64)),
        stride,
    )
    ty.backward(torch.from_numpy(dy.astype(np.float64)))
    tolerance = dict(rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tolerance)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **tolerance)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=2e-4, atol=2e-3)
    np.testing.assert_allclose(db, dy.sum((0, 2, 3)), rtol=1e-5, atol=1e-4)


# Channels-last input gradients (ROWS columns, the order of wide layers), written straight into
# dx by ``fold_into``: (N, C, H, W), kernel, stride, ((top, bottom), (left, right)).
ROWS_CASES = {
    "3x3-pad1": ((3, 32, 12, 12), (3, 3), (1, 1), ((1, 1), (1, 1))),
    "stride2-floor": ((2, 16, 15, 14), (3, 2), (2, 3), ((0, 1), (2, 0))),
    "same-even": ((2, 8, 11, 10), (4, 4), (1, 1), ((1, 2), (1, 2))),
    "alexnet-like": ((1, 3, 47, 47), (11, 11), (4, 4), ((0, 0), (0, 0))),
}


def _fold_numpy(dcols, shape, kernel, stride, padding):
    """The NumPy path: fold into a zeroed padded array, then crop."""
    n, c, h, w = shape
    (top, bottom), (left, right) = padding
    target = in_layout(np.zeros((n, c, h + top + bottom, w + left + right), dcols.dtype), NHWC)
    fold(dcols, target, kernel, stride, ROWS)
    return target[:, :, top : top + h, left : left + w]


@pytest.mark.skipif(not fastjit.jit_available(), reason="numba not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ROWS_CASES)
def test_compiled_fold_into_gives_exactly_what_numpy_gives(case, dtype):
    shape, kernel, stride, padding = ROWS_CASES[case]
    n, c, h, w = shape
    (top, bottom), (left, right) = padding
    padded_shape = (n, c, h + top + bottom, w + left + right)
    rng = np.random.default_rng(4)
    dcols = rng.standard_normal(np.prod(columns_shape(padded_shape, kernel, stride, ROWS)))
    dcols = dcols.astype(dtype)
    dx = in_layout(np.full(shape, np.nan, dtype), NHWC)  # every element must be written
    with fastjit.use_jit(True):
        assert fold_into(dcols, dx, kernel, stride, padding, ROWS)
    np.testing.assert_array_equal(dx, _fold_numpy(dcols, shape, kernel, stride, padding))


@pytest.mark.skipif(not fastjit.jit_available(), reason="numba not installed")
def test_fold_into_leaves_what_it_cannot_take_to_numpy():
    shape, kernel, stride, padding = ROWS_CASES["3x3-pad1"]
    size = np.prod(columns_shape((3, 32, 14, 14), kernel, stride, ROWS))
    dcols = np.zeros(size, np.float32)
    nhwc = in_layout(np.zeros(shape, np.float32), NHWC)
    with fastjit.use_jit(True):
        assert not fold_into(dcols, np.zeros(shape, np.float32), kernel, stride, padding, ROWS)
        assert not fold_into(dcols.astype(np.float64), nhwc, kernel, stride, padding, ROWS)
        assert not fold_into(dcols, nhwc, kernel, stride, padding, COLUMNS)  # channels not last
    with fastjit.use_jit(False):
        assert not fold_into(dcols, nhwc, kernel, stride, padding, ROWS)


@pytest.mark.parametrize("jit", JIT)
def test_rows_plan_matches_torch_both_ways(jit):
    (n, c, h, w), kernel, stride, padding = ROWS_CASES["stride2-floor"]
    x = in_layout(np.random.default_rng(5).standard_normal((n, c, h, w)), NHWC)
    plan = ConvPlan(ROWS, NHWC, NHWC, 1, False)
    _assert_plan_matches_torch(x.astype(np.float32), 24, kernel, stride, padding, plan, jit)
