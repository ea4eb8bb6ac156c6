"""Properties of Conv2d and the pools over hypothesis-generated valid configurations.

Shapes: ``output_shape`` equals the forward's shape and strict rounding refuses exactly the
non-whole configurations. Linear algebra: a bias-free convolution is linear and its backward is
the transpose of the forward (the adjoint identities <conv(x), g> = <x, dx(g)> and, for the
weights, <conv_w(x), g> = <w, dw(g)>), likewise for average pooling. Ground truth: forward
matches the loop oracles in ``tests/reference.py``. Translation equivariance: shifting the input
by one stride shifts the output by one unit. Accumulation: backward adds into ``.grad`` and
``zero_grad`` resets it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import avg_pool_reference, conv2d_reference, max_pool_reference

import cnnkit

SETTINGS = settings(max_examples=50, deadline=None)


def _short(pair):
    return pair[0] if pair[0] == pair[1] else pair


def _whole(size, kernel, stride, before, after) -> bool:
    return (size + before + after - kernel) % stride == 0


def _loses_input(size, kernel, stride, before, after) -> bool:
    """By brute force: whether rounding down leaves a real input row unread that a further
    window (one starting inside the padded input) would read."""
    padded = size + before + after
    count = (padded - kernel) // stride + 1
    read = {row for o in range(count) for row in range(o * stride, o * stride + kernel)}
    further = {  # windows that start inside the padded input, cut off at its end
        row
        for start in range(count * stride, padded, stride)
        for row in range(start, min(start + kernel, padded))
    }
    return bool((further - read) & set(range(before, before + size)))


@st.composite
def conv_configs(draw, modes=("explicit", "same", "valid")):
    """A Conv2d whose padded input holds the filter, and an input shape for it.

    ``sides`` is ((top, bottom), (left, right)) computed here from the definition of each padding
    mode, independently of cnnkit; ``rounding`` is "strict" when the formula is whole, else
    "floor", so both modes are exercised.
    """
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    mode = draw(st.sampled_from(modes))
    if mode == "explicit":
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        pads = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        padding = _short(pads)
        sides = tuple((p, p) for p in pads)
    elif mode == "same":
        stride, padding = (1, 1), "same"
        sides = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel)
    else:
        stride, padding = (1, 1), "valid"
        sides = ((0, 0), (0, 0))
    hw = tuple(
        draw(st.integers(max(1, k - sum(s)), 12)) for k, s in zip(kernel, sides, strict=True)
    )
    whole = all(_whole(i, k, s, *p) for i, k, s, p in zip(hw, kernel, stride, sides, strict=True))
    return {
        "c": draw(st.integers(1, 4)),
        "d": draw(st.integers(1, 4)),
        "shape_nhw": (draw(st.integers(1, 3)), *hw),
        "kernel": _short(kernel),
        "stride": _short(stride),
        "padding": padding,
        "sides": sides,
        "rounding": "strict" if whole else "floor",
        "seed": draw(st.integers(0, 2**16)),
    }


def _conv(cfg, *, bias: bool = False, dtype=np.float64) -> cnnkit.Conv2d:
    return cnnkit.Conv2d(
        cfg["c"],
        cfg["d"],
        cfg["kernel"],
        cfg["stride"],
        cfg["padding"],
        bias=bias,
        dtype=dtype,
        rng=np.random.default_rng(cfg["seed"]),
        rounding=cfg["rounding"],
    )


def _conv_input(cfg, dtype=np.float64, offset: int = 1) -> np.ndarray:
    n, h, w = cfg["shape_nhw"]
    rng = np.random.default_rng(cfg["seed"] + offset)
    return rng.standard_normal((n, cfg["c"], h, w)).astype(dtype)


@st.composite
def pool_configs(draw):
    """A pool (padding at most half the window, any stride) and an input shape for it."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    pads = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    stride = draw(st.none() | st.tuples(st.integers(1, 4), st.integers(1, 4)))
    effective = kernel if stride is None else stride
    hw = tuple(draw(st.integers(max(1, k - 2 * p), 12)) for k, p in zip(kernel, pads, strict=True))
    whole = all(
        _whole(i, k, s, p, p) for i, k, s, p in zip(hw, kernel, effective, pads, strict=True)
    )
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    return {
        "shape": (n, c, *hw),
        "kernel": _short(kernel),
        "stride": None if stride is None else _short(stride),
        "padding": _short(pads),
        "rounding": "strict" if whole else "floor",
        "seed": draw(st.integers(0, 2**16)),
    }


POOLS = [
    pytest.param(cnnkit.MaxPool2d, max_pool_reference, id="max"),
    pytest.param(cnnkit.AvgPool2d, avg_pool_reference, id="avg"),
]


def _pool(pool_cls, cfg):
    return pool_cls(cfg["kernel"], cfg["stride"], cfg["padding"], rounding=cfg["rounding"])


