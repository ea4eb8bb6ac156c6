"""The lecture's own numbers and claims, checked against the engine."""

import numpy as np
import pytest

from cnnkit import Conv2d, MaxPool2d, ShapeError, shapes

# A consistent 3-channel 5x5 input for the lecture's worked example (its copy lists the second
# channel twice and so cannot reproduce its printed output); channels 0 and 1 are the lecture's.
X = np.array(
    [
        [[1, 1, 0, 0, 2], [1, 1, 0, 1, 0], [1, 1, 1, 2, 1], [1, 0, 2, 0, 2], [0, 0, 2, 1, 0]],
        [[0, 0, 2, 0, 1], [1, 1, 0, 1, 1], [2, 0, 2, 2, 0], [1, 1, 1, 2, 0], [0, 1, 2, 2, 0]],
        [[2, 1, 0, 1, 2], [0, 0, 1, 2, 1], [1, 2, 0, 0, 1], [2, 0, 1, 1, 0], [0, 1, 2, 0, 1]],
    ],
    dtype=np.float64,
)
# The lecture's filter F0, channel by channel, and a bias of 1.
W0 = np.array(
    [
        [[1, 1, 1], [1, 0, -1], [-1, 0, 1]],
        [[-1, 0, -1], [0, 1, 0], [0, 0, 0]],
        [[1, 1, -1], [0, 1, 0], [-1, 0, 0]],
    ],
    dtype=np.float64,
)
B0 = 1.0


def worked_example_layer() -> Conv2d:
    conv = Conv2d(3, 1, kernel_size=3, stride=2, padding=1, dtype=np.float64)
    conv.weight.data[0] = W0
    conv.bias.data[0] = B0
    return conv


def test_worked_example_output_equals_hand_computed_dot_products():
    y = worked_example_layer().forward(X[None])
    # out[0, 1] reads rows 0:3, columns 2:5 of the zero-padded input:
    #   channel 0 [[0,0,0],[1,0,0],[1,0,1]] * F0[0] = 0+0+0 + 1+0+0 + -1+0+1 = 1
    #   channel 1 [[0,0,0],[0,2,0],[1,0,1]] * F0[1] = 0+0+0 + 0+2+0 + 0+0+0 = 2
    #   channel 2 [[0,0,0],[1,0,1],[0,1,2]] * F0[2] = 0+0+0 + 0+0+0 + 0+0+0 = 0
    #   plus bias 1 -> 4
    hand = np.array([[3, 4, 1], [4, 1, 6], [3, 3, 4]], dtype=np.float64)
    assert y.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(y[0, 0], hand)


def test_worked_example_each_unit_is_one_dot_product_plus_bias():
    y = worked_example_layer().forward(X[None])
    padded = np.pad(X, ((0, 0), (1, 1), (1, 1)))
    for i in range(3):
        for j in range(3):
            region = padded[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]
            assert y[0, 0, i, j] == np.dot(region.ravel(), W0.ravel()) + B0


def test_worked_example_shape_from_the_formula():
    assert shapes.output_size(5, 3, stride=2, padding=1) == 3
    assert shapes.formula(5, 3, 2, 1) == "(5 - 3 + 2*1)/2 + 1"


@pytest.mark.parametrize(("size", "padding", "stride", "expected"), [(5, 0, 1, 3), (5, 1, 1, 5)])
def test_lecture_size_examples(size, padding, stride, expected):
    assert shapes.output_size(size, 3, stride=stride, padding=padding) == expected


def test_alexnet_conv1_volume_and_parameters():
    conv = Conv2d(3, 96, kernel_size=11, stride=4, padding=0, rng=np.random.default_rng(0))
    assert conv.output_shape((1, 3, 227, 227)) == (1, 96, 55, 55)
    assert sum(p.size for p in conv.parameters()) == 34_944 == 96 * (11 * 11 * 3 + 1)
    assert shapes.conv_parameter_count(3, 96, (11, 11)) == 34_944
    unshared = shapes.unshared_parameter_count(3, 96, (11, 11), (55, 55))
    assert unshared == 105_705_600 == 55 * 55 * 96 * (11 * 11 * 3 + 1)


def test_alexnet_conv1_forward_runs_on_a_real_sized_input():
    conv = Conv2d(3, 96, kernel_size=11, stride=4, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((1, 3, 227, 227), dtype=np.float32)
    assert conv.forward(x).shape == (1, 96, 55, 55)


def test_impossible_configuration_from_the_lecture_is_refused():
    with pytest.raises(ShapeError, match=r"\(10 - 3 \+ 2\*0\)/2 \+ 1 = 4\.5"):
        shapes.output_size(10, 3, stride=2, padding=0)


def test_weight_gradient_is_the_sum_over_the_depth_slice():
    """Every unit computes a gradient for the shared filter; backward returns their sum."""
    rng = np.random.default_rng(3)
    conv = Conv2d(2, 1, kernel_size=3, stride=1, padding=1, dtype=np.float64, rng=rng)
    x = rng.standard_normal((2, 2, 4, 5))
    dy = rng.standard_normal((2, 1, 4, 5))
    conv.forward(x)
    conv.backward(dy)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    per_unit = [
        dy[n, 0, i, j] * padded[n, :, i : i + 3, j : j + 3]
        for n in range(2)
        for i in range(4)
        for j in range(5)
    ]
    np.testing.assert_allclose(conv.weight.grad[0], np.sum(per_unit, axis=0), rtol=1e-12)
    np.testing.assert_allclose(conv.bias.grad[0], dy.sum(), rtol=1e-12)


def shift_width(x, k):
    return np.roll(x, k, axis=3)


@pytest.fixture
def image():
    return np.random.default_rng(7).standard_normal((1, 2, 16, 16))


def test_stride_one_convolution_commutes_with_shifts_away_from_borders(image):
    conv = Conv2d(2, 3, kernel_size=3, padding=1, dtype=np.float64, rng=np.random.default_rng(0))
    y = conv.forward(image)
    for k in (1, 2, 3):
        shifted = conv.forward(shift_width(image, k))
        # Unit j reads columns j-1..j+1; away from the padding and the wrapped columns,
        # f(g(x))[j] = g(f(x))[j] = f(x)[j - k].
        np.testing.assert_allclose(shifted[..., 1:-1, k + 1 : -1], y[..., 1:-1, 1 : -1 - k])
    both = conv.forward(np.roll(image, (2, 3), axis=(2, 3)))
    np.testing.assert_allclose(both[..., 3:-1, 4:-1], y[..., 1:-3, 1:-4])


def interior_mismatch(shifted, y, output_shift):
    """Largest difference between f(g(x)) and f(x) moved by ``output_shift`` columns."""
    a = shifted[..., 2:-2, 2 + output_shift : -2]
    b = y[..., 2:-2, 2 : y.shape[-1] - 2 - output_shift]
    return np.abs(a - b).max()


@pytest.mark.parametrize(
    "layer",
    [
        Conv2d(
            2, 3, kernel_size=4, stride=2, padding=1, dtype=np.float64, rng=np.random.default_rng(0)
        ),
        MaxPool2d(2),
    ],
    ids=["conv-stride-2", "maxpool-2x2"],
)
def test_stride_two_commutes_only_with_shifts_that_are_multiples_of_the_stride(layer, image):
    y = layer.forward(image)
    two = layer.forward(shift_width(image, 2))
    assert interior_mismatch(two, y, 1) < 1e-12  # a 2-pixel shift moves the output by 1 unit
    one = layer.forward(shift_width(image, 1))
    assert min(interior_mismatch(one, y, 0), interior_mismatch(one, y, 1)) > 0.1
