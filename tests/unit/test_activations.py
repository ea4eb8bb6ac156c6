"""LeakyReLU, Sigmoid and Tanh: PyTorch's numbers on both engines, in float32 and float64,
gradients checked by central differences, strings that round-trip, clear errors."""

import warnings

import numpy as np
import pytest

import cnnkit
from cnnkit import ConfigError, DTypeError

torch = pytest.importorskip("torch")

LAYERS = {
    "leaky": (lambda: cnnkit.LeakyReLU(), lambda: torch.nn.LeakyReLU()),
    "leaky 0.2": (lambda: cnnkit.LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(0.2)),
    "sigmoid": (cnnkit.Sigmoid, torch.nn.Sigmoid),
    "tanh": (cnnkit.Tanh, torch.nn.Tanh),
}


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(LAYERS))
def test_forward_and_backward_match_pytorch(name, dtype, engine):
    ours, theirs = (make() for make in LAYERS[name])
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 2, 5, 4)) * 4).astype(dtype)
    x[0, 0, 0, :3] = 0.0  # the kinks: PyTorch's choice of gradient at 0
    dy = rng.standard_normal(x.shape).astype(dtype)
    with cnnkit.use_engine(engine):
        y = ours.forward(x)
        dx = ours.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(dy))
    tolerance = 1e-6 if dtype == np.float32 else 1e-12
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_large_inputs_saturate_without_warnings(name):
    layer = LAYERS[name][0]()
    x = np.array([[-1e4, -100.0, 0.0, 100.0, 1e4]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(y))
    low = 0.0 if name == "sigmoid" else -1.0
    np.testing.assert_array_equal(y[0, [0, 4]], [low, 1.0])
    assert np.isfinite(dx).all() and dx[0, 0] == dx[0, 4] == 0.0


@pytest.mark.parametrize("name", list(LAYERS))
def test_gradients_pass_a_central_difference_check(name):
    model = cnnkit.Sequential(
        cnnkit.Conv2d(1, 2, 3, padding=1, dtype=np.float64, rng=np.random.default_rng(1)),
        LAYERS[name][0](),
    )
    x = np.random.default_rng(2).standard_normal((2, 1, 4, 4))
    assert cnnkit.gradcheck(model, x).ok


def test_strings_round_trip_and_summaries_count_what_backward_keeps():
    text = (
        "INPUT(1x8x8) - CONV(D=4, F=3, S=1, P=1) - LEAKYRELU(0.1) - POOL(max, F=2, S=2) - "
        "SIGMOID - TANH - FC(10)"
    )
    model = cnnkit.from_spec(text, rng=np.random.default_rng(0))
    assert model.to_spec() == text
    assert cnnkit.from_spec("INPUT(1x8x8) - LEAKYRELU - FC(10)").to_spec() == (
        "INPUT(1x8x8) - LEAKYRELU - FC(10)"
    )
    assert repr(model[1]) == "LeakyReLU(negative_slope=0.1)"
    rows = model.summary().rows
    assert [row.cache_bytes for row in rows[1:5:3]] == [256, 256]  # a mask; y as float32
    assert "into (0, 1)" in model[3].explain((1, 4, 4, 4))


def test_bad_settings_and_inputs_are_one_clear_error():
    with pytest.raises(ConfigError, match=r"^LeakyReLU: negative_slope must be a number"):
        cnnkit.LeakyReLU("steep")
    with pytest.raises(ConfigError, match=r"must be finite, got inf"):
        cnnkit.LeakyReLU(float("inf"))
    with pytest.raises(DTypeError, match=r"^Tanh\(\): expected a floating-point array, got int64"):
        cnnkit.Tanh().forward(np.ones((1, 2), np.int64))