def _distinct(shape, seed: int, dtype=np.float64) -> np.ndarray:
    """Distinct values (no ties for max pooling), mostly negative so -inf padding matters."""
    size = int(np.prod(shape))
    values = np.random.default_rng(seed).permutation(size) - 0.75 * size
    return (values / size).reshape(shape).astype(dtype)


def _inner(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(a * b))


def _assert_adjoint(lhs_pair, rhs_pair, what: str) -> None:
    """<a, b> == <c, d>, to rounding error relative to the sum of the terms' magnitudes."""
    (a, b), (c, d) = lhs_pair, rhs_pair
    lhs, rhs = _inner(a, b), _inner(c, d)
    scale = _inner(np.abs(a), np.abs(b)) + _inner(np.abs(c), np.abs(d)) + 1e-300
    assert abs(lhs - rhs) <= 1e-12 * scale, f"{what}: {lhs!r} != {rhs!r} (scale {scale:.3g})"


# ------------------------------------------------------------------------------------- shapes


@SETTINGS
@given(cfg=conv_configs())
def test_conv_output_shape_matches_forward(cfg):
    layer = _conv(cfg, bias=True, dtype=np.float32)
    x = _conv_input(cfg, np.float32)
    assert layer.output_shape(x.shape) == layer.forward(x).shape, repr(layer)


@pytest.mark.parametrize(("pool_cls", "_oracle"), POOLS)
@SETTINGS
@given(cfg=pool_configs())
def test_pool_output_shape_matches_forward(pool_cls, _oracle, cfg):
    layer = _pool(pool_cls, cfg)
    x = _distinct(cfg["shape"], cfg["seed"], np.float32)
    assert layer.output_shape(x.shape) == layer.forward(x).shape, repr(layer)


@SETTINGS
@given(cfg=conv_configs(modes=("explicit",)))
def test_strict_rounding_refuses_exactly_the_configurations_that_lose_input(cfg):
    layer = _conv({**cfg, "rounding": "strict"})
    floor = _conv({**cfg, "rounding": "floor"})
    shape = (cfg["shape_nhw"][0], cfg["c"], *cfg["shape_nhw"][1:])
    expected = floor.output_shape(shape)
    loses = any(
        _loses_input(i, k, s, *sides)
        for i, k, s, sides in zip(
            shape[2:], layer.kernel_size, layer.stride, cfg["sides"], strict=True
        )
    )
    if not loses:  # whole, or only padding / the stride's gap left unread: PyTorch's floor
        assert layer.output_shape(shape) == expected, repr(layer)
    else:
        with pytest.raises(cnnkit.ShapeError):
            layer.output_shape(shape)


# ----------------------------------------------------------------------- linear-map properties


@SETTINGS
@given(cfg=conv_configs())
def test_conv_backward_is_the_adjoint_of_forward(cfg):
    layer = _conv(cfg)
    x = _conv_input(cfg)
    y = layer.forward(x)
    g = np.random.default_rng(cfg["seed"] + 2).standard_normal(y.shape)
    dx = layer.backward(g)
    _assert_adjoint((y, g), (x, dx), f"<conv(x), g> vs <x, dx(g)> for {layer!r}")
    # y is also linear in the weights: <conv_w(x), g> = <w, dw(g)>.
    _assert_adjoint((y, g), (layer.weight.data, layer.weight.grad), f"weights of {layer!r}")


@SETTINGS
@given(cfg=pool_configs())
def test_avg_pool_backward_is_the_adjoint_of_forward(cfg):
    layer = _pool(cnnkit.AvgPool2d, cfg)
    x = _distinct(cfg["shape"], cfg["seed"])
    y = layer.forward(x)
    g = np.random.default_rng(cfg["seed"] + 1).standard_normal(y.shape)
    _assert_adjoint((y, g), (x, layer.backward(g)), f"<pool(x), g> vs <x, dx(g)> for {layer!r}")


@SETTINGS
@given(cfg=conv_configs(), a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_conv_without_bias_is_linear(cfg, a, b):
    layer = _conv(cfg)
    x1, x2 = _conv_input(cfg, offset=1), _conv_input(cfg, offset=2)
    combined = layer.forward(a * x1 + b * x2)
    separate = a * layer.forward(x1) + b * layer.forward(x2)
    scale = max(1.0, float(np.abs(separate).max(initial=0.0)))
    np.testing.assert_allclose(
        combined, separate, rtol=1e-10, atol=1e-12 * scale, err_msg=repr(layer)
    )


# ------------------------------------------------------------------------ oracles, equivariance


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@SETTINGS
@given(cfg=conv_configs(), bias=st.booleans())
def test_conv_matches_loop_oracle(dtype, cfg, bias):
    layer = _conv(cfg, bias=bias, dtype=dtype)
    x = _conv_input(cfg, dtype)
    b = None if layer.bias is None else layer.bias.data
    expected = conv2d_reference(x, layer.weight.data, b, cfg["stride"], cfg["sides"])
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    actual = layer.forward(x)
    assert actual.dtype == dtype, f"{layer!r} returned {actual.dtype} for {np.dtype(dtype)} input"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol / 10, err_msg=repr(layer))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("pool_cls", "oracle"), POOLS)
