"""The convolution engine's internal paths: every plan, every input layout, reused workspaces.

``plan_conv`` picks one way to compute a convolution from the shapes; these tests force each
of the others on the same data (column orders, output layouts, chunk sizes, kept columns or a
rebuilt im2col) and hold all of them to the loop oracle in ``tests/reference.py`` (forward) and
to PyTorch (forward and every gradient).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from reference import conv2d_reference

from cnnkit.functional.fast.conv import conv2d_backward, conv2d_forward
from cnnkit.functional.fast.layout import CNHW, NCHW, NHWC, Workspace, in_layout, layout_of
from cnnkit.functional.fast.plan import IMAGES, ConvPlan, plan_conv
from cnnkit.functional.fast.windows import COLUMNS, ROWS

torch = pytest.importorskip("torch")

TOLERANCE = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-9, atol=1e-9)}

# N, C, H, W, D, (KH, KW), (SH, SW), ((top, bottom), (left, right))
SHAPES = {
    "3x3 pad1": (5, 3, 7, 6, 4, (3, 3), (1, 1), ((1, 1), (1, 1))),
    "stride2 floor": (3, 2, 8, 9, 3, (3, 2), (2, 3), ((0, 0), (1, 1))),
    "same-even": (4, 2, 6, 5, 2, (4, 4), (1, 1), ((1, 2), (1, 2))),
    "1x1": (2, 4, 3, 3, 5, (1, 1), (1, 1), ((0, 0), (0, 0))),
}


def _expected(x, w, b, stride, padding, dy):
    """Forward and gradients in float64 by PyTorch (asymmetric padding by an explicit pad)."""
    (top, bottom), (left, right) = padding
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    tw = torch.from_numpy(w.astype(np.float64)).requires_grad_()
    tb = torch.from_numpy(b.astype(np.float64)).requires_grad_()
    padded = torch.nn.functional.pad(tx, (left, right, top, bottom))
    ty = torch.nn.functional.conv2d(padded, tw, tb, stride)
    ty.backward(torch.from_numpy(dy.astype(np.float64)))
    return ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


def _data(shape_name, dtype, seed=0):
    n, c, h, w, d, kernel, stride, padding = SHAPES[shape_name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((d, c, *kernel)).astype(dtype)
    bias = rng.standard_normal(d).astype(dtype)
    (top, bottom), (left, right) = padding
    oh = (h + top + bottom - kernel[0]) // stride[0] + 1
    ow = (w + left + right - kernel[1]) // stride[1] + 1
    dy = rng.standard_normal((n, d, oh, ow)).astype(dtype)
    return x, weight, bias, stride, padding, dy


def _assert_close(actual, expected, dtype, what):
    np.testing.assert_allclose(actual, expected, **TOLERANCE[dtype], err_msg=what)


# Every column order, output layout and kept/rebuilt choice; each source layout with one chunk
# size (1 image, 2 images with a short last chunk, or the whole batch).
PLANS = [
    ConvPlan(order, source, out, chunk, keep)
    for order, (source, chunk), out, keep in itertools.product(
        (ROWS, COLUMNS, IMAGES), ((NHWC, 1), (NCHW, 2), (CNHW, 64)), (NCHW, NHWC), (False, True)
    )
] + [  # the input gradient computed in another order and stored in another layout
    ConvPlan(ROWS, NHWC, NHWC, chunk, keep, dx_order, dx_layout)
    for chunk, keep, (dx_order, dx_layout) in itertools.product(
        (2, 64), (False, True), ((IMAGES, NCHW), (IMAGES, CNHW), (COLUMNS, NCHW), (ROWS, NCHW))
    )
]


def _plan_id(plan: ConvPlan) -> str:
    order = {ROWS: "rows", COLUMNS: "columns", IMAGES: "images"}[plan.order]
    keep = "keep" if plan.keep_columns else "rebuild"
    text = f"{order}-from-{plan.source_layout}-to-{plan.out_layout}-chunk{plan.chunk}-{keep}"
    if plan.dx_order is not None:
        names = {ROWS: "rows", COLUMNS: "columns", IMAGES: "images"}
        text += f"-dx-{names[plan.dx_order]}-{plan.dx_layout}"
    return text


@pytest.mark.parametrize("plan", PLANS, ids=_plan_id)
@pytest.mark.parametrize("shape_name", SHAPES)
def test_every_plan_matches_torch(plan, shape_name):
    dtype = np.float64
    x, w, b, stride, padding, dy = _data(shape_name, dtype)
    y, cache = conv2d_forward(x, w, b, stride=stride, padding=padding, plan=plan)
    dx, dw, db = conv2d_backward(dy, cache)
    y_ref, dx_ref, dw_ref, db_ref = _expected(x, w, b, stride, padding, dy)
    assert y.shape == y_ref.shape and dx.shape == x.shape and dw.shape == w.shape
    assert y.dtype == dx.dtype == dw.dtype == db.dtype == dtype
    _assert_close(y, y_ref, dtype, "forward")
    _assert_close(dx, dx_ref, dtype, "dx")
    _assert_close(dw, dw_ref, dtype, "dw")
    _assert_close(db, db_ref, dtype, "db")
    assert layout_of(y) == plan.out_layout or y.shape[1] == 1 or y.shape[0] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [NCHW, NHWC, CNHW, "strided"])
@pytest.mark.parametrize("shape_name", SHAPES)
def test_automatic_plan_matches_the_loop_oracle_for_every_input_layout(shape_name, layout, dtype):
    x, w, b, stride, padding, dy = _data(shape_name, dtype, seed=1)
    if layout == "strided":
        wide = np.zeros((*x.shape[:3], 2 * x.shape[3]), dtype)
        wide[..., ::2] = x
        source = wide[..., ::2]
    else:
        source = in_layout(x, layout)
    y, cache = conv2d_forward(source, w, b, stride=stride, padding=padding)
    _assert_close(y, conv2d_reference(x, w, b, stride, padding), dtype, "forward")
    dx, dw, db = conv2d_backward(in_layout(dy, NHWC), cache)
    _, dx_ref, dw_ref, db_ref = _expected(x, w, b, stride, padding, dy)
    _assert_close(dx, dx_ref, dtype, "dx")
    _assert_close(dw, dw_ref, dtype, "dw")
    _assert_close(db, db_ref, dtype, "db")


def test_backward_without_input_gradient_gives_the_same_parameter_gradients():
    x, w, b, stride, padding, dy = _data("3x3 pad1", np.float64)
    _, cache = conv2d_forward(x, w, b, stride=stride, padding=padding)
    _, dw, db = conv2d_backward(dy, cache)
    none, dw_only, db_only = conv2d_backward(dy, cache, input_grad=False)
    assert none is None
    np.testing.assert_array_equal(dw_only, dw)
    np.testing.assert_array_equal(db_only, db)


def test_a_workspace_reused_across_shapes_never_mixes_calls():
    """One workspace through calls of different shapes, dtypes, plans and paddings: each call
    must give what a fresh computation gives, and outputs from earlier calls stay intact."""
    workspace = Workspace()
    held = []
    for index, (shape_name, dtype, chunk, keep) in enumerate(
        itertools.product(SHAPES, (np.float32, np.float64), (1, 64), (True, False))
    ):
        x, w, b, stride, padding, dy = _data(shape_name, dtype, seed=index)
        plan = plan_conv(x.shape, layout_of(x), w.shape, stride, padding, x.dtype.itemsize)
        plan = ConvPlan(plan.order, plan.source_layout, plan.out_layout, chunk, keep)
        y, cache = conv2d_forward(
            x, w, b, stride=stride, padding=padding, workspace=workspace, plan=plan
        )
        dx, dw, db = conv2d_backward(dy, cache, workspace=workspace)
        fresh_y, fresh_cache = conv2d_forward(x, w, b, stride=stride, padding=padding, plan=plan)
        fresh = conv2d_backward(dy, fresh_cache)
        for got, want in zip((y, dx, dw, db), (fresh_y, *fresh), strict=True):
            np.testing.assert_array_equal(got, want)
        held.append((y.copy(), y, dx.copy(), dx))
    for copy_y, y, copy_dx, dx in held:
        np.testing.assert_array_equal(y, copy_y)
        np.testing.assert_array_equal(dx, copy_dx)


def test_backward_twice_from_one_cache_gives_the_same_gradients():
    workspace = Workspace()
    x, w, b, stride, padding, dy = _data("stride2 floor", np.float32)
    for keep in (True, False):
        plan = ConvPlan(ROWS, NHWC, NHWC, 1, keep)
        _, cache = conv2d_forward(
            x, w, b, stride=stride, padding=padding, workspace=workspace, plan=plan
        )
        first = conv2d_backward(dy, cache, workspace=workspace)
        second = conv2d_backward(dy, cache, workspace=workspace)
        for a, c in zip(first, second, strict=True):
            np.testing.assert_array_equal(a, c)


def test_forward_and_backward_leave_their_inputs_alone():
    x, w, b, stride, padding, dy = _data("3x3 pad1", np.float32)
    copies = [a.copy() for a in (x, w, b, dy)]
    for plan in PLANS[::7]:
        _, cache = conv2d_forward(x, w, b, stride=stride, padding=padding, plan=plan)
        conv2d_backward(dy, cache)
    for original, copy in zip((x, w, b, dy), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


def test_planner_reads_wide_layers_channels_last_and_writes_narrow_ones_nchw():
    wide = plan_conv((64, 32, 32, 32), NHWC, (64, 32, 3, 3), (1, 1), ((1, 1), (1, 1)), 4)
    assert (wide.order, wide.out_layout) == (ROWS, NHWC)
    assert not wide.keep_columns and 1 <= wide.chunk < 64
    first = plan_conv((64, 1, 28, 28), NCHW, (6, 1, 5, 5), (1, 1), ((2, 2), (2, 2)), 4)
    assert (first.out_layout, first.keep_columns) == (NCHW, True)
    # LeNet's conv2: channels-last rows forward, per-image columns back into the NCHW input
    second = plan_conv((64, 6, 14, 14), NCHW, (16, 6, 5, 5), (1, 1), ((0, 0), (0, 0)), 4)
    assert (second.order, second.out_layout) == (ROWS, NHWC)
    assert (second.dx_order, second.dx_layout) == (IMAGES, NCHW)
