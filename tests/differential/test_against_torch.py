"""cnnkit against PyTorch: same weights, same input, same upstream gradient, same answers.

One helper, :func:`assert_matches_torch`, copies cnnkit's parameters into the equivalent torch
module, runs both forwards on the same seeded input and both backwards with the same random
upstream gradient (or the same cross-entropy loss), and compares the output shape and values, the
input gradient and every parameter gradient, each failure naming the quantity and the layer.
The tests below only build the pair of layers and the input: a hand-picked grid (non-square
inputs and kernels, strides 2 and 3, padding 0/1/2/pairs, "same" and "valid", both dtypes) and
hypothesis-generated configurations.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import avg_pool_reference, conv2d_reference, max_pool_reference

import cnnkit

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

# torch warns that it copies the input for an even kernel with padding="same"; that is expected.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning"),
    pytest.mark.usefixtures("each_engine"),  # the whole suite, on each engine
]

# (rtol, atol); atol is scaled by the largest magnitude of the expected array, so that sums of
# many terms (weight gradients) are judged relative to their size.
TOLERANCES = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-6, 1e-9)}
TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


def _assert_close(actual, expected, quantity: str, label: str) -> None:
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (
        f"{quantity}: shape {actual.shape} != torch's {expected.shape} for {label}"
    )
    assert actual.dtype == expected.dtype, (
        f"{quantity}: dtype {actual.dtype} != torch's {expected.dtype} for {label}"
    )
    rtol, atol = TOLERANCES[expected.dtype]
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    np.testing.assert_allclose(
        actual,
        expected,
        rtol=rtol,
        atol=atol * scale,
        err_msg=f"{quantity} differs from torch for {label}",
    )


def assert_matches_torch(layer, module, x: np.ndarray, *, targets=None, seed: int = 0) -> None:
    """Compare ``layer`` (cnnkit) with ``module`` (torch) on ``x``: forward, dx and every dparam.

    Without ``targets`` the backward pass starts from a seeded standard-normal upstream gradient;
    with ``targets`` both sides apply mean cross-entropy and the loss and dlogits are compared too.
    """
    label = f"{layer!r} on x of shape {x.shape} ({x.dtype})"
    rng = np.random.default_rng(seed)
    module = module.to(TORCH_DTYPES[x.dtype])
    ours = dict(layer.named_parameters())
    theirs = dict(module.named_parameters())
    assert sorted(ours) == sorted(theirs), (
        f"parameter names {sorted(ours)} != torch's {sorted(theirs)} for {label}"
    )
    with torch.no_grad():
        for name, parameter in ours.items():
            theirs[name].copy_(torch.from_numpy(parameter.data))
    layer.zero_grad()

    x_before = x.copy()
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = module(tx)
    y = layer.forward(x)
    expected_shape = tuple(ty.shape)
    assert layer.output_shape(x.shape) == expected_shape, (
        f"output_shape {layer.output_shape(x.shape)} != torch's {expected_shape} for {label}"
    )
    _assert_close(y, ty.detach().numpy(), "forward output", label)

    if targets is None:
        dy = rng.standard_normal(y.shape).astype(x.dtype)
        ty.backward(torch.from_numpy(dy.copy()))
    else:
        loss_fn = cnnkit.CrossEntropyLoss()
        loss = loss_fn.forward(y, targets)
        ty.retain_grad()
        tloss = torch.nn.functional.cross_entropy(ty, torch.from_numpy(targets))
        tloss.backward()
        rtol, atol = TOLERANCES[x.dtype]
        assert isinstance(loss, float), f"loss is {type(loss).__name__}, not float, for {label}"
        np.testing.assert_allclose(
            loss,
            tloss.item(),
            rtol=rtol,
            atol=atol,
            err_msg=f"cross-entropy loss differs from torch for {label}",
        )
        dy = loss_fn.backward()
        _assert_close(dy, ty.grad.numpy(), "dlogits (loss gradient)", label)
    dy_before = dy.copy()
    dx = layer.backward(dy)
    _assert_close(dx, tx.grad.numpy(), "dx (input gradient)", label)
    for name, parameter in ours.items():
        _assert_close(parameter.grad, theirs[name].grad.numpy(), f"d{name} gradient", label)
    np.testing.assert_array_equal(x, x_before, err_msg=f"forward/backward modified x for {label}")
    np.testing.assert_array_equal(dy, dy_before, err_msg=f"backward modified dy for {label}")


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _divides(hw, kernel, stride, padding) -> bool:
    """Whether (I - F + 2P)/S + 1 is whole on both axes (string paddings always are here)."""
    if isinstance(padding, str):
        return True
    return all(
        (i + 2 * p - k) % s == 0
        for i, k, s, p in zip(hw, _pair(kernel), _pair(stride), _pair(padding), strict=True)
    )


def _rounding(hw, kernel, stride, padding) -> str:
    return "strict" if _divides(hw, kernel, stride, padding) else "floor"


def _normal(shape, dtype, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _distinct(shape, dtype, seed: int) -> np.ndarray:
    """Distinct values (no ties for max pooling), mostly negative so -inf padding matters."""
    size = int(np.prod(shape))
    values = np.random.default_rng(seed).permutation(size) - 0.75 * size
    return (values / size).reshape(shape).astype(dtype)


# ----------------------------------------------------------------------------------- Conv2d

CONV_GRID = [
    # N, C, H, W, D, F, S, P
    pytest.param(2, 3, 8, 8, 4, 3, 1, 0, id="3x3"),
    pytest.param(2, 3, 8, 8, 4, 3, 1, 1, id="3x3-pad1"),
    pytest.param(1, 2, 7, 9, 3, 3, 2, 1, id="nonsquare-input-stride2"),
    pytest.param(2, 1, 10, 10, 2, 5, 3, 2, id="5x5-stride3-pad2"),
    pytest.param(3, 2, 9, 6, 2, (3, 2), 1, (1, 0), id="kernel3x2-padpair"),
    pytest.param(2, 3, 11, 8, 3, (2, 4), (3, 2), 2, id="kernel2x4-stridepair-floor"),
    pytest.param(2, 2, 8, 8, 3, 3, 2, 0, id="stride2-floor"),
    pytest.param(1, 2, 10, 7, 2, 3, 3, (2, 1), id="stride3-padpair-floor"),
    pytest.param(1, 4, 6, 6, 5, 1, 1, 0, id="1x1"),
    pytest.param(2, 2, 5, 5, 3, 5, 1, 2, id="kernel-equals-input"),
    pytest.param(1, 3, 12, 12, 2, 4, 4, 0, id="4x4-stride4"),
    pytest.param(2, 2, 6, 7, 3, 3, 1, "same", id="same-odd"),
    pytest.param(2, 2, 6, 7, 3, 4, 1, "same", id="same-even"),
    pytest.param(2, 2, 6, 7, 3, (2, 3), 1, "same", id="same-2x3"),
    pytest.param(2, 2, 6, 7, 3, 3, 1, "valid", id="valid"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize(("n", "c", "h", "w", "d", "f", "s", "p"), CONV_GRID)
def test_conv2d_matches_torch_on_grid(n, c, h, w, d, f, s, p, bias, dtype):
    rounding = _rounding((h, w), f, s, p)
    layer = cnnkit.Conv2d(
        c, d, f, s, p, bias=bias, dtype=dtype, rng=np.random.default_rng(1), rounding=rounding
    )
    module = torch.nn.Conv2d(c, d, f, s, p, bias=bias)
    assert_matches_torch(layer, module, _normal((n, c, h, w), dtype, seed=2))


@st.composite
def conv_configs(draw):
    """Conv2d configurations whose padded input holds the filter; rounding="floor" makes any
    such configuration valid."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    mode = draw(st.sampled_from(["explicit", "same", "valid"]))
    if mode == "explicit":
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        minimum = [max(1, k - 2 * p) for k, p in zip(kernel, padding, strict=True)]
    else:
        stride, padding = (1, 1), mode
        minimum = [1, 1] if mode == "same" else list(kernel)
    return {
        "n": draw(st.integers(1, 3)),
        "c": draw(st.integers(1, 5)),
        "h": draw(st.integers(minimum[0], 12)),
        "w": draw(st.integers(minimum[1], 12)),
        "d": draw(st.integers(1, 5)),
        "kernel": kernel[0] if kernel[0] == kernel[1] else kernel,
        "stride": stride[0] if stride[0] == stride[1] else stride,
        "padding": padding if isinstance(padding, str) or padding[0] != padding[1] else padding[0],
        "bias": draw(st.booleans()),
        "dtype": draw(st.sampled_from([np.float32, np.float64])),
        "seed": draw(st.integers(0, 2**16)),
    }