@SETTINGS
@given(cfg=pool_configs())
def test_pool_matches_loop_oracle(dtype, pool_cls, oracle, cfg):
    layer = _pool(pool_cls, cfg)
    x = _distinct(cfg["shape"], cfg["seed"], dtype)
    expected = oracle(x, cfg["kernel"], cfg["stride"], cfg["padding"])
    actual = layer.forward(x)
    assert actual.dtype == dtype, f"{layer!r} returned {actual.dtype} for {np.dtype(dtype)} input"
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol, err_msg=repr(layer))


@st.composite
def shift_configs(draw):
    """Unpadded window/stride and an input tall enough to shift by ``units`` strides."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    units = draw(st.integers(1, 2))
    h = draw(st.integers(kernel[0] + units * stride[0], 12))
    w = draw(st.integers(kernel[1], 12))
    return {"kernel": kernel, "stride": stride, "units": units, "hw": (h, w)}


@pytest.mark.parametrize("kind", ["conv", "max", "avg"])
@SETTINGS
@given(cfg=shift_configs(), seed=st.integers(0, 2**16))
def test_shifting_input_by_a_stride_shifts_output_by_a_unit(kind, cfg, seed):
    kernel, stride, units = cfg["kernel"], cfg["stride"], cfg["units"]
    if kind == "conv":
        layer = cnnkit.Conv2d(
            2,
            3,
            kernel,
            stride,
            dtype=np.float64,
            rng=np.random.default_rng(seed),
            rounding="floor",
        )
    else:
        pool_cls = cnnkit.MaxPool2d if kind == "max" else cnnkit.AvgPool2d
        layer = pool_cls(kernel, stride, rounding="floor")
    x = _distinct((2, 2, *cfg["hw"]), seed)
    full = layer.forward(x)
    shifted = layer.forward(np.ascontiguousarray(x[:, :, units * stride[0] :, :]))
    scale = max(1.0, float(np.abs(full).max())) if full.size else 1.0  # sums that cancel
    np.testing.assert_allclose(
        shifted, full[:, :, units:, :], rtol=1e-12, atol=1e-15 * scale, err_msg=repr(layer)
    )


# -------------------------------------------------------------------------- grad accumulation


@SETTINGS
@given(cfg=conv_configs(), bias=st.booleans())
def test_conv_backward_accumulates_and_zero_grad_resets(cfg, bias):
    layer = _conv(cfg, bias=bias)
    y = layer.forward(_conv_input(cfg))
    g = np.random.default_rng(cfg["seed"] + 2).standard_normal(y.shape)
    dx_first = layer.backward(g)
    first = {name: p.grad.copy() for name, p in layer.named_parameters()}
    layer.forward(_conv_input(cfg))  # every backward goes with its own forward
    dx_second = layer.backward(g)
    np.testing.assert_array_equal(dx_second, dx_first, err_msg=f"dx changed for {layer!r}")
    for name, p in layer.named_parameters():
        np.testing.assert_array_equal(
            p.grad, 2 * first[name], err_msg=f"{name}.grad after two backwards for {layer!r}"
        )
    layer.zero_grad()
    for name, p in layer.named_parameters():
        assert not np.any(p.grad), f"{name}.grad not reset by zero_grad for {layer!r}"
    layer.forward(_conv_input(cfg))
    layer.backward(g)
    for name, p in layer.named_parameters():
        np.testing.assert_array_equal(
            p.grad, first[name], err_msg=f"{name}.grad after zero_grad + backward, {layer!r}"
        )


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_sequential_backward_accumulates_and_zero_grad_resets(bias):
    rng = np.random.default_rng(0)
    model = cnnkit.Sequential(
        cnnkit.Conv2d(2, 3, 3, padding=1, bias=bias, dtype=np.float64, rng=rng),
        cnnkit.ReLU(),
        cnnkit.MaxPool2d(2),
        cnnkit.Flatten(),
        cnnkit.Linear(3 * 3 * 3, 4, bias=bias, dtype=np.float64, rng=rng),
    )
    x = rng.standard_normal((2, 2, 6, 6))
    y = model.forward(x)
    g = rng.standard_normal(y.shape)
    model.backward(g)
    first = {name: p.grad.copy() for name, p in model.named_parameters()}
    assert len(first) == (4 if bias else 2), sorted(first)
    model.forward(x)  # every backward goes with its own forward
    model.backward(g)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad, 2 * first[name], err_msg=f"{name} after two")
    model.zero_grad()
    for name, p in model.named_parameters():
        assert not np.any(p.grad), f"{name}.grad not reset by Sequential.zero_grad"
