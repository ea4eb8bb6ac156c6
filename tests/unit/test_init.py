"""He and Xavier initialisers: PyTorch's fans and formulas, drawn only from the given generator."""

import math

import numpy as np
import pytest

from cnnkit import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from cnnkit.errors import ConfigError, DTypeError, ShapeError
from cnnkit.init import (
    fan_in_and_fan_out,
    init_model,
    kaiming_normal,
    kaiming_uniform,
    xavier_normal,
    xavier_uniform,
)

LARGE = (256, 128, 3, 3)  # fan_in 1152, fan_out 2304, 294912 values: std known to ~0.2 %


@pytest.mark.parametrize(
    "shape", [(3, 4), (10, 1), (16, 3, 5, 5), (8, 2, 3, 1), (4, 6, 2, 2, 2), (5, 0, 3, 3)]
)
def test_fans_match_torch(shape):
    torch = pytest.importorskip("torch")
    assert fan_in_and_fan_out(shape) == torch.nn.init._calculate_fan_in_and_fan_out(
        torch.empty(shape)
    )


def expected_scale(name, fan_in, fan_out, gain):
    """(std, bound) from the papers' formulas; bound is None for normal draws."""
    if name == "kaiming_uniform":
        return gain / math.sqrt(fan_in), gain * math.sqrt(3 / fan_in)
    if name == "kaiming_normal":
        return gain / math.sqrt(fan_in), None
    if name == "xavier_uniform":
        return gain * math.sqrt(2 / (fan_in + fan_out)), gain * math.sqrt(6 / (fan_in + fan_out))
    return gain * math.sqrt(2 / (fan_in + fan_out)), None


def draw(name, shape, rng, dtype, **kwargs):
    fan_in, fan_out = fan_in_and_fan_out(shape)
    if name.startswith("kaiming"):
        function = kaiming_uniform if name == "kaiming_uniform" else kaiming_normal
        return function(shape, fan_in, rng, dtype, **kwargs)
    function = xavier_uniform if name == "xavier_uniform" else xavier_normal
    return function(shape, fan_in, fan_out, rng, dtype, **kwargs)


NAMES = ["kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal"]


@pytest.mark.parametrize("gain", [None, 0.5])
@pytest.mark.parametrize("name", NAMES)
def test_statistics(name, gain):
    kwargs = {} if gain is None else {"gain": gain}
    default_gain = math.sqrt(2) if name.startswith("kaiming") else 1.0
    w = draw(name, LARGE, np.random.default_rng(0), np.float64, **kwargs)
    std, bound = expected_scale(name, *fan_in_and_fan_out(LARGE), gain or default_gain)
    assert w.shape == LARGE
    assert abs(w.mean()) < 0.01 * std
    assert w.std() == pytest.approx(std, rel=0.01)
    if bound is not None:
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.999 * bound


