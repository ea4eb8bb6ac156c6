"""The layer contract: forward/backward/parameters/output_shape/train/eval, and initialisation."""

import numpy as np
import pytest

import cnnkit
from cnnkit import (
    AvgPool2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Parameter,
    ReLU,
    Sequential,
)


def rng(seed=0):
    return np.random.default_rng(seed)


def small_model(dtype=np.float32):
    return Sequential(
        Conv2d(1, 4, 3, padding=1, rng=rng(1), dtype=dtype),
        ReLU(),
        MaxPool2d(2),
        Conv2d(4, 6, 3, padding="same", rng=rng(2), dtype=dtype),
        ReLU(),
        AvgPool2d(2),
        Flatten(),
        Linear(6 * 2 * 2, 3, rng=rng(3), dtype=dtype),
    )


def test_conv_parameters_are_weight_then_bias_with_pytorch_layout():
    conv = Conv2d(3, 5, (3, 2), rng=rng())
    weight, bias = conv.parameters()
    assert weight is conv.weight and bias is conv.bias
    assert isinstance(weight, Parameter)
    assert weight.data.shape == (5, 3, 3, 2) and bias.data.shape == (5,)
    assert weight.data.dtype == np.float32 and weight.grad.dtype == np.float32
    assert not weight.grad.any()


def test_no_bias_means_no_bias_parameter():
    conv = Conv2d(3, 5, 3, bias=False, rng=rng())
    assert conv.bias is None and list(conv.parameters()) == [conv.weight]
    linear = Linear(4, 2, bias=False, rng=rng())
    assert linear.bias is None and list(linear.parameters()) == [linear.weight]


def test_default_initialisation_bound_is_one_over_sqrt_fan_in():
    conv = Conv2d(16, 32, 3, rng=rng())
    bound = 1 / np.sqrt(16 * 9)
    for p in conv.parameters():
        assert np.abs(p.data).max() <= bound
        assert np.abs(p.data).max() > 0.9 * bound  # really uses the whole range
    assert np.abs(Linear(100, 10, rng=rng()).weight.data).max() <= 0.1


def test_same_generator_state_gives_same_weights_and_none_gives_fresh_ones():
    a = Conv2d(3, 4, 3, rng=rng(5)).weight.data
    b = Conv2d(3, 4, 3, rng=rng(5)).weight.data
    np.testing.assert_array_equal(a, b)
    c = Conv2d(3, 4, 3).weight.data
    d = Conv2d(3, 4, 3).weight.data
    assert not np.array_equal(c, d)


def test_float64_layers_keep_float64_end_to_end():
    model = small_model(np.float64)
    x = rng().standard_normal((2, 1, 8, 8))
    y = model.forward(x)
    dx = model.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float64
    assert all(p.grad.dtype == np.float64 for p in model.parameters())


def test_float32_stays_float32():
    model = small_model()
    x = rng().standard_normal((2, 1, 8, 8)).astype(np.float32)
    y = model.forward(x)
    assert y.dtype == np.float32
    assert model.backward(np.ones_like(y)).dtype == np.float32


def test_backward_accumulates_and_zero_grad_resets():
    model = small_model(np.float64)
    x = rng().standard_normal((2, 1, 8, 8))
    dy = rng(1).standard_normal((2, 3))
    model.forward(x)
    model.backward(dy)
    once = [p.grad.copy() for p in model.parameters()]
    model.forward(x)  # every backward goes with its own forward
    model.backward(dy)
    for p, g in zip(model.parameters(), once, strict=True):
        np.testing.assert_allclose(p.grad, 2 * g)
    model.zero_grad()
    assert not any(p.grad.any() for p in model.parameters())


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (Conv2d(3, 8, 5, stride=2, padding=2, rng=rng()), (2, 3, 17, 13)),
        (Conv2d(3, 8, (3, 1), stride=(2, 1), padding=(1, 0), rng=rng()), (2, 3, 9, 6)),
        (Conv2d(3, 8, 4, padding="same", rng=rng()), (2, 3, 7, 6)),
        (Conv2d(3, 8, 3, stride=2, rng=rng(), rounding="floor"), (2, 3, 10, 10)),
        (MaxPool2d(3, stride=2, padding=1), (2, 3, 9, 7)),
        (AvgPool2d(2), (2, 3, 8, 6)),
        (MaxPool2d(2, rounding="floor"), (1, 2, 7, 7)),
        (Flatten(), (2, 3, 4, 5)),
        (ReLU(), (2, 3, 4, 5)),
        (Linear(7, 2, rng=rng()), (5, 7)),
        (small_model(), (3, 1, 8, 8)),
    ],
)
def test_output_shape_equals_forward_shape(layer, shape):
    x = rng().standard_normal(shape).astype(np.float32)
    assert layer.forward(x).shape == layer.output_shape(shape)


