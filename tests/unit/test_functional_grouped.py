"""The engines' padding modes, grouped convolution paths and dilated windows: pad2d against
PyTorch's F.pad and its adjoint, the depthwise loops on every input layout and filter shape
against the reference, the grouped product (chunked, without the input gradient, an empty
batch), and the compiled im2col/col2im loops with dilation against the NumPy path."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.functional import padding as padding_module
from cnnkit.functional import reference
from cnnkit.functional.fast import conv2d_backward, conv2d_forward, grouped, window_kernels, windows
from cnnkit.functional.fast.jit import use_jit
from cnnkit.functional.fast.layout import CNHW, NCHW, NHWC, Workspace, in_layout, layout_of
from cnnkit.functional.fast.plan import IMAGES

torch = pytest.importorskip("torch")

MODES = {
    "reflect": "reflect",
    "replicate": "replicate",
    "circular": "circular",
    "zeros": "constant",
}
SIDES = [((1, 2), (3, 0)), ((0, 0), (2, 2)), ((3, 3), (4, 4))]  # the last wraps a 3x4 input fully


@pytest.mark.parametrize("sides", SIDES, ids=["uneven", "columns", "full"])
@pytest.mark.parametrize("mode", list(MODES))
def test_pad2d_matches_pytorch_forward_and_backward(mode, sides):
    (top, bottom), (left, right) = sides
    if mode == "reflect" and max(top, bottom, left, right) >= 3:
        sides = ((1, 2), (2, 3))  # reflect needs padding < size
        (top, bottom), (left, right) = sides
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 3, 4))
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.pad(tx, (left, right, top, bottom), mode=MODES[mode])
    dy = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(dy))
    y, saved = padding_module.pad2d_forward(x, sides, mode)
    dx = padding_module.pad2d_backward(dy, saved)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert dx.flags.c_contiguous and dx.shape == x.shape
    # the adjoint: <pad(x), g> == <x, pad_backward(g)>
    assert np.isclose(np.sum(y * dy), np.sum(x * dx))


def test_both_engines_pad_with_the_same_functions():
    from cnnkit.functional import fast

    assert fast.pad2d_forward is reference.pad2d_forward is padding_module.pad2d_forward
    assert fast.pad2d_backward is reference.pad2d_backward


def _data(c, d, groups, kernel=(3, 3), dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, c, 7, 9)).astype(dtype)
    w = rng.standard_normal((d, c // groups, *kernel)).astype(dtype)
    b = rng.standard_normal(d).astype(dtype)
    return x, w, b


OPTIONS = [
    dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1)),
    dict(stride=(2, 1), padding=((2, 0), (1, 3)), dilation=(2, 1)),
    dict(stride=(1, 3), padding=((0, 0), (0, 0)), dilation=(1, 2)),
]


@pytest.mark.parametrize("kernel", [(3, 3), (2, 4), (1, 1)], ids=["3x3", "2x4", "1x1"])
@pytest.mark.parametrize("layout", [NCHW, NHWC, CNHW])
@pytest.mark.parametrize("options", OPTIONS, ids=["pad1", "uneven", "none"])
@pytest.mark.parametrize(("c", "d"), [(4, 4), (3, 6)], ids=["depthwise", "multiplier 2"])
def test_depthwise_loops_equal_the_reference(c, d, options, layout, kernel):
    x, w, b = _data(c, d, c, kernel)
    ref_y, ref_saved = reference.conv2d_forward(x, w, b, groups=c, **options)
    dy = np.random.default_rng(1).standard_normal(ref_y.shape)
    expected = reference.conv2d_backward(dy, ref_saved)
    y, cache = conv2d_forward(in_layout(x, layout), w, b, groups=c, **options)
    assert cache.path == grouped.DEPTHWISE  # the compiled loops ran
    dx, dw, db = conv2d_backward(in_layout(dy, layout), cache)
    for ours, theirs in zip((y, dx, dw, db), (ref_y, *expected), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    _, dw_only, db_only = conv2d_backward(dy, cache, input_grad=False)
    np.testing.assert_allclose(dw_only, dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db_only, db, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "numpy"])
@pytest.mark.parametrize(("c", "d", "groups"), [(4, 4, 4), (6, 9, 3), (4, 2, 2)])
def test_grouped_paths_equal_the_reference_in_float32(c, d, groups, jit):
    x, w, b = _data(c, d, groups, dtype=np.float32, seed=2)
    options = OPTIONS[1]
    ref_y, ref_saved = reference.conv2d_forward(x, w, b, groups=groups, **options)
    dy = np.random.default_rng(3).standard_normal(ref_y.shape).astype(np.float32)
    expected = reference.conv2d_backward(dy, ref_saved)
    workspace = Workspace()
    with use_jit(jit):
        y, cache = conv2d_forward(x, w, b, groups=groups, workspace=workspace, **options)
        dx, dw, db = conv2d_backward(dy, cache, workspace=workspace)
        none, dw_only, _ = conv2d_backward(dy, cache, workspace=workspace, input_grad=False)
    depthwise = jit and groups == c
    assert cache.path == (grouped.DEPTHWISE if depthwise else grouped.PRODUCT)
    assert layout_of(y) == (NCHW if depthwise else CNHW)
    assert y.dtype == dx.dtype == dw.dtype == db.dtype == np.float32
    for ours, theirs in zip((y, dx, dw, db), (ref_y, *expected), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=2e-5)
    assert none is None
    np.testing.assert_allclose(dw_only, dw, rtol=1e-6, atol=1e-6)


def test_grouped_product_in_chunks_gives_the_same_numbers(monkeypatch):
    monkeypatch.setattr(grouped, "CHUNK_BYTES", 80_000)  # 2 images per chunk, then 1
    x, w, b = _data(8, 8, 2, seed=4)  # columns: 8*9*63 float64 = 36,288 bytes per image
    assert list(grouped._chunks(3, 8 * 9 * 63 * 8)) == [(0, 2), (2, 3)]
    options = OPTIONS[0]
    y, cache = conv2d_forward(x, w, b, groups=2, **options)
    ref_y, ref_saved = reference.conv2d_forward(x, w, b, groups=2, **options)
    dy = np.random.default_rng(5).standard_normal(y.shape)
    ours = (y, *conv2d_backward(dy, cache))
    expected = (ref_y, *reference.conv2d_backward(dy, ref_saved))
    for value, theirs in zip(ours, expected, strict=True):
        np.testing.assert_allclose(value, theirs, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "numpy"])
@pytest.mark.parametrize(("c", "d", "groups"), [(4, 4, 4), (4, 6, 2)])
def test_an_empty_batch_gives_empty_results(c, d, groups, jit):
    x, w, b = _data(c, d, groups)
    with use_jit(jit):
        y, cache = conv2d_forward(x[:0], w, b, groups=groups, **OPTIONS[0])
        dx, dw, db = conv2d_backward(y, cache)
    assert y.shape == (0, d, 7, 9) and dx.shape == (0, c, 7, 9)
    assert not dw.any() and not db.any() and dw.shape == w.shape


# Dilated windows: the compiled im2col/col2im loops give exactly the NumPy path's numbers.
DILATED = {  # padded input (N, C, Hp, Wp), kernel, stride, dilation
    "3x3 d2": ((3, 16, 12, 11), (3, 3), (1, 1), (2, 2)),
    "2x3 s2 d(3,2)": ((4, 8, 15, 14), (2, 3), (2, 3), (3, 2)),
    "2x3 s2 d(3,1)": ((4, 16, 15, 14), (2, 3), (2, 3), (3, 1)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(DILATED))
def test_compiled_dilated_windows_give_exactly_what_numpy_gives(case, dtype):
    shape, kernel, stride, dilation = DILATED[case]
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(dtype)
    sizes = windows._sizes(shape, kernel, stride, dilation)
    results = {}
    for jit in (False, True):
        with use_jit(jit):
            found = []
            for order, layout in ((IMAGES, NCHW), (windows.ROWS, NHWC)):
                cols = np.full([sizes[axis] for axis in order], np.nan, dtype)
                found.append(
                    windows.unfold(in_layout(x, layout), kernel, stride, cols, order, dilation)
                )
            dcols = rng.standard_normal(found[0].shape).astype(dtype)
            target = x.copy()  # fold adds onto what is there
            windows.fold(dcols, target, kernel, stride, IMAGES, dilation)
            results[jit] = (*found, target)
            rng = np.random.default_rng(7)
            rng.standard_normal(shape)  # the same dcols on both passes
    for compiled, numpy in zip(results[True], results[False], strict=True):
        np.testing.assert_array_equal(compiled, numpy)
    with use_jit(True):
        assert window_kernels.unfold_rows(in_layout(x, NHWC), kernel, stride, found[1], dilation)


def test_undilated_rows_of_few_channels_stay_on_numpy():
    """Below 16 channels an undilated window row is one contiguous run for NumPy's copy."""
    x = np.random.default_rng(3).standard_normal((4, 6, 14, 14)).astype(np.float32)
    cols = np.empty((4, 10, 10, 5, 5, 6), np.float32)
    with use_jit(True):
        assert not window_kernels.unfold_rows(in_layout(x, NHWC), (5, 5), (1, 1), cols)
        wide = np.random.default_rng(3).standard_normal((4, 16, 6, 6)).astype(np.float32)
        cols = np.empty((4, 4, 4, 3, 3, 16), np.float32)
        assert window_kernels.unfold_rows(in_layout(wide, NHWC), (3, 3), (1, 1), cols)


@pytest.mark.parametrize("stride", [(1, 1), (2, 1)])
def test_compiled_dilated_fold_into_gives_exactly_what_numpy_gives(stride):
    n, c, h, w = 2, 16, 9, 10
    kernel, dilation, padding = (3, 3), (2, 3), ((2, 1), (3, 3))
    padded_shape = (n, c, h + 3, w + 6)
    sizes = windows._sizes(padded_shape, kernel, stride, dilation)
    rng = np.random.default_rng(8)
    dcols = rng.standard_normal([sizes[axis] for axis in windows.ROWS])
    dx = in_layout(np.empty((n, c, h, w)), NHWC)
    with use_jit(True):
        assert windows.fold_into(dcols, dx, kernel, stride, padding, windows.ROWS, dilation)
    target = np.zeros(padded_shape)
    with use_jit(False):
        windows.fold(dcols, target, kernel, stride, windows.ROWS, dilation)
    np.testing.assert_array_equal(dx, target[:, :, 2 : 2 + h, 3 : 3 + w])