@settings(max_examples=60, deadline=None)
@given(conv_configs())
def test_conv2d_matches_torch_on_random_configs(config):
    cfg = config
    layer = cnnkit.Conv2d(
        cfg["c"],
        cfg["d"],
        cfg["kernel"],
        cfg["stride"],
        cfg["padding"],
        bias=cfg["bias"],
        dtype=cfg["dtype"],
        rng=np.random.default_rng(cfg["seed"]),
        rounding="floor",
    )
    module = torch.nn.Conv2d(
        cfg["c"], cfg["d"], cfg["kernel"], cfg["stride"], cfg["padding"], bias=cfg["bias"]
    )
    x = _normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"]), cfg["dtype"], cfg["seed"] + 1)
    assert_matches_torch(layer, module, x, seed=cfg["seed"] + 2)


# ------------------------------------------------------------------------ MaxPool2d / AvgPool2d

POOL_GRID = [
    # N, C, H, W, K, S, P
    pytest.param(2, 3, 8, 8, 2, None, 0, id="2x2"),
    pytest.param(2, 3, 8, 8, 3, 1, 1, id="3x3-stride1-pad1-overlap"),
    pytest.param(1, 2, 7, 9, 3, 2, 1, id="nonsquare-stride2-overlap"),
    pytest.param(2, 2, 9, 9, 3, 2, 0, id="3x3-stride2-overlap"),
    pytest.param(1, 2, 10, 7, (3, 2), (2, 1), (1, 0), id="pairs"),
    pytest.param(2, 1, 11, 11, 4, 3, 2, id="4x4-stride3-pad2-floor"),
    pytest.param(2, 2, 5, 5, 5, 1, 2, id="window-equals-input"),
    pytest.param(1, 1, 6, 6, 2, 3, 1, id="stride-exceeds-window"),
    pytest.param(2, 2, 8, 6, 3, 3, 0, id="3x3-floor"),
    pytest.param(1, 2, 7, 7, 2, None, 1, id="2x2-pad1"),
]
POOLS = [
    pytest.param(cnnkit.MaxPool2d, torch.nn.MaxPool2d, id="max"),
    pytest.param(cnnkit.AvgPool2d, torch.nn.AvgPool2d, id="avg"),
]


