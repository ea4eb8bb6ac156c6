"""The pooling engine's internal paths: memory layouts, the compiled 2x2 kernels against NumPy,
ties, NaN and non-finite gradients, and the ReLU and ``input_grad=False`` shortcuts.

The differential tests feed NCHW arrays; here every path gets channels-last and channel-major
inputs too, and the numba kernels (where installed) must give exactly what NumPy gives.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import avg_pool_reference, max_pool_reference

import cnnkit
from cnnkit.functional.fast import jit as fastjit
from cnnkit.functional.fast import pool_kernels
from cnnkit.functional.fast.activation import relu_backward, relu_forward
from cnnkit.functional.fast.layout import CNHW, NCHW, NHWC, in_layout, layout_of
from cnnkit.functional.fast.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    max_pool_kept_bytes,
)

torch = pytest.importorskip("torch")

LAYOUTS = [NCHW, NHWC, CNHW]
JIT = [
    pytest.param(False, id="numpy"),
    pytest.param(
        True,
        id="numba",
        marks=pytest.mark.skipif(not fastjit.jit_available(), reason="numba not installed"),
    ),
]
# (shape, kernel, stride, padding): the 2x2 case the kernels take (large enough for them and
# for their parallel loops) and the general NumPy path (overlap, padding, floor leftovers).
CASES = {
    "2x2": ((3, 8, 16, 12), (2, 2), (2, 2), ((0, 0), (0, 0))),
    "2x2-parallel": ((4, 64, 64, 64), (2, 2), (2, 2), ((0, 0), (0, 0))),
    "2x2-odd-output": ((16, 16, 10, 10), (2, 2), (2, 2), ((0, 0), (0, 0))),  # LeNet's pool2
    "3x3-s2-pad1": ((2, 3, 9, 8), (3, 3), (2, 2), ((1, 1), (1, 1))),
    "3x2-s1": ((2, 3, 6, 7), (3, 2), (1, 1), ((0, 0), (0, 0))),
    "2x2-floor": ((2, 3, 7, 9), (2, 2), (2, 2), ((0, 0), (0, 0))),
}


def _torch_pool(kind, x, kernel, stride, padding, dy):
    tx = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).requires_grad_()
    pad = (padding[0][0], padding[1][0])
    if kind == "max":
        ty = torch.nn.functional.max_pool2d(tx, kernel, stride, pad)
    else:
        ty = torch.nn.functional.avg_pool2d(tx, kernel, stride, pad, count_include_pad=True)
    ty.backward(torch.from_numpy(np.ascontiguousarray(dy, dtype=np.float64)))
    return ty.detach().numpy(), tx.grad.numpy()


def _run(kind, x, kernel, stride, padding, dy):
    forward = max_pool2d_forward if kind == "max" else avg_pool2d_forward
    backward = max_pool2d_backward if kind == "max" else avg_pool2d_backward
    y, cache = forward(x, kernel=kernel, stride=stride, padding=padding)
    return y, cache, backward(in_layout(dy, layout_of(y) or NCHW), cache)


@pytest.mark.parametrize("jit", JIT)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pools_match_torch_in_every_layout(kind, case, layout, jit):
    shape, kernel, stride, padding = CASES[case]
    rng = np.random.default_rng(0)
    x = (rng.permutation(np.prod(shape)).reshape(shape) / np.prod(shape)).astype(np.float32)
    oracle = max_pool_reference if kind == "max" else avg_pool_reference
    expected = oracle(x, kernel, stride, (padding[0][0], padding[1][0]))
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    with fastjit.use_jit(jit):
        y, _, dx = _run(kind, in_layout(x, layout), kernel, stride, padding, dy)
    y_torch, dx_torch = _torch_pool(kind, x, kernel, stride, padding, dy)
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(y, y_torch, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dx, dx_torch, rtol=1e-6, atol=1e-7)
    assert y.dtype == dx.dtype == np.float32 and dx.shape == x.shape


@pytest.mark.skipif(not fastjit.jit_available(), reason="numba not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", ["2x2", "2x2-parallel", "2x2-odd-output"])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_compiled_kernels_give_exactly_what_numpy_gives(kind, case, layout, dtype):
    shape, kernel, stride, padding = CASES[case]
    rng = np.random.default_rng(1)
    x = in_layout(np.maximum(rng.standard_normal(shape), 0).round(1).astype(dtype), layout)
    dy = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2)).astype(dtype)
    results = {}
    for jit in (False, True):
        with fastjit.use_jit(jit):
            results[jit] = _run(kind, x, kernel, stride, padding, dy)
    (y0, cache0, dx0), (y1, cache1, dx1) = results[False], results[True]
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(dx1, dx0)
    assert y1.dtype == y0.dtype and dx1.dtype == dx0.dtype
    if kind == "max":
        np.testing.assert_array_equal(cache1.rows, cache0.rows)
        np.testing.assert_array_equal(cache1.columns, cache0.columns)
    if case == "2x2":
        return  # too small for the loops: NumPy both times
    dy = in_layout(dy, layout)  # as the next layer hands it back
    with fastjit.use_jit(True):  # the loops run, forward and backward
        if kind == "max":
            assert pool_kernels.max_pool_2x2(x, kernel, stride, padding) is not None
            assert (
                pool_kernels.max_pool_2x2_backward(
                    dy, cache1.rows, cache1.columns, shape, kernel, stride, padding
                )
                is not None
            )
        else:
            assert pool_kernels.avg_pool_2x2(x, kernel, stride, padding) is not None
            assert (
                pool_kernels.avg_pool_2x2_backward(dy, shape, kernel, stride, padding) is not None
            )


@pytest.mark.parametrize("jit", JIT)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("kernel", "stride"), [((2, 2), (2, 2)), ((3, 3), (1, 1))])
def test_max_pool_ties_and_nan_follow_torch(kernel, stride, layout, jit):
    """After a ReLU most windows tie at 0: the first in row-major order wins; with NaN the last
    NaN wins and propagates, as in PyTorch."""
    rng = np.random.default_rng(2)
    x = np.maximum(rng.standard_normal((4, 16, 16, 16)), 0).round().astype(np.float32)
    x[0, 0, 0, 1] = x[1, 2, 5, 5] = np.nan
    padding = ((0, 0), (0, 0))
    out_hw = [(size - k) // s + 1 for size, k, s in zip(x.shape[2:], kernel, stride, strict=True)]
    dy = rng.standard_normal((*x.shape[:2], *out_hw)).astype(np.float32)
    y_torch, dx_torch = _torch_pool("max", x, kernel, stride, padding, dy)
    with fastjit.use_jit(jit):
        y, _, dx = _run("max", in_layout(x, layout), kernel, stride, padding, dy)
    np.testing.assert_array_equal(y, y_torch.astype(np.float32))
    np.testing.assert_allclose(dx, dx_torch, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("jit", JIT)
def test_non_finite_gradients_reach_only_the_winners(jit):
    x = np.arange(4 * 8 * 32 * 32, dtype=np.float32).reshape(4, 8, 32, 32) % 7
    dy = np.ones((4, 8, 16, 16), np.float32)
    dy[0, 0, 0, 0] = np.inf
    dy[1, 1, 1, 1] = np.nan
    with fastjit.use_jit(jit):
        _, _, dx = _run("max", x, (2, 2), (2, 2), ((0, 0), (0, 0)), dy)
    _, dx_torch = _torch_pool("max", x, (2, 2), (2, 2), ((0, 0), (0, 0)), dy)
    np.testing.assert_array_equal(dx, dx_torch.astype(np.float32))


def test_max_pool_cache_is_what_the_summary_counts():
    for case in CASES.values():
        shape, kernel, stride, padding = case
        x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
        y, cache = max_pool2d_forward(x, kernel=kernel, stride=stride, padding=padding)
        kept = sum(a.nbytes for a in (cache.rows, cache.columns) if a is not None)
        assert kept == shape[0] * max_pool_kept_bytes(shape[1], y.shape[2:], kernel, stride)


def test_relu_backward_keeps_pytorch_semantics_for_non_finite_gradients():
    x = np.array([-1.0, 0.0, 2.0, np.nan, -3.0], np.float32)
    _, mask = relu_forward(x)
    dy = np.array([np.inf, np.nan, 5.0, 1.0, -np.inf], np.float32)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    torch.relu(tx).backward(torch.from_numpy(dy.copy()))
    np.testing.assert_array_equal(relu_backward(dy, mask), tx.grad.numpy())
    np.testing.assert_array_equal(relu_backward(np.ones(5, np.float32), mask), [0, 0, 1, 1, 0])


@pytest.mark.parametrize("first", ["conv", "linear", "relu"])
def test_sequential_without_input_gradient_gives_the_same_parameter_gradients(first):
    rng = np.random.default_rng(4)
    head = {
        "conv": [cnnkit.Conv2d(1, 4, 3, padding=1, rng=rng, dtype=np.float64)],
        "linear": [cnnkit.Flatten(), cnnkit.Linear(64, 4 * 64, rng=rng, dtype=np.float64)],
        "relu": [cnnkit.ReLU(), cnnkit.Conv2d(1, 4, 3, padding=1, rng=rng, dtype=np.float64)],
    }[first]
    reshape = [] if first != "linear" else [_Unflatten((4, 8, 8))]
    model = cnnkit.Sequential(*head, *reshape, cnnkit.ReLU(), cnnkit.MaxPool2d(2))
    x = rng.standard_normal((3, 1, 8, 8))
    dy = rng.standard_normal(model.output_shape(x.shape))
    model.forward(x)
    dx = model.backward(dy)
    full = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model.forward(x)
    assert model.backward(dy, input_grad=False) is None
    for got, want in zip((p.grad for p in model.parameters()), full, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert dx.shape == x.shape


class _Unflatten(cnnkit.Layer):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)

    def backward(self, dy):
        return dy.reshape(dy.shape[0], -1)

    def output_shape(self, input_shape):
        return (input_shape[0], *self.shape)
