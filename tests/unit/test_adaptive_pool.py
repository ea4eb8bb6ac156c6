"""AdaptiveAvgPool2d (GAP): PyTorch's windows and numbers on both engines, strings, errors."""

import numpy as np
import pytest

import cnnkit
from cnnkit import ShapeError
from cnnkit.functional.reference import adaptive_windows

torch = pytest.importorskip("torch")


def test_windows_are_pytorchs_and_overlap_where_the_output_does_not_divide():
    assert adaptive_windows(7, 3) == [(0, 3), (2, 5), (4, 7)]
    assert adaptive_windows(5, 2) == [(0, 3), (2, 5)]
    assert adaptive_windows(8, 4) == [(0, 2), (2, 4), (4, 6), (6, 8)]


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("size", "output"), [((7, 5), (3, 2)), ((8, 8), 1), ((6, 9), (6, 4)), ((5, 5), (2, 5))]
)
def test_forward_and_backward_match_pytorch(size, output, dtype, engine):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, *size)).astype(dtype)
    layer = cnnkit.AdaptiveAvgPool2d(output)
    with cnnkit.use_engine(engine):
        y = layer.forward(x)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.AdaptiveAvgPool2d(output)(tx)
    ty.backward(torch.tensor(dy))
    tolerance = 1e-6 if dtype == np.float32 else 1e-12
    assert y.shape == tuple(ty.shape) and y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=tolerance, atol=tolerance)


def test_gap_in_a_string_flattens_before_fc_and_round_trips():
    text = "INPUT(3x7x5) - CONV(D=4, F=3, S=1, P=1) - RELU - GAP - FC(10)"
    model = cnnkit.from_spec(text, rng=np.random.default_rng(0))
    assert model.to_spec() == text
    assert model.forward(np.ones((2, 3, 7, 5), np.float32)).shape == (2, 10)
    assert cnnkit.from_spec("INPUT(3x7x5) - GAP(out=3x2)").to_spec() == (
        "INPUT(3x7x5) - GAP(out=3x2)"
    )
    assert repr(cnnkit.AdaptiveAvgPool2d((3, 2))) == "AdaptiveAvgPool2d((3, 2))"
    row = model.summary().rows[2]
    assert (row.layer, row.output) == ("GAP", "1x1x4")
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 5))
    model64 = cnnkit.from_spec(text, rng=np.random.default_rng(0), dtype=np.float64)
    assert cnnkit.gradcheck(model64, x).ok


def test_an_output_larger_than_the_input_or_a_bad_size_is_refused():
    with pytest.raises(ShapeError, match=r"an output of 4x4 from an input of 3x3"):
        cnnkit.AdaptiveAvgPool2d(4).forward(np.ones((1, 1, 3, 3), np.float32))
    with pytest.raises(ShapeError, match=r"^AdaptiveAvgPool2d: output_size must be"):
        cnnkit.AdaptiveAvgPool2d(0)
