"""Pooling with PyTorch's options: dilation, ceil_mode and count_include_pad, against
torch.nn.MaxPool2d / AvgPool2d on both engines, in float32 and float64 (forward and dx), a
central-difference check, the architecture strings and the texts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnkit
from cnnkit import AvgPool2d, ConfigError, MaxPool2d, ShapeError, SpecError, shapes
from cnnkit.functional import reference_pool
from cnnkit.functional.fast import pool as fast_pool
from cnnkit.gradients import gradcheck

torch = pytest.importorskip("torch")

ENGINES = ["fast", "reference"]
DTYPES = [np.float32, np.float64]
TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}

# (H, W), kernel, stride, padding, dilation, ceil_mode: strides <, = and > the window, odd sizes,
# rectangular windows, padding with ceil_mode (the last window runs past the padding).
MAX_CASES = {
    "dilation-2": ((9, 9), 3, 1, 0, 2, False),
    "dilation-2-pad1-s2": ((10, 9), 3, 2, 1, 2, False),
    "dilation-rect": ((11, 12), (2, 3), (2, 1), (1, 1), (3, 2), False),
    "ceil-odd-s<F": ((7, 9), 3, 2, 0, 1, True),
    "ceil-odd-s=F": ((5, 7), 2, 2, 0, 1, True),
    "ceil-s>F": ((8, 10), 2, 3, 0, 1, True),
    "ceil-pad-overflow": ((6, 6), 3, 2, 1, 1, True),
    "ceil-pad-dropped-window": ((5, 5), 2, 2, 1, 1, True),  # a 4th would start in the padding
    "ceil-rect": ((7, 8), (3, 2), (2, 3), (1, 0), 1, True),
    "ceil-dilation": ((10, 11), 3, 2, 1, 2, True),
    "ceil-window-larger-than-input": ((2, 3), 3, 2, 0, 1, True),
    "floor-s>F": ((9, 9), 2, 3, 1, 1, False),
}
AVG_CASES = {  # (H, W), kernel, stride, padding, ceil_mode, count_include_pad
    "pad-excluded": ((7, 7), 3, 2, 1, False, False),
    "pad-included": ((7, 7), 3, 2, 1, False, True),
    "ceil-odd-s<F": ((7, 9), 3, 2, 0, True, True),
    "ceil-pad-overflow-included": ((6, 6), 3, 2, 1, True, True),
    "ceil-pad-overflow-excluded": ((6, 6), 3, 2, 1, True, False),
    "ceil-s>F-excluded": ((8, 10), 2, 3, 1, True, False),
    "ceil-s=F": ((5, 7), 2, 2, 0, True, True),
    "ceil-rect-excluded": ((9, 8), (3, 2), (2, 1), (1, 1), True, False),
    "floor-rect-excluded": ((9, 8), (3, 4), (3, 2), (1, 2), False, False),
}


def _distinct(shape, dtype, seed=0):
    """Distinct values, mostly negative (so -inf padding matters), no ties."""
    size = int(np.prod(shape))
    values = np.random.default_rng(seed).permutation(size) - 0.75 * size
    return (values / size).astype(dtype).reshape(shape)


def _compare(layer, torch_layer, x, engine, dtype):
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    ty = torch_layer(tx)
    dy = np.random.default_rng(1).standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(dy.astype(np.float64)))
    with cnnkit.use_engine(engine):
        y = layer.forward(x)
        dx = layer.backward(dy)
    assert layer.output_shape(x.shape) == y.shape == tuple(ty.shape)
    assert y.dtype == dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(y, ty.detach().numpy(), **TOLERANCE[dtype])
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool_options_match_torch(case, engine, dtype):
    hw, kernel, stride, padding, dilation, ceil = MAX_CASES[case]
    layer = MaxPool2d(kernel, stride, padding, dilation, ceil, rounding="floor")
    expected = torch.nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil)
    _compare(layer, expected, _distinct((2, 3, *hw), dtype), engine, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", AVG_CASES)
def test_avg_pool_options_match_torch(case, engine, dtype):
    hw, kernel, stride, padding, ceil, include = AVG_CASES[case]
    layer = AvgPool2d(kernel, stride, padding, ceil, include, rounding="floor")
    expected = torch.nn.AvgPool2d(
        kernel, stride, padding, ceil_mode=ceil, count_include_pad=include
    )
    _compare(layer, expected, _distinct((2, 3, *hw), dtype), engine, dtype)


@st.composite
def pool_options(draw):
    kind = draw(st.sampled_from(["max", "avg"]))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if kind == "max" else (1, 1)
    ceil = draw(st.booleans())
    include = draw(st.booleans())
    extents = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    hw = tuple(
        draw(st.integers(max(1, e - 2 * p), 13)) for e, p in zip(extents, padding, strict=True)
    )
    return kind, hw, kernel, stride, padding, dilation, ceil, include


@settings(max_examples=25, deadline=None)
@given(options=pool_options(), engine=st.sampled_from(ENGINES), dtype=st.sampled_from(DTYPES))
def test_random_pool_options_match_torch(options, engine, dtype):
    kind, hw, kernel, stride, padding, dilation, ceil, include = options
    if kind == "max":
        layer = MaxPool2d(kernel, stride, padding, dilation, ceil, rounding="floor")
        expected = torch.nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil)
    else:
        layer = AvgPool2d(kernel, stride, padding, ceil, include, rounding="floor")
        expected = torch.nn.AvgPool2d(kernel, stride, padding, ceil, include)
    x = _distinct((2, 2, *hw), dtype)
    try:
        layer.output_shape(x.shape)
    except ShapeError as error:  # a dilated window of padding only: PyTorch's max is -inf
        assert "reads only padding" in str(error)
        assert torch.isinf(expected(torch.from_numpy(x))).any()
        return
    _compare(layer, expected, x, engine, dtype)


def test_a_dilated_window_of_padding_only_is_refused():
    """PyTorch returns -inf there, and sends its gradient outside the input plane."""
    layer = MaxPool2d((1, 2), 1, (0, 1), (1, 2))
    x = np.ones((1, 1, 1, 1), np.float32)
    assert (
        torch.nn.functional.max_pool2d(torch.from_numpy(x), (1, 2), 1, (0, 1), (1, 2)).isinf().all()
    )
    with pytest.raises(
        ShapeError,
        match=r"^MaxPool2d\(kernel_size=\(1, 2\), stride=1, padding=\(0, 1\), dilation=\(1, 2\)\): "
        r"on 1x1, window 0 along the width reads only padding \(taps at padded columns 0, 2; "
        r"the input is 1\.\.1 of 0\.\.2\), so its max would be -inf; use padding=0 or a smaller "
        r"dilation$",
    ):
        layer.forward(x)
    assert MaxPool2d((1, 2), 1, (0, 1), (1, 2)).output_shape((1, 1, 1, 3)) == (1, 1, 1, 3)


GRAD_CASES = {
    "max-dilation-ceil": (lambda: MaxPool2d(3, 2, 1, 2, True), (1, 2, 8, 9)),
    "max-ceil-overflow": (lambda: MaxPool2d(3, 2, 1, ceil_mode=True), (2, 2, 6, 6)),
    "avg-ceil-excluded": (lambda: AvgPool2d(3, 2, 1, True, False), (2, 2, 6, 7)),
    "avg-excluded-rect": (lambda: AvgPool2d((3, 2), (2, 1), (1, 1), False, False), (1, 2, 7, 6)),
}


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("case", GRAD_CASES)
def test_central_differences(case):
    make, shape = GRAD_CASES[case]
    x = (np.random.default_rng(0).permutation(int(np.prod(shape))).reshape(shape) - 20) * 0.1
    report = gradcheck(make(), x, rng=np.random.default_rng(3))
    assert [check.name for check in report.checks] == ["dx"]
    assert report.ok, f"\n{report}"


def test_avg_divisors_are_pytorchs_rule():
    # 6 rows, F=3, S=2, P=1, ceil: windows start at padded rows 0, 2, 4, 6; the last one holds
    # input row 5 and one padding row (and one position past the padding, never counted).
    assert reference_pool.avg_divisors(6, 3, 2, 1, 4) == [3, 3, 3, 2]
    assert reference_pool.avg_divisors(6, 3, 2, 1, 4, include_pad=False) == [2, 3, 3, 1]
    ones = torch.ones(1, 1, 6, 1, dtype=torch.float64)
    counted = torch.nn.functional.avg_pool2d(ones, (3, 1), (2, 1), (1, 0), ceil_mode=True)
    np.testing.assert_allclose(counted.numpy().ravel(), [2 / 3, 1, 1, 1 / 2])


def test_default_options_keep_the_fast_paths(monkeypatch):
    """The separable fast path and its 2x2 entry are what the default options run; ceil_mode on
    sizes that divide adds no padding and stays there."""
    calls = []
    original = fast_pool.kernels.max_pool_2x2

    def spy(x, kernel, stride, padding, workspace=None):
        calls.append(padding)
        return original(x, kernel, stride, padding, workspace)

    monkeypatch.setattr(fast_pool.kernels, "max_pool_2x2", spy)
    x = _distinct((2, 4, 8, 8), np.float32)
    for layer in (MaxPool2d(2), MaxPool2d(2, ceil_mode=True)):
        with cnnkit.use_engine("fast"):
            layer.forward(x)
    assert calls == [((0, 0), (0, 0))] * 2
    with cnnkit.use_engine("fast"):
        MaxPool2d(2, dilation=2, rounding="floor").forward(x)  # dilated: the general path
    assert len(calls) == 2


def test_the_summary_counts_what_a_dilated_max_pool_keeps():
    layer = MaxPool2d(3, 2, 1, 2, True)
    x = _distinct((3, 4, 11, 10), np.float32)
    with cnnkit.use_engine("fast"):
        y, cache = fast_pool.max_pool2d_forward(
            x, kernel=(3, 3), stride=(2, 2), padding=layer.sides, dilation=(2, 2), ceil_mode=True
        )
    kept = sum(a.nbytes for a in (cache.rows, cache.columns) if a is not None)
    assert y.shape == layer.output_shape(x.shape)
    assert kept == 3 * layer.memory((1, 4, 11, 10), 4, None)[1]


# ------------------------------------------------------------------------------ the layers


def test_pytorchs_positional_order_and_defaults():
    m = MaxPool2d(3, 2, 1, 2, True)
    assert (m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode) == (
        (3, 3),
        (2, 2),
        (1, 1),
        (2, 2),
        True,
    )
    a = AvgPool2d(3, 2, 1, True, False)
    assert (a.ceil_mode, a.count_include_pad, a.dilation) == (True, False, (1, 1))
    assert MaxPool2d(2).get_config() == {
        "kernel_size": (2, 2),
        "stride": (2, 2),
        "padding": (0, 0),
        "dilation": (1, 1),
        "ceil_mode": False,
        "rounding": "strict",
    }
    for layer in (m, a, MaxPool2d(2), AvgPool2d(2)):
        again = type(layer)(**layer.get_config())
        assert again.get_config() == layer.get_config() and repr(again) == repr(layer)


def test_repr_shows_the_options_that_differ_from_the_defaults():
    assert repr(MaxPool2d(3, 2, 1, 2, True)) == (
        "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)"
    )
    assert repr(AvgPool2d(3, 2, 1, count_include_pad=False)) == (
        "AvgPool2d(kernel_size=3, stride=2, padding=1, count_include_pad=False)"
    )
    assert repr(MaxPool2d(2)) == "MaxPool2d(kernel_size=2)"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MaxPool2d(3, dilation=0), r"^MaxPool2d: dilation must be >= 1, got 0$"),
        (
            lambda: MaxPool2d(3, padding=2, dilation=2),  # PyTorch's bound: the undilated F
            r"^MaxPool2d\(kernel_size=3\): padding must be at most half the window \(3//2 = 1\)",
        ),
        (lambda: MaxPool2d(2, ceil_mode=1), r"^MaxPool2d: ceil_mode must be True or False, got 1$"),
        (
            lambda: AvgPool2d(2, count_include_pad="no"),
            r"^AvgPool2d: count_include_pad must be True or False, got 'no'$",
        ),
    ],
)
def test_bad_options_are_refused_in_one_line(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_the_padding_bound_is_pytorchs_undilated_one():
    with pytest.raises(RuntimeError, match="pad should be smaller than or equal to half"):
        torch.nn.functional.max_pool2d(torch.zeros(1, 1, 9, 9), 3, 1, 2, dilation=2)
    assert MaxPool2d(3, 1, 1, dilation=3).output_shape((1, 1, 9, 9)) == (1, 1, 5, 5)
    assert torch.nn.functional.max_pool2d(torch.zeros(1, 1, 9, 9), 3, 1, 1, 3).shape[2:] == (5, 5)


def test_ceil_mode_fits_where_strict_refuses_and_explains_itself():
    with pytest.raises(
        ShapeError, match=r"\(9 - 2 \+ 2\*0\)/2 \+ 1 = 4\.5 is not a whole"
    ) as caught:
        MaxPool2d(2).output_shape((1, 3, 9, 9))
    assert str(caught.value).endswith("; or ceil_mode=True (-> 5x5, rounding up)")
    assert [p.axis for p in caught.value.problems] == ["height", "width"]
    with pytest.raises(ShapeError) as caught:
        cnnkit.summarize("INPUT(1x9x9) - POOL(F=2)")
    assert str(caught.value) == (
        "layer 0 POOL(max, F=2, S=2) on 9x9: (9 - 2 + 2*0)/2 + 1 = 4.5 is not a whole number; "
        "use S=1 (-> 8x8) or F=1 (-> 5x5) or ceil=true (-> 5x5), or round=floor (-> 4, as "
        "PyTorch; --floor for every layer)"
    )
    with pytest.raises(ShapeError) as caught:  # a window larger than the input: no ceil fix
        MaxPool2d(10).output_shape((1, 1, 3, 3))
    assert "ceil" not in str(caught.value)
    layer = MaxPool2d(2, ceil_mode=True)
    assert layer.output_shape((1, 3, 9, 9)) == (1, 3, 5, 5)
    text = layer.explain((1, 3, 9, 9))
    assert "ceil((9 - 2 + 2*0)/2) + 1 = 5, so 9x9x3 -> 5x5x3" in text
    assert "Ceil: the last window covers padded rows 8..9 (of 0..8): 1 past the input" in text


def test_window_formula_and_notes_for_ceil_mode():
    window = shapes.Window((3, 3), (2, 2), ((0, 0), (0, 0)), ceil_mode=True)
    assert window.formula((7, 7), (3, 3)) == "ceil((7 - 3 + 2*0)/2) + 1 = 3"
    assert window.unread_notes((7, 7)) == ()
    dropped = shapes.Window((2, 2), (2, 2), ((1, 1), (1, 1)), ceil_mode=True)
    assert dropped.output_hw("x", (5, 5)) == (3, 3)
    assert dropped.formula((5, 5), (3, 3)) == (
        "ceil((5 - 2 + 2*1)/2) + 1 = 4 -> 3 (the 4th window would start in the padding after "
        "the input)"
    )
    assert dropped.unread_notes((5, 5))[0] == (
        "the last padding row (6 of 0..6) is never read: the same as padding 1 before and 0 after"
    )
    over = shapes.Window((3, 3), (2, 2), ((1, 1), (0, 0)), ceil_mode=True)
    assert over.output_hw("x", (6, 7)) == (4, 3)
    assert over.formula((6, 7), (4, 3)) == (
        "H: ceil((6 - 3 + 2*1)/2) + 1 = 4, W: ceil((7 - 3 + 2*0)/2) + 1 = 3"
    )
    assert over.unread_notes((6, 7)) == (
        "ceil: the last window covers padded rows 6..8 (of 0..7): 1 past the input and its "
        "padding, where nothing is read",
    )


def test_ceil_mode_in_a_summary_row():
    row = cnnkit.summarize("INPUT(2x8x8) - POOL(avg, F=3, S=2, P=1, ceil=true)").rows[0]
    assert row.output == "5x5x2"
    assert row.formula == "ceil((8 - 3 + 2*1)/2) + 1 = 5"
    assert row.notes[0].startswith("ceil: the last window covers padded rows 8..10 (of 0..9)")


# ---------------------------------------------------------------------------- the strings


@pytest.mark.parametrize(
    ("text", "canonical", "layer"),
    [
        (
            "POOL(max, F=3, S=2, ceil=true)",
            "POOL(max, F=3, S=2, ceil=true)",
            "MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)",
        ),
        (
            "POOL(avg, F=3, S=2, P=1, count_include_pad=false)",
            "POOL(avg, F=3, S=2, P=1, count_include_pad=false)",
            "AvgPool2d(kernel_size=3, stride=2, padding=1, count_include_pad=False)",
        ),
        (
            "POOL(max, F=3, dilation=2)",
            "POOL(max, F=3, S=3, dilation=2)",
            "MaxPool2d(kernel_size=3, dilation=2)",
        ),
        (  # values at their defaults are not written
            "POOL(F=3, S=2, dilation=1, ceil=false)",
            "POOL(max, F=3, S=2)",
            "MaxPool2d(kernel_size=3, stride=2)",
        ),
        ("AVGPOOL(F=2, ceil=true)", "POOL(avg, F=2, S=2, ceil=true)", None),
    ],
)
def test_strings_parse_build_and_round_trip(text, canonical, layer):
    full = f"INPUT(2x11x11) - {text}"
    arch = cnnkit.parse(full)
    assert arch.layers[0].text() == canonical
    model = cnnkit.from_spec(full)
    if layer is not None:
        assert repr(model[0]) == layer
    assert model.to_spec() == f"INPUT(2x11x11) - {canonical}"
    assert cnnkit.parse(model.to_spec()) == arch
    x = _distinct((1, 2, 11, 11), np.float32)
    assert model.forward(x).shape == model.output_shape(x.shape)


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        (
            "INPUT(2x8x8) - POOL(avg, F=3, dilation=2)",
            31,
            "POOL(avg) has no dilation (PyTorch's AvgPool2d has none); remove dilation or use "
            "POOL(max, ...)",
        ),
        (
            "INPUT(2x8x8) - POOL(max, F=3, count_include_pad=false)",
            31,
            "count_include_pad is for POOL(avg, ...): a max pool never counts its padding (it is "
            "-inf); remove count_include_pad",
        ),
        ("INPUT(2x8x8) - POOL(F=3, ceil=2)", 26, "ceil must be true or false, got 2"),
    ],
)
def test_options_the_other_pool_lacks_are_spec_errors(text, column, message):
    with pytest.raises(SpecError) as caught:
        cnnkit.parse(text)
    assert str(caught.value) == f"col {column}: {message}"
