"""Float64 central-difference checks of every backward, with random upstream gradients.

Max pooling is checked on distinct values (a scaled permutation, 0.1 apart, so no eps-sized
perturbation changes a window's winner) and ReLU on inputs at least 0.1 away from its kink.
"""

from __future__ import annotations

import dataclasses
import doctest
import re

import numpy as np
import pytest

import cnnkit.gradients
from cnnkit import (
    AvgPool2d,
    Conv2d,
    CrossEntropyLoss,
    DTypeError,
    Flatten,
    Layer,
    Linear,
    MaxPool2d,
    Parameter,
    ReLU,
    Sequential,
)
from cnnkit.gradients import GradcheckReport, gradcheck, numerical_gradient

F64 = np.float64
RTOL, ATOL = 1e-5, 1e-7

pytestmark = pytest.mark.usefixtures("each_engine")  # every check, on each engine


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def distinct(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Values 0.1 apart in random order, centred on 0: no ties, no near-ties."""
    size = int(np.prod(shape))
    return (rng(seed).permutation(size).reshape(shape) - size / 2) * 0.1


def assert_ok(report: GradcheckReport, names: list[str]) -> None:
    assert [check.name for check in report.checks] == names
    assert report.ok, f"\n{report}"


# --- Conv2d ------------------------------------------------------------------------------------

CONV_CASES = {
    "padding": (dict(in_channels=2, out_channels=3, kernel_size=3, padding=1), (2, 2, 5, 5)),
    "stride": (
        dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1),
        (2, 2, 5, 5),
    ),
    "non-square input": (
        dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1),
        (2, 2, 5, 7),
    ),
    "non-square kernel": (
        dict(in_channels=2, out_channels=2, kernel_size=(2, 3), padding=(1, 2)),
        (2, 2, 4, 5),
    ),
    "no bias": (
        dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1, bias=False),
        (2, 2, 5, 5),
    ),
    "same, even kernel": (
        dict(in_channels=2, out_channels=2, kernel_size=4, padding="same"),
        (1, 2, 5, 6),
    ),
    "same, even by odd kernel": (
        dict(in_channels=1, out_channels=2, kernel_size=(2, 3), padding="same"),
        (2, 1, 4, 5),
    ),
    "stride pair": (
        dict(in_channels=2, out_channels=3, kernel_size=3, stride=(1, 2), padding=1),
        (2, 2, 5, 7),
    ),
    "floor, leftover rows": (
        dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1, rounding="floor"),
        (2, 2, 6, 7),
    ),
    "floor, no padding": (
        dict(in_channels=1, out_channels=2, kernel_size=(3, 2), stride=(2, 3), rounding="floor"),
        (2, 1, 6, 7),
    ),
}


@pytest.mark.parametrize(("kwargs", "shape"), CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d(kwargs, shape):
    conv = Conv2d(**kwargs, dtype=F64, rng=rng(1))
    report = gradcheck(conv, rng(2).standard_normal(shape), rng=rng(3))
    assert_ok(report, ["dx", "weight"] if kwargs.get("bias") is False else ["dx", "weight", "bias"])


def test_conv2d_floor_leaves_unread_rows_with_zero_gradient():
    conv = Conv2d(1, 2, 3, stride=2, rounding="floor", dtype=F64, rng=rng(1))
    x = rng(2).standard_normal((1, 1, 6, 6))  # (6 - 3)/2 + 1 = 2.5 -> 2: row 5 and column 5 unread
    conv.forward(x)
    dx = conv.backward(rng(3).standard_normal((1, 2, 2, 2)))
    assert np.all(dx[:, :, 5, :] == 0) and np.all(dx[:, :, :, 5] == 0)
    assert_ok(gradcheck(conv, x, rng=rng(4)), ["dx", "weight", "bias"])


# --- Pooling -----------------------------------------------------------------------------------

POOL_CASES = {
    "overlapping": (dict(kernel_size=3, stride=2), (2, 2, 7, 7)),
    "overlapping, stride 1": (dict(kernel_size=2, stride=1), (1, 2, 4, 5)),
    "padding": (dict(kernel_size=3, stride=2, padding=1), (2, 2, 5, 5)),
    "default stride": (dict(kernel_size=2), (2, 2, 4, 6)),
    "non-square": (dict(kernel_size=(2, 3), stride=(1, 2)), (2, 2, 5, 7)),
    "non-square padding": (dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)), (1, 2, 5, 6)),
    "floor": (dict(kernel_size=2, stride=2, rounding="floor"), (1, 2, 5, 5)),
    "floor, padding": (dict(kernel_size=3, stride=2, padding=1, rounding="floor"), (1, 2, 6, 6)),
}


@pytest.mark.parametrize(("kwargs", "shape"), POOL_CASES.values(), ids=POOL_CASES.keys())
def test_max_pool2d(kwargs, shape):
    assert_ok(gradcheck(MaxPool2d(**kwargs), distinct(shape), rng=rng(3)), ["dx"])


@pytest.mark.parametrize(("kwargs", "shape"), POOL_CASES.values(), ids=POOL_CASES.keys())
def test_avg_pool2d(kwargs, shape):
    assert_ok(gradcheck(AvgPool2d(**kwargs), rng(2).standard_normal(shape), rng=rng(3)), ["dx"])


# --- Linear, ReLU, Flatten ---------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias):
    linear = Linear(5, 3, bias=bias, dtype=F64, rng=rng(1))
    report = gradcheck(linear, rng(2).standard_normal((4, 5)), rng=rng(3))
    assert_ok(report, ["dx", "weight", "bias"] if bias else ["dx", "weight"])


def test_relu():
    x = rng(2).standard_normal((2, 3, 4))
    x = np.where(x >= 0, 1, -1) * (0.1 + np.abs(x))  # at least 0.1 from the kink at 0
    assert_ok(gradcheck(ReLU(), x, rng=rng(3)), ["dx"])


@pytest.mark.parametrize(("start_dim", "end_dim"), [(1, -1), (2, 3), (0, 1)])
def test_flatten(start_dim, end_dim):
    layer = Flatten(start_dim, end_dim)
    assert_ok(gradcheck(layer, rng(2).standard_normal((2, 3, 2, 2)), rng=rng(3)), ["dx"])


# --- Loss and a whole network ------------------------------------------------------------------


def test_cross_entropy_loss():
    logits = 2 * rng(2).standard_normal((5, 4))
    targets = rng(3).integers(0, 4, size=5)
    loss = CrossEntropyLoss()
    loss.forward(logits, targets)
    dlogits = loss.backward()
    numerical = numerical_gradient(lambda z: loss.forward(z, targets), logits)
    np.testing.assert_allclose(dlogits, numerical, rtol=RTOL, atol=ATOL)


def lecture_stack() -> Sequential:
    return Sequential(
        Conv2d(1, 2, 3, padding=1, dtype=F64, rng=rng(10)),  # (2, 1, 7, 7) -> (2, 2, 7, 7)
        ReLU(),
        MaxPool2d(3, stride=2, padding=1),  # -> (2, 2, 4, 4), overlapping windows
        Conv2d(2, 3, 3, stride=1, padding=1, dtype=F64, rng=rng(11)),  # -> (2, 3, 4, 4)
        ReLU(),
        AvgPool2d(2),  # -> (2, 3, 2, 2)
        Flatten(),  # -> (2, 12)
        Linear(12, 4, dtype=F64, rng=rng(12)),  # -> (2, 4)
    )


def assert_away_from_kinks(model: Sequential, x: np.ndarray, margin: float = 1e-4) -> None:
    """Eps-sized perturbations must not cross a ReLU kink or change a max-pool winner."""
    for layer in model:
        if isinstance(layer, ReLU):
            assert np.abs(x).min() > margin, "a ReLU input sits on its kink: pick another seed"
        if isinstance(layer, MaxPool2d):
            assert max_pool_gap(layer, x) > margin, "near-tie in a max pool: pick another seed"
        x = layer.forward(x)


def max_pool_gap(pool: MaxPool2d, x: np.ndarray) -> float:
    """Smallest gap between the largest and second-largest value of a window whose max is > 0.

    (A window of ReLU zeros ties harmlessly: no eps-sized perturbation makes any of them win.)
    """
    (ph, pw), (sh, sw) = pool.padding, pool.stride
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, pool.kernel_size, axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw].reshape(-1, int(np.prod(pool.kernel_size)))
    top = np.sort(windows, axis=1)[:, -2:]  # (windows, 2): second largest, largest
    top = top[top[:, 1] > 0]
    return float((top[:, 1] - top[:, 0]).min(initial=np.inf))


def test_sequential_with_loss():
    model = lecture_stack()
    x = rng(2).standard_normal((2, 1, 7, 7))
    targets = rng(3).integers(0, 4, size=2)
    assert_away_from_kinks(model, x)
    loss = CrossEntropyLoss()

    def objective(_: np.ndarray) -> float:
        return loss.forward(model.forward(x), targets)

    objective(x)
    model.zero_grad()
    dx = model.backward(loss.backward())
    np.testing.assert_allclose(dx, numerical_gradient(objective, x), rtol=RTOL, atol=ATOL)
    names = []
    for name, parameter in model.named_parameters():
        names.append(name)
        numerical = numerical_gradient(objective, parameter.data)
        np.testing.assert_allclose(parameter.grad, numerical, rtol=RTOL, atol=ATOL, err_msg=name)
    assert names == ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias"]


def test_sequential_gradcheck_names_every_parameter():
    model = lecture_stack()
    x = rng(2).standard_normal((2, 1, 7, 7))
    assert_away_from_kinks(model, x)
    report = gradcheck(model, x, rng=rng(4))
    assert_ok(report, ["dx", "0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias"])


# --- The helper itself -------------------------------------------------------------------------


class Identity(Layer):
    """y = x, with a backward chosen by the test."""

    def __init__(self, backward) -> None:
        self._backward = backward

    def forward(self, x):
        return x.copy()

    def backward(self, dy):
        return self._backward(dy)


class Scale(Layer):
    """y = weight * x element-wise; ``wrong=True`` forgets the factor x in the weight gradient."""

    def __init__(self, shape, wrong: bool = False) -> None:
        self.weight = Parameter(rng(5).standard_normal(shape), "weight")
        self.wrong = wrong

    def parameters(self):
        yield self.weight

    def forward(self, x):
        self._x = x
        return self.weight.data * x

    def backward(self, dy):
        self.weight.grad += dy if self.wrong else dy * self._x
        return dy * self.weight.data


def test_flags_a_backward_that_doubles():
    report = gradcheck(Identity(lambda dy: 2 * dy), rng(2).standard_normal((3, 4)), rng=rng(3))
    assert not report.ok
    assert not report["dx"].ok
    assert report["dx"].max_rel_err == pytest.approx(0.5)
    assert str(report).endswith("FAIL")


def test_flags_errors_that_cancel_in_a_sum_of_outputs():
    """Reversing dy keeps sum(dx) right, so only a random upstream gradient catches it."""
    x = rng(2).standard_normal((2, 6))
    layer = Identity(lambda dy: dy[:, ::-1].copy())
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.ones_like(x))  # g = 1 passes
    assert not gradcheck(layer, x, rng=rng(3)).ok


def test_flags_a_wrong_parameter_gradient():
    report = gradcheck(Scale((2, 3), wrong=True), rng(2).standard_normal((2, 3)), rng=rng(3))
    assert report["dx"].ok
    assert not report["weight"].ok
    assert not report.ok


def test_flags_a_dx_of_the_wrong_shape():
    report = gradcheck(Identity(lambda dy: dy[:, :2]), rng(2).standard_normal((2, 3)), rng=rng(3))
    assert not report.ok
    assert str(report) == "dx: shape (2, 2), expected (2, 3) FAIL"


def test_zeroes_stale_gradients_first():
    layer = Scale((2, 3))
    layer.weight.grad += 100.0
    assert_ok(gradcheck(layer, rng(2).standard_normal((2, 3)), rng=rng(3)), ["dx", "weight"])


def test_leaves_input_and_parameters_unchanged():
    conv = Conv2d(1, 2, 3, padding=1, dtype=F64, rng=rng(1))
    x = rng(2).standard_normal((1, 1, 4, 4))
    x_before, w_before = x.copy(), conv.weight.data.copy()
    gradcheck(conv, x, rng=rng(3))
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(conv.weight.data, w_before)


def test_report_is_frozen_and_prints_one_line_per_quantity():
    report = gradcheck(
        Linear(3, 2, dtype=F64, rng=rng(1)), rng(2).standard_normal((2, 3)), rng=rng(3)
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.checks = ()  # type: ignore[misc]
    lines = str(report).splitlines()
    assert [line.split(":")[0] for line in lines] == ["dx", "weight", "bias"]
    pattern = r"^dx: max abs err \d\.\de-?\d+, max rel err \d\.\de-?\d+ ok$"
    assert re.match(pattern, lines[0]), lines[0]
    with pytest.raises(KeyError, match="no gradient named 'kernel'"):
        report["kernel"]


def test_refuses_float32_input():
    layer = Linear(3, 2, dtype=F64, rng=rng(1))
    x = rng(2).standard_normal((2, 3)).astype(np.float32)
    with pytest.raises(DTypeError, match=r"gradcheck: x is float32.*dtype=np\.float64"):
        gradcheck(layer, x, rng=rng(3))


def test_refuses_a_float32_layer():
    layer = Conv2d(1, 2, 3, rng=rng(1))  # float32 by default
    with pytest.raises(DTypeError, match=r"parameter 'weight' is float32.*dtype=np\.float64"):
        gradcheck(layer, rng(2).standard_normal((1, 1, 4, 4)), rng=rng(3))


def test_numerical_gradient_matches_a_known_derivative_and_restores_x():
    x = rng(2).standard_normal((3, 2))
    before = x.copy()
    numerical = numerical_gradient(lambda a: float(np.sum(np.sin(a) * a)), x)
    np.testing.assert_allclose(numerical, np.cos(x) * x + np.sin(x), rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_refuses_float32():
    with pytest.raises(DTypeError, match=r"numerical_gradient: x is float32.*dtype=np\.float64"):
        numerical_gradient(lambda a: float(a.sum()), np.zeros(3, dtype=np.float32))


def test_docstring_examples():
    result = doctest.testmod(cnnkit.gradients)
    assert result.attempted > 0 and result.failed == 0