def test_same_padding_keeps_height_and_width():
    assert Conv2d(2, 3, 4, padding="same", rng=rng()).output_shape((1, 2, 7, 9)) == (1, 3, 7, 9)
    assert Conv2d(2, 3, 3, padding="valid", rng=rng()).output_shape((1, 2, 7, 9)) == (1, 3, 5, 7)


def test_output_shape_needs_no_data_for_large_inputs():
    conv = Conv2d(3, 64, 3, padding=1, rng=rng())
    assert conv.output_shape((256, 3, 2048, 2048)) == (256, 64, 2048, 2048)


def test_backward_returns_gradient_shaped_like_input():
    model = small_model()
    x = rng().standard_normal((3, 1, 8, 8)).astype(np.float32)
    assert model.backward(np.ones_like(model.forward(x))).shape == x.shape


def test_train_and_eval_propagate_through_sequential():
    model = small_model()
    assert model.eval() is model
    assert not model.training and not any(layer.training for layer in model)
    model.train()
    assert model.training and all(layer.training for layer in model)


def test_sequential_names_and_state_dict_round_trip():
    model = small_model()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias"]
    state = model.state_dict()
    other = small_model()
    for p in other.parameters():
        p.data[...] = 0
    other.load_state_dict(state)
    for a, b in zip(model.parameters(), other.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_reprs_show_non_default_arguments():
    assert repr(Conv2d(3, 16, 3, stride=2, rng=rng())) == "Conv2d(3, 16, kernel_size=3, stride=2)"
    assert (
        repr(Conv2d(3, 16, (3, 5), padding="same", bias=False, rng=rng()))
        == "Conv2d(3, 16, kernel_size=(3, 5), padding='same', bias=False)"
    )
    assert (
        repr(MaxPool2d(3, stride=2, padding=1)) == "MaxPool2d(kernel_size=3, stride=2, padding=1)"
    )
    assert repr(Linear(4, 2, rng=rng())) == "Linear(4, 2)"
    assert "(7): Linear(24, 3)" in repr(small_model())


def test_sequential_indexing_and_slicing():
    model = small_model()
    assert len(model) == 8
    assert isinstance(model[0], Conv2d)
    head = model[:3]
    assert isinstance(head, Sequential) and len(head) == 3
    assert head.output_shape((1, 1, 8, 8)) == (1, 4, 4, 4)


def test_max_pool_tie_goes_to_the_first_position_like_pytorch():
    pool = MaxPool2d(2)
    pool.forward(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 1, 1)))[0, 0], [[1, 0], [0, 0]])


def test_max_pool_padding_never_wins():
    x = -np.ones((1, 1, 2, 2))
    np.testing.assert_array_equal(
        MaxPool2d(2, stride=1, padding=1).forward(x), -np.ones((1, 1, 3, 3))
    )