def _pool_pair(ours, theirs, kernel, stride, padding, rounding):
    layer = ours(kernel, stride, padding, rounding=rounding)
    if theirs is torch.nn.AvgPool2d:
        return layer, theirs(kernel, stride, padding, ceil_mode=False, count_include_pad=True)
    return layer, theirs(kernel, stride, padding, ceil_mode=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("ours", "theirs"), POOLS)
@pytest.mark.parametrize(("n", "c", "h", "w", "k", "s", "p"), POOL_GRID)
def test_pool_matches_torch_on_grid(n, c, h, w, k, s, p, ours, theirs, dtype):
    rounding = _rounding((h, w), k, k if s is None else s, p)
    layer, module = _pool_pair(ours, theirs, k, s, p, rounding)
    assert_matches_torch(layer, module, _distinct((n, c, h, w), dtype, seed=3))


@st.composite
def pool_configs(draw):
    """Pool configurations: padding at most half the window, stride free (overlapping windows
    and gaps), padded input holding the window; rounding="floor" makes them all valid."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    stride = draw(st.none() | st.tuples(st.integers(1, 4), st.integers(1, 4)))
    minimum = [max(1, k - 2 * p) for k, p in zip(kernel, padding, strict=True)]
    return {
        "shape": (
            draw(st.integers(1, 3)),
            draw(st.integers(1, 4)),
            draw(st.integers(minimum[0], 12)),
            draw(st.integers(minimum[1], 12)),
        ),
        "kernel": kernel[0] if kernel[0] == kernel[1] else kernel,
        "stride": stride,
        "padding": padding[0] if padding[0] == padding[1] else padding,
        "dtype": draw(st.sampled_from([np.float32, np.float64])),
        "seed": draw(st.integers(0, 2**16)),
    }


@pytest.mark.parametrize(("ours", "theirs"), POOLS)
@settings(max_examples=60, deadline=None)
@given(config=pool_configs())
def test_pool_matches_torch_on_random_configs(ours, theirs, config):
    cfg = config
    layer, module = _pool_pair(ours, theirs, cfg["kernel"], cfg["stride"], cfg["padding"], "floor")
    x = _distinct(cfg["shape"], cfg["dtype"], cfg["seed"])
    assert_matches_torch(layer, module, x, seed=cfg["seed"] + 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("k", "s", "p"), [(2, 2, 0), (3, 1, 1), (3, 2, 1), (4, 1, 2)])
def test_max_pool_ties_match_torch(k, s, p, dtype):
    """After a ReLU many window values tie at 0; like torch, the first in row-major order wins."""
    x = np.maximum(_normal((2, 3, 9, 9), dtype, seed=14), 0).round()
    rounding = _rounding((9, 9), k, s, p)
    layer, module = _pool_pair(cnnkit.MaxPool2d, torch.nn.MaxPool2d, k, s, p, rounding)
    assert_matches_torch(layer, module, x, seed=15)


def test_max_pool_window_larger_than_int16_matches_torch():
    """A window of more than 32,767 positions (global pooling over 182x182) needs wider indices."""
    kernel = (1, 32769)
    layer, module = _pool_pair(cnnkit.MaxPool2d, torch.nn.MaxPool2d, kernel, None, 0, "strict")
    assert_matches_torch(layer, module, _distinct((1, 1, 1, 32769), np.float64, seed=16))


# ------------------------------------------------------------------ Linear, ReLU, Flatten, loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize(("n", "features_in", "features_out"), [(4, 7, 3), (1, 1, 1), (5, 12, 10)])
def test_linear_matches_torch(n, features_in, features_out, bias, dtype):
    layer = cnnkit.Linear(
        features_in, features_out, bias, dtype=dtype, rng=np.random.default_rng(4)
    )
    module = torch.nn.Linear(features_in, features_out, bias=bias)
    assert_matches_torch(layer, module, _normal((n, features_in), dtype, seed=5))


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_matches_torch(dtype):
    x = _normal((2, 3, 4, 5), dtype, seed=6)
    x[0, 0, 0, :3] = 0.0  # torch's gradient at exactly 0 is 0
    x[1, 2] = -np.abs(x[1, 2])  # a whole slice dead
    assert_matches_torch(cnnkit.ReLU(), torch.nn.ReLU(), x, seed=7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("start_dim", "end_dim"), [(1, -1), (2, 3), (0, 1), (1, 2), (-2, -1)])
def test_flatten_matches_torch(start_dim, end_dim, dtype):
    layer = cnnkit.Flatten(start_dim, end_dim)
    module = torch.nn.Flatten(start_dim, end_dim)
    assert_matches_torch(layer, module, _normal((2, 3, 4, 5), dtype, seed=8), seed=9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "logits",
    [
        pytest.param(
            [[0.5, -1.0, 2.0], [0.0, 0.0, 0.0], [3.0, 1.0, -2.0], [-0.3, 0.2, 0.1]], id="mild"
        ),
        pytest.param(
            [
                [1000.0, 0.0, -1000.0],
                [-1000.0, 1000.0, 999.0],
                [0.0, -1000.0, 0.0],
                [5.0, 5.0, 5.0],
            ],
            id="extreme",
        ),
        pytest.param([[-1000.0, -1001.0, -1000.5], [1e4, -1e4, 0.0]], id="all-large"),
    ],
)
def test_cross_entropy_matches_torch(logits, dtype):
    logits = np.asarray(logits, dtype=dtype)
    targets = np.arange(len(logits), dtype=np.int64) % logits.shape[1]
    # An empty Sequential passes the logits through, so dx is dlogits.
    assert_matches_torch(cnnkit.Sequential(), torch.nn.Sequential(), logits, targets=targets)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_on_random_logits_matches_torch(dtype):
    rng = np.random.default_rng(10)
    logits = (rng.standard_normal((16, 10)) * 5).astype(dtype)
    targets = rng.integers(0, 10, size=16)
    assert_matches_torch(cnnkit.Sequential(), torch.nn.Sequential(), logits, targets=targets)


# --------------------------------------------------------------------------- whole network


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_loss", [True, False], ids=["loss", "upstream"])
def test_sequential_matches_torch(with_loss, dtype):
    rng = np.random.default_rng(11)
    model = cnnkit.Sequential(
        cnnkit.Conv2d(3, 4, 3, padding=1, dtype=dtype, rng=rng),
        cnnkit.ReLU(),
        cnnkit.MaxPool2d(2),
        cnnkit.Conv2d(4, 6, (3, 2), stride=(1, 2), padding=(1, 0), dtype=dtype, rng=rng),
        cnnkit.ReLU(),
        cnnkit.AvgPool2d(3, stride=2, padding=1),
        cnnkit.Flatten(),
        cnnkit.Linear(6 * 3 * 2, 5, dtype=dtype, rng=rng),
    )
    reference = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, (3, 2), stride=(1, 2), padding=(1, 0)),
        torch.nn.ReLU(),
        torch.nn.AvgPool2d(3, stride=2, padding=1),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 3 * 2, 5),
    )
    x = _normal((4, 3, 10, 12), dtype, seed=12)
    targets = np.array([0, 4, 2, 2]) if with_loss else None
    assert_matches_torch(model, reference, x, targets=targets, seed=13)


# ------------------------------------------------------------- the loop oracles themselves


def _explicit_sides(kernel, padding):
    """ "same"/"valid"/P -> ((top, bottom), (left, right)), from the definitions."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in _pair(kernel))
    return tuple((p, p) for p in _pair(padding))


