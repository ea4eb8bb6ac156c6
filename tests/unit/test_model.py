"""Sequential runs a ReLU after the max pool that follows it: same values, same gradients."""

from __future__ import annotations

import numpy as np
import pytest

import cnnkit
from cnnkit.errors import ShapeError


def _network(rng, pool, input_shape):
    features = cnnkit.Sequential(
        cnnkit.Conv2d(2, 4, 3, padding=1, rng=rng),
        cnnkit.ReLU(),
        pool,
        cnnkit.Conv2d(4, 3, 3, rng=rng),
        cnnkit.ReLU(),
        cnnkit.MaxPool2d(2, rounding="floor"),
        cnnkit.Flatten(),
    )
    size = features.output_shape(input_shape)[1]
    return features.append(cnnkit.Linear(size, 5, rng=rng))


def _layer_by_layer(model, x, dy):
    """The layers strictly in order, forward then reverse: the reference."""
    outputs = [x]
    for layer in model:
        outputs.append(layer.forward(outputs[-1]))
    grad = dy
    for layer in reversed(list(model)):
        grad = layer.backward(grad)
    return outputs[-1], grad


@pytest.mark.parametrize(
    "pool",
    [
        lambda: cnnkit.MaxPool2d(2),
        lambda: cnnkit.MaxPool2d(3, stride=1, padding=1),
        lambda: cnnkit.MaxPool2d(2, stride=1),
    ],
    ids=["2x2", "3x3-s1-pad1", "overlapping"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_after_the_pool_changes_no_value_and_no_gradient(pool, dtype):
    rng = np.random.default_rng(0)
    # many exact zeros and ties (where the orders could differ), and a NaN
    x = np.round(rng.standard_normal((3, 2, 8, 8)), 1).astype(dtype)
    x[0, 0, 2, 3] = np.nan
    model = _network(np.random.default_rng(1), pool(), x.shape)
    for layer in model:
        layer.dtype = dtype
        for parameter in layer.parameters():
            parameter.data = parameter.data.astype(dtype)
            parameter.grad = np.zeros_like(parameter.data)
    y = model.forward(x)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = model.backward(dy)
    grads = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    y_ref, dx_ref = _layer_by_layer(model, x, dy)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)
    for grad, parameter in zip(grads, model.parameters(), strict=True):
        np.testing.assert_array_equal(grad, parameter.grad)


def test_a_network_that_starts_with_relu_and_pool_skips_only_the_first_run_layer():
    rng = np.random.default_rng(2)
    model = cnnkit.Sequential(
        cnnkit.ReLU(), cnnkit.MaxPool2d(2), cnnkit.Flatten(), cnnkit.Linear(8, 2, rng=rng)
    )
    x = rng.standard_normal((4, 2, 4, 4)).astype(np.float32)
    dy = rng.standard_normal(model.forward(x).shape).astype(np.float32)
    assert model.backward(dy, input_grad=False) is None
    weight_grad = model[3].weight.grad.copy()
    model.zero_grad()
    model.forward(x)
    assert model.backward(dy).shape == x.shape
    np.testing.assert_array_equal(model[3].weight.grad, weight_grad)


def test_errors_still_name_the_layer_by_its_place_in_the_stack():
    model = cnnkit.Sequential(cnnkit.ReLU(), cnnkit.MaxPool2d(4))
    with pytest.raises(ShapeError, match=r"^layer 1 MaxPool2d"):
        model.forward(np.zeros((1, 1, 6, 6), np.float32))