def test_avg_pool_padding_counts_as_zeros():
    y = AvgPool2d(2, stride=2, padding=1).forward(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(y[0, 0], np.full((2, 2), 0.25))


def test_relu_zeroes_negatives_and_gradient_at_zero_is_zero():
    relu = ReLU()
    y = relu.forward(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(y, [0, 0, 2])
    np.testing.assert_array_equal(relu.backward(np.ones(3)), [0, 0, 1])


def test_relu_lets_nan_and_its_gradient_through_like_pytorch():
    relu = ReLU()
    assert np.isnan(relu.forward(np.array([np.nan]))[0])
    np.testing.assert_array_equal(relu.backward(np.ones(1)), [1.0])


def test_flatten_is_c_h_w_order():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(Flatten().forward(x)[1], np.arange(12, 24))
    assert Flatten(0, 1).output_shape((2, 3, 4)) == (6, 4)


def test_flatten_hands_the_gradient_back_stored_like_its_input():
    """A channels-last input (a wide conv's output) gets a channels-last gradient, which the
    layer before reads on its fast path; values are the same either way."""
    from cnnkit.functional.fast.layout import NHWC, in_layout, layout_of

    x = in_layout(np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), NHWC)
    flatten = Flatten()
    np.testing.assert_array_equal(flatten.forward(x)[1], np.arange(12, 24))
    dy = np.arange(24, dtype=np.float32).reshape(2, 12)
    dx = flatten.backward(dy)
    assert layout_of(dx) == NHWC
    np.testing.assert_array_equal(dx, dy.reshape(2, 3, 2, 2))


def test_cross_entropy_is_stable_for_huge_logits():
    loss = cnnkit.CrossEntropyLoss()
    value = loss.forward(np.array([[1000.0, 0.0], [0.0, 1000.0]]), np.array([0, 0]))
    assert value == pytest.approx(500.0)
    grad = loss.backward()
    np.testing.assert_allclose(grad, [[0, 0], [-0.5, 0.5]], atol=1e-12)


def test_cross_entropy_accepts_a_list_of_class_indices():
    loss = cnnkit.CrossEntropyLoss()
    assert loss(np.zeros((2, 3)), [0, 2]) == pytest.approx(np.log(3))


def test_cross_entropy_of_uniform_logits_is_log_k():
    loss = cnnkit.CrossEntropyLoss()
    assert loss(np.zeros((4, 10), np.float32), np.arange(4)) == pytest.approx(np.log(10), rel=1e-6)


@pytest.mark.parametrize(
    "layer",
    [
        lambda: cnnkit.Conv2d(3, 4, 3, padding=1),
        lambda: cnnkit.Conv2d(3, 40, 3),  # a channels-last output
        lambda: cnnkit.Conv2d(16, 16, 3, padding=1),
        lambda: cnnkit.MaxPool2d(2),
        lambda: cnnkit.AvgPool2d(2),
        lambda: cnnkit.ReLU(),
    ],
    ids=["conv-narrow", "conv-wide", "conv-rows", "maxpool", "avgpool", "relu"],
)
def test_an_empty_batch_goes_through_as_in_pytorch(layer):
    layer = layer()
    channels = 16 if "16" in repr(layer) else 3
    y = layer.forward(np.zeros((0, channels, 8, 8), np.float32))
    assert y.shape[0] == 0
    dx = layer.backward(np.zeros(y.shape, np.float32))
    assert dx.shape == (0, channels, 8, 8)
    for parameter in layer.parameters():
        assert not parameter.grad.any()


GIB = 2**30


@pytest.fixture
def eight_gib(monkeypatch):
    """8 GiB of memory available, wherever the test runs."""
    monkeypatch.setattr("cnnkit.data.memory.available_memory", lambda: 8 * GIB)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Conv2d(1, 1, 10**9),
            r"^Conv2d\(1, 1, kernel_size=1000000000\): its weight holds 1 x 1 x 1000000000 x "
            r"1000000000 = 1,000,000,000,000,000,000 values: 16,000,000,000,000,000,000 bytes "
            r"\(13\.9 EiB\) for it and its gradient as float32 and the float64 values drawn for "
            r"it, but only 8,589,934,592 bytes \(8\.0 GiB\) of memory is available; make the "
            r"layer smaller \(a smaller F, fewer filters, channels or features\)$",
        ),
        (
            lambda: Conv2d(1, 1, 10**5, stride=2, bias=False),
            r"^Conv2d\(1, 1, kernel_size=100000, stride=2, bias=False\): its weight holds "
            r"1 x 1 x 100000 x 100000 = 10,000,000,000 values: 160,000,000,000 bytes "
            r"\(149\.0 GiB\) for it and its gradient as float32",
        ),
        (
            lambda: Linear(10**6, 10**6, dtype=np.float64),
            r"^Linear\(1000000, 1000000\): its weight holds 1000000 x 1000000 = "
            r"1,000,000,000,000 values: 24,000,000,000,000 bytes \(21\.8 TiB\) for it and its "
            r"gradient as float64",
        ),
        (
            lambda: Linear(10**13, 10**13),
            r"^Linear\(10000000000000, 10000000000000\): its weight would hold 10000000000000 x "
            r"10000000000000 = 100,000,000,000,000,000,000,000,000 values, more than any array",
        ),
    ],
)
def test_a_layer_too_large_for_memory_is_refused_before_allocating(make, message, eight_gib):
    with pytest.raises(cnnkit.ShapeError, match=message):
        make()


def test_a_layer_that_fits_is_built_and_shape_only_ones_are_never_refused(eight_gib):
    conv = Conv2d(3, 8, 3, rng=rng())
    assert [p.name for p in conv.parameters()] == ["weight", "bias"]
    assert conv.weight.shape == (8, 3, 3, 3)
    # a summary builds shape-only parameters: 10**10 weights cost nothing there
    assert cnnkit.summarize("INPUT(1x100000x100000) - FC(10)").totals.params == 10**11 + 10
