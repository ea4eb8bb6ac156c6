"""Every error a user can trigger: its class, and its message pinned (where, what, fix)."""

import numpy as np
import pytest

from cnnkit import (
    SGD,
    AvgPool2d,
    CnnkitError,
    ConfigError,
    Conv2d,
    CrossEntropyLoss,
    DTypeError,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    ShapeError,
    StateError,
)


def rng():
    return np.random.default_rng(0)


def images(*shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


def test_all_errors_share_one_base_and_the_builtin_kinds():
    assert issubclass(ShapeError, CnnkitError) and issubclass(ShapeError, ValueError)
    assert issubclass(ConfigError, CnnkitError) and issubclass(ConfigError, ValueError)
    assert issubclass(DTypeError, CnnkitError) and issubclass(DTypeError, TypeError)
    assert issubclass(StateError, CnnkitError) and issubclass(StateError, RuntimeError)


def test_non_whole_output_size_shows_arithmetic_and_fixes():
    conv = Conv2d(3, 16, kernel_size=3, stride=2, rng=rng())
    expected = (
        r"^Conv2d\(3, 16, kernel_size=3, stride=2\): \(10 - 3 \+ 2\*0\)/2 \+ 1 = 4\.5 is not a "
        r"whole number; use stride=1 \(-> 8\) or kernel_size=2 \(-> 5\), or pass "
        r"rounding='floor' \(-> 4, never reads the last 1 row and column, as PyTorch does\)$"
    )
    with pytest.raises(ShapeError, match=expected):
        conv.forward(images(1, 3, 10, 10))
    with pytest.raises(ShapeError, match=expected):
        conv.output_shape((1, 3, 10, 10))


def test_floor_rounding_accepts_what_strict_refuses():
    conv = Conv2d(3, 16, kernel_size=3, stride=2, rng=rng(), rounding="floor")
    assert conv.forward(images(1, 3, 10, 10)).shape == (1, 16, 4, 4)


def test_error_inside_sequential_names_the_layer_index():
    model = Sequential(
        Conv2d(1, 8, 3, rng=rng()), ReLU(), MaxPool2d(2), Conv2d(8, 16, 3, stride=2, rng=rng())
    )
    match = r"^layer 3 Conv2d\(8, 16, kernel_size=3, stride=2\): \(10 - 3 \+ 2\*0\)/2 \+ 1 = 4\.5"
    with pytest.raises(ShapeError, match=match):
        model.forward(images(1, 1, 22, 22))
    with pytest.raises(ShapeError, match=match):
        model.output_shape((1, 1, 22, 22))


def test_nested_sequential_gives_a_dotted_location():
    inner = Sequential(ReLU(), Conv2d(2, 2, 3, rng=rng()))
    with pytest.raises(ShapeError, match=r"^layer 1\.1 Conv2d\(2, 2, kernel_size=3\): expected 2"):
        Sequential(ReLU(), inner).forward(images(1, 3, 5, 5))


def test_filter_larger_than_padded_input():
    with pytest.raises(
        ShapeError,
        match=r"^Conv2d\(3, 8, kernel_size=11\): the 11-wide filter is larger than the padded "
        r"input \(8 \+ 2\*0 = 8\); use padding=2 \(-> 2\) or kernel_size=8 \(-> 1\)$",
    ):
        Conv2d(3, 8, 11, rng=rng()).forward(images(1, 3, 8, 8))


def test_pooling_window_larger_than_input():
    with pytest.raises(ShapeError, match=r"^MaxPool2d\(kernel_size=4\): height: the 4-wide window"):
        MaxPool2d(4).forward(images(1, 1, 3, 8))


def test_channel_mismatch():
    with pytest.raises(
        ShapeError,
        match=r"^Conv2d\(3, 8, kernel_size=3\): expected 3 input channels \(N, 3, H, W\), got 1 "
        r"channels in shape \(2, 1, 28, 28\); use Conv2d\(1, 8, \.\.\.\) or feed 3-channel input$",
    ):
        Conv2d(3, 8, 3, rng=rng()).forward(images(2, 1, 28, 28))


def test_missing_batch_axis():
    with pytest.raises(
        ShapeError,
        match=r"^Conv2d\(3, 8, kernel_size=3\): expected a 4-D input \(N, C, H, W\), got a 3-D "
        r"array of shape \(3, 28, 28\); add a batch axis with x\[None\]$",
    ):
        Conv2d(3, 8, 3, rng=rng()).forward(images(3, 28, 28))
    with pytest.raises(ShapeError, match=r"^MaxPool2d\(kernel_size=2\): expected a 4-D input"):
        MaxPool2d(2).forward(images(3, 28))


def test_integer_images_are_refused():
    with pytest.raises(
        DTypeError,
        match=r"^Conv2d\(1, 8, kernel_size=3\): expected a floating-point input \(float32 or "
        r"float64\), got uint8; convert with x\.astype\(np\.float32\)",
    ):
        Conv2d(1, 8, 3, rng=rng()).forward(np.zeros((1, 1, 8, 8), np.uint8))
    with pytest.raises(DTypeError, match=r"^ReLU\(\): expected a floating-point array, got int64"):
        ReLU().forward(np.zeros(3, np.int64))


def test_lists_are_refused_with_a_conversion_hint():
    with pytest.raises(DTypeError, match=r"expected an array \(N, C, H, W\), got list; convert"):
        Conv2d(1, 8, 3, rng=rng()).forward([[[[0.0]]]])


def test_dtype_mismatch_is_never_converted_silently():
    with pytest.raises(
        DTypeError,
        match=r"^Conv2d\(1, 8, kernel_size=3\): input is float64 but the layer's parameters are "
        r"float32; convert with x\.astype\(np\.float32\) or build the layer with "
        r"dtype=np\.float64$",
    ):
        Conv2d(1, 8, 3, rng=rng()).forward(np.zeros((1, 1, 8, 8)))
    with pytest.raises(DTypeError, match=r"^Linear\(4, 2\): input is float64"):
        Linear(4, 2, rng=rng()).forward(np.zeros((1, 4)))


def test_linear_in_features_mismatch():
    with pytest.raises(
        ShapeError,
        match=r"^Linear\(400, 10\): expected 400 input features \(N, 400\), got 256 in shape "
        r"\(64, 256\); use Linear\(256, 10\)$",
    ):
        Linear(400, 10, rng=rng()).forward(images(64, 256))


def test_linear_on_a_volume_asks_for_flatten():
    model = Sequential(Conv2d(1, 2, 3, rng=rng()), Linear(8, 10, rng=rng()))
    with pytest.raises(
        ShapeError, match=r"^layer 1 Linear\(8, 10\): .*insert Flatten\(\) before it"
    ):
        model.forward(images(1, 1, 4, 4))
    with pytest.raises(
        ShapeError, match=r"^layer 1 Linear\(8, 10\): .*insert Flatten\(\) before it"
    ):
        model.output_shape((1, 1, 4, 4))


@pytest.mark.parametrize(
    "layer",
    [
        Conv2d(1, 2, 3, rng=np.random.default_rng(0)),
        MaxPool2d(2),
        AvgPool2d(2),
        ReLU(),
        Flatten(),
        Linear(2, 2, rng=np.random.default_rng(0)),
        Sequential(ReLU()),
    ],
    ids=repr,
)
def test_backward_before_forward(layer):
    with pytest.raises(RuntimeError, match=r"backward\(\) was called before forward\(\); call"):
        layer.backward(images(1, 2, 2, 2))


def test_loss_backward_before_forward():
    with pytest.raises(StateError, match=r"^CrossEntropyLoss\(\): backward\(\) was called before"):
        CrossEntropyLoss().backward()


def test_backward_with_wrong_gradient_shape():
    conv = Conv2d(1, 2, 3, rng=rng())
    conv.forward(images(1, 1, 5, 5))
    with pytest.raises(
        ShapeError,
        match=r"^Conv2d\(1, 2, kernel_size=3\): backward expected dy of shape \(1, 2, 3, 3\) "
        r"\(the forward output\), got \(1, 2, 5, 5\)$",
    ):
        conv.backward(images(1, 2, 5, 5))


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: Conv2d(3, 8, 3, stride=0), ConfigError, r"^Conv2d: stride must be >= 1, got 0$"),
        (lambda: Conv2d(3, 8, 0), ConfigError, r"^Conv2d: kernel_size must be >= 1, got 0$"),
        (lambda: Conv2d(3, 8, 3, padding=-1), ConfigError, r"^Conv2d: padding must be >= 0"),
        (lambda: Conv2d(0, 8, 3), ConfigError, r"^Conv2d: in_channels must be >= 1, got 0$"),
        (lambda: Conv2d(3, 8, 2.5), DTypeError, r"^Conv2d: kernel_size must be an int, got 2\.5$"),
        (lambda: Conv2d(3, 8, True), DTypeError, r"^Conv2d: kernel_size must be an int, got True"),
        (lambda: Conv2d(3, 8, (3, 3, 3)), ConfigError, r"must be an int or an \(h, w\) pair"),
        (
            lambda: Conv2d(3, 8, 3, stride=2, padding="same"),
            ConfigError,
            r"^Conv2d: padding='same' needs stride=1, got stride=2; use an explicit padding",
        ),
        (lambda: Conv2d(3, 8, 3, padding="full"), ConfigError, r"'same' or 'valid', got 'full'$"),
        (lambda: Conv2d(3, 8, 3, rounding="ceil"), ConfigError, r"^Conv2d: rounding must be"),
        (
            lambda: Conv2d(3, 8, 3, rng=42),
            DTypeError,
            r"^Conv2d: rng must be a numpy\.random\.Generator or None, got int; "
            r"use rng=np\.random\.default_rng\(42\)$",
        ),
        (lambda: Conv2d(3, 8, 3, dtype=np.int32), DTypeError, r"dtype must be float32 or float64"),
        (lambda: Linear(0, 2), ConfigError, r"^Linear: in_features must be >= 1, got 0$"),
        (
            lambda: MaxPool2d(2, padding=2),
            ConfigError,
            r"^MaxPool2d\(kernel_size=2\): padding must be at most half the window \(2//2 = 1\)",
        ),
        (lambda: AvgPool2d(2, stride=0), ConfigError, r"^AvgPool2d: stride must be >= 1, got 0$"),
        (lambda: Sequential(ReLU(), "relu"), ConfigError, r"^Sequential: item 1 is str, not a"),
        (lambda: SGD([], lr=0.1), ConfigError, r"^SGD: got no parameters to optimise"),
    ],
)
def test_bad_hyperparameters(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_loss_target_errors():
    loss = CrossEntropyLoss()
    logits = np.zeros((2, 3), np.float32)
    with pytest.raises(
        ShapeError,
        match=r"^CrossEntropyLoss\(\): target 3 is outside the 3 classes \[0, 2\] of the logits; "
        r"check the labels or use Linear\(\.\.\., 4\)$",
    ):
        loss.forward(logits, np.array([0, 3]))
    with pytest.raises(DTypeError, match=r"targets must be an integer array of class indices"):
        loss.forward(logits, np.array([0.0, 1.0]))
    with pytest.raises(ShapeError, match=r"expected targets of shape \(2,\) to match logits"):
        loss.forward(logits, np.array([0, 1, 2]))
    with pytest.raises(ShapeError, match=r"expected logits of shape \(N, K\), got \(2, 3, 1\)"):
        loss.forward(np.zeros((2, 3, 1)), np.array([0, 1]))


def test_state_dict_from_another_architecture():
    model = Sequential(Linear(2, 2, rng=rng()))
    with pytest.raises(ShapeError, match=r"missing \['0\.bias'\].*another architecture"):
        model.load_state_dict({"0.weight": np.zeros((2, 2))})
    with pytest.raises(ShapeError, match=r"0\.weight has shape \(3, 2\), the model expects"):
        model.load_state_dict({"0.weight": np.zeros((3, 2)), "0.bias": np.zeros(2)})
