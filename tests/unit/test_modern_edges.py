"""Edges of the modern layers found by trying to break them: each gives one clear line."""

import subprocess
import sys

import numpy as np
import pytest

import cnnkit
from cnnkit import ConfigError, ShapeError
from cnnkit.explain import explain_equivariance


@pytest.mark.parametrize(
    "text",
    [
        "INPUT(1x8x8) - FC(10) - GAP",
        "INPUT(1x8x8) - FLATTEN - GAP",
        "INPUT(1x8x8) - FC(4) - RES[GAP]",
    ],
)
def test_gap_after_a_flat_layer_is_a_shape_error(text):
    with pytest.raises(ShapeError, match="expected a 4-D input"):
        cnnkit.from_spec(text)
    with pytest.raises(ShapeError, match="4-D"):
        cnnkit.AdaptiveAvgPool2d(1).output_shape((2, 10))


def test_floor_reaches_the_layers_inside_a_block():
    text = "INPUT(3x8x8) - RES[CONV(D=3, F=3, S=2) | CONV(D=3, F=3, S=2)]"
    with pytest.raises(ShapeError, match=r"3\.5 is not a whole number"):
        cnnkit.summarize(text)
    assert cnnkit.summarize(text, floor=True).rows[0].output == "3x3x3"


def test_a_negative_running_variance_is_refused_before_anything_is_loaded():
    model = cnnkit.from_spec("INPUT(1x4x4) - CONV(D=2, F=3) - BN - FC(2)")
    state = model.state_dict()
    state["1.running_var"][1] = -0.5
    state["0.weight"][...] = 7.0
    with pytest.raises(ShapeError, match=r"1\.running_var holds 1 negative variances"):
        model.load_state_dict(state)
    assert (model.state_dict()["1.running_var"] == 1).all()
    assert (model.state_dict()["0.weight"] != 7.0).all()  # nothing was loaded


def test_equivariance_is_measured_as_the_network_predicts():
    text = "INPUT(1x8x8) - CONV(D=2, F=3, P=1) - DROPOUT(p=0.5) - DROPOUT2D(p=0.5) - BN - RES[RELU]"
    explanation = explain_equivariance(text, shifts=2)
    for row in explanation.rows:
        for cell in row.cells:
            assert cell.error is None or cell.error < 1e-5, (row.layer, cell)


def test_a_network_cannot_contain_itself():
    outer = cnnkit.Sequential(cnnkit.ReLU())
    with pytest.raises(ConfigError, match="cannot contain itself"):
        outer.append(cnnkit.Residual(outer))
    assert len(outer) == 1


def test_batchnorm_takes_numpy_numbers_as_pytorch_does():
    layer = cnnkit.BatchNorm2d(2, eps=np.float32(1e-3), momentum=np.float64(0.2))
    assert layer.eps == pytest.approx(1e-3) and layer.momentum == pytest.approx(0.2)


def test_explain_backprop_residual_refuses_options_it_does_not_use():
    result = subprocess.run(
        [sys.executable, "-m", "cnnkit", "explain", "backprop", "--residual", "--filter", "5"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--filter do not apply" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_a_stride_past_the_input_leaves_one_window_on_both_engines(engine):
    conv = cnnkit.Conv2d(2, 3, 3, stride=(2**62, 1), padding=1, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 2, 8, 8)).astype(np.float32)
    with cnnkit.use_engine(engine):
        y = conv.forward(x)
        dx = conv.backward(np.ones_like(y))
    small = cnnkit.Conv2d(2, 3, 3, stride=(9, 1), padding=1)
    small.load_state_dict(conv.state_dict())
    np.testing.assert_allclose(y, small.forward(x), rtol=1e-6)
    np.testing.assert_allclose(dx, small.backward(np.ones_like(y)), rtol=1e-6)
    assert y.shape == (2, 3, 1, 8)


@pytest.mark.parametrize(
    ("argv", "needle", "code"),
    [
        (
            ["shape", "-I", "32", "-F", "3", "-P", "2", "--dilation", "2"],
            "(32 + 2*2 - 2*(3 - 1) - 1)/1 + 1 = 32",
            0,
        ),
        (
            ["shape", "-I", "10", "-F", "3", "-S", "2", "--dilation", "2"],
            "(10 + 2*0 - 2*(3 - 1) - 1)/2 + 1 = 3.5",
            1,
        ),
        (["shape", "-I", "8", "-F", "3", "-S", "2", "--ceil"], "ceil((8 - 3 + 2*0)/2) + 1 = 4", 0),
        (
            ["explain", "shape", "8", "3", "2", "0", "--ceil"],
            "ceil_mode adds a window at pixel 6",
            0,
        ),
        (["explain", "shape", "32", "3", "1", "2", "--dilation", "2"], "3-tap (5-wide) filter", 0),
        (["explain", "shape", "7", "3", "4", "0"], "the 1 pixel after each window is skipped", 0),
    ],
)
def test_shape_and_explain_shape_work_out_dilation_and_ceil(argv, needle, code):
    result = subprocess.run([sys.executable, "-m", "cnnkit", *argv], capture_output=True, text=True)
    assert result.returncode == code, result.stderr
    assert needle in result.stdout


def test_the_ceil_count_is_pytorchs():
    torch = pytest.importorskip("torch")
    for size, kernel, stride, padding in [(8, 3, 2, 0), (7, 3, 2, 1), (6, 2, 4, 1), (5, 3, 3, 1)]:
        ours = cnnkit.explain.explain_shape(size, kernel, stride, padding, ceil=True).output
        pool = torch.nn.MaxPool1d(kernel, stride, padding, ceil_mode=True)
        assert ours == pool(torch.zeros(1, 1, size)).shape[-1], (size, kernel, stride, padding)