@pytest.mark.parametrize(("n", "c", "h", "w", "d", "f", "s", "p"), CONV_GRID)
def test_conv2d_reference_matches_torch(n, c, h, w, d, f, s, p):
    """tests/reference.py is the ground truth of other tests: check it against torch too."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((d, c, *_pair(f)))
    bias = rng.standard_normal(d)
    expected = torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias), s, p
    )
    actual = conv2d_reference(x, weight, bias, s, _explicit_sides(f, p))
    _assert_close(actual, expected.numpy(), "conv2d_reference", f"F={f}, S={s}, P={p}")


@pytest.mark.parametrize(
    ("oracle", "function"),
    [
        pytest.param(max_pool_reference, torch.nn.functional.max_pool2d, id="max"),
        pytest.param(avg_pool_reference, torch.nn.functional.avg_pool2d, id="avg"),
    ],
)
@pytest.mark.parametrize(("n", "c", "h", "w", "k", "s", "p"), POOL_GRID)
def test_pool_references_match_torch(n, c, h, w, k, s, p, oracle, function):
    x = _distinct((n, c, h, w), np.float64, seed=18)
    expected = function(torch.from_numpy(x), k, s, p)
    actual = oracle(x, k, s, p)
    _assert_close(actual, expected.numpy(), oracle.__name__, f"K={k}, S={s}, P={p}")