def test_matches_torch_distribution():
    """Same spread as torch's own initialisers on the same shape (different random streams)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for name, torch_init in [
        ("kaiming_uniform", lambda t: torch.nn.init.kaiming_uniform_(t, nonlinearity="relu")),
        ("kaiming_normal", lambda t: torch.nn.init.kaiming_normal_(t, nonlinearity="relu")),
        ("xavier_uniform", torch.nn.init.xavier_uniform_),
        ("xavier_normal", torch.nn.init.xavier_normal_),
    ]:
        theirs = torch_init(torch.empty(LARGE, dtype=torch.float64)).numpy()
        ours = draw(name, LARGE, np.random.default_rng(1), np.float64)
        assert ours.std() == pytest.approx(theirs.std(), rel=0.01), name
        if name.endswith("uniform"):
            assert np.abs(ours).max() == pytest.approx(np.abs(theirs).max(), rel=1e-3), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_dtype_and_determinism(name, dtype):
    first = draw(name, (8, 4, 3, 3), np.random.default_rng(7), dtype)
    again = draw(name, (8, 4, 3, 3), np.random.default_rng(7), dtype)
    other = draw(name, (8, 4, 3, 3), np.random.default_rng(8), dtype)
    assert first.dtype == dtype
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def small_model(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(
        Conv2d(32, 64, 3, padding=1, dtype=dtype, rng=rng),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Sequential(Linear(64 * 2 * 2, 300, dtype=dtype, rng=rng), ReLU()),
        Linear(300, 10, bias=False, dtype=dtype, rng=rng),
    )


@pytest.mark.parametrize("scheme", ["he", "xavier"])
def test_init_model_he_and_xavier(scheme):
    model = small_model()
    parameters = list(model.parameters())
    arrays = [p.data for p in parameters]
    assert init_model(model, scheme, np.random.default_rng(0)) is model
    assert [p.data for p in model.parameters()] == arrays  # overwritten in place
    conv, linear, last = model[0], model[4][0], model[5]
    for layer, (fan_in, fan_out) in [(conv, (288, 576)), (linear, (256, 300)), (last, (300, 10))]:
        w = layer.weight.data
        assert w.dtype == np.float32
        assert fan_in_and_fan_out(w.shape) == (fan_in, fan_out)
        if scheme == "he":
            assert w.std() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
        else:
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert np.abs(w).max() <= bound
            assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
        if layer.bias is not None:
            assert not layer.bias.data.any()


def test_init_model_default_is_the_constructors():
    """PyTorch's default: the same draws, in the same order, as building the layers."""
    model = small_model(np.float64, seed=3)
    expected = [p.data.copy() for p in model.parameters()]
    init_model(model, "he", np.random.default_rng(0))
    init_model(model, "default", np.random.default_rng(3))
    for parameter, array in zip(model.parameters(), expected, strict=True):
        assert parameter.data.dtype == np.float64
        np.testing.assert_array_equal(parameter.data, array)


def test_init_model_is_deterministic():
    first = init_model(small_model(seed=1), "xavier", np.random.default_rng(5))
    second = init_model(small_model(seed=2), "xavier", np.random.default_rng(5))
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_init_model_single_layer():
    layer = Linear(50, 20, rng=np.random.default_rng(0))
    init_model(layer, "he", np.random.default_rng(0))
    assert not layer.bias.data.any()


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (
            lambda: init_model(small_model(), "lecun", np.random.default_rng(0)),
            ConfigError,
            r"^init_model: unknown scheme 'lecun'; choose one of default, he, xavier$",
        ),
        (
            lambda: init_model(small_model(), "he", None),
            DTypeError,
            r"^init_model: rng must be a numpy\.random\.Generator, got NoneType; "
            r"use rng=np\.random\.default_rng\(0\)$",
        ),
        (
            lambda: kaiming_normal((4, 3), 3, 42, np.float32),
            DTypeError,
            r"^kaiming_normal: rng must be a numpy\.random\.Generator, got int; "
            r"use rng=np\.random\.default_rng\(42\)$",
        ),
        (
            lambda: kaiming_uniform((4, 3), 0, np.random.default_rng(0), np.float32),
            ConfigError,
            r"^kaiming_uniform: fan_in must be >= 1, got 0$",
        ),
        (
            lambda: xavier_normal((4, 3), 3, 4.0, np.random.default_rng(0), np.float32),
            DTypeError,
            r"^xavier_normal: fan_out must be an int, got 4\.0$",
        ),
        (
            lambda: xavier_uniform((4, 3), 3, 4, np.random.default_rng(0), np.int32),
            DTypeError,
            r"^xavier_uniform: dtype must be float32 or float64",
        ),
        (
            lambda: kaiming_normal((4, 3), 3, np.random.default_rng(0), np.float32, gain=-1),
            ConfigError,
            r"^kaiming_normal: gain must be a finite number > 0, got -1$",
        ),
        (
            lambda: kaiming_normal((4, 3.5), 3, np.random.default_rng(0), np.float32),
            DTypeError,
            r"^kaiming_normal: shape must be a tuple of ints, got \(4, 3\.5\)$",
        ),
        (
            lambda: fan_in_and_fan_out((10,)),
            ShapeError,
            r"^fan_in_and_fan_out: needs a weight with at least 2 axes \(out, in, \.\.\.\), got "
            r"shape \(10,\); fans are undefined for a bias$",
        ),
    ],
)
def test_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()
