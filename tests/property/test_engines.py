"""The fast engine against the reference engine, on random shapes, strides, paddings, dtypes and
memory layouts: the same outputs and every gradient (up to float rounding)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnkit
from cnnkit.functional.fast.layout import CNHW, NCHW, NHWC, in_layout

SETTINGS = settings(max_examples=60, deadline=None)
TOLERANCE = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-11)}


def _on(engine: str, layer, x, dy):
    """(y, dx, {name: grad}) of one forward and backward on ``engine``."""
    layer.zero_grad()
    with cnnkit.use_engine(engine):
        y = np.array(layer.forward(x))
        dx = np.array(layer.backward(dy))
    return y, dx, {name: p.grad.copy() for name, p in layer.named_parameters()}


def _agree(layer, x, seed: int) -> None:
    shape = layer.output_shape(x.shape)
    dy = np.random.default_rng(seed).standard_normal(shape).astype(x.dtype)
    fast = _on("fast", layer, x, dy)
    slow = _on("reference", layer, x, dy)
    tolerance = TOLERANCE[x.dtype.type]
    for name, a, b in (("y", fast[0], slow[0]), ("dx", fast[1], slow[1])):
        np.testing.assert_allclose(a, b, err_msg=f"{name} of {layer!r}", **tolerance)
    for name in slow[2]:
        scale = max(1.0, float(np.abs(slow[2][name]).max()))
        np.testing.assert_allclose(
            fast[2][name],
            slow[2][name],
            rtol=tolerance["rtol"],
            atol=tolerance["atol"] * scale,
            err_msg=f"{name}.grad of {layer!r}",
        )


LAYOUTS = st.sampled_from([NCHW, NHWC, CNHW])
DTYPES = st.sampled_from([np.float32, np.float64])


@st.composite
def convs(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    same = draw(st.booleans()) and (sh, sw) == (1, 1)
    padding = "same" if same else (draw(st.integers(0, kh)), draw(st.integers(0, kw)))
    h = draw(st.integers(max(1, kh - (0 if same else 2 * padding[0])), 12))
    w = draw(st.integers(max(1, kw - (0 if same else 2 * padding[1])), 12))
    return dict(
        n=draw(st.integers(0, 4)),
        c=draw(st.integers(1, 10)),
        h=h,
        w=w,
        d=draw(st.sampled_from([1, 3, 16, 33])),
        kernel=(kh, kw),
        stride=(sh, sw),
        padding=padding,
        bias=draw(st.booleans()),
        dtype=draw(DTYPES),
        layout=draw(LAYOUTS),
        seed=draw(st.integers(0, 2**16)),
    )


@SETTINGS
@given(cfg=convs())
def test_conv2d_fast_equals_reference(cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer = cnnkit.Conv2d(
        cfg["c"],
        cfg["d"],
        cfg["kernel"],
        stride=cfg["stride"],
        padding=cfg["padding"],
        bias=cfg["bias"],
        dtype=cfg["dtype"],
        rng=rng,
        rounding="floor",
    )
    x = rng.standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"])).astype(cfg["dtype"])
    _agree(layer, in_layout(x, cfg["layout"]), cfg["seed"] + 1)


@st.composite
def pools(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    return dict(
        kind=draw(st.sampled_from(["max", "avg"])),
        n=draw(st.integers(1, 3)),
        c=draw(st.integers(1, 6)),
        h=draw(st.integers(kh, 12)),
        w=draw(st.integers(kw, 12)),
        kernel=(kh, kw),
        stride=stride,
        padding=padding,
        ties=draw(st.booleans()),
        dtype=draw(DTYPES),
        layout=draw(LAYOUTS),
        seed=draw(st.integers(0, 2**16)),
    )


@SETTINGS
@given(cfg=pools())
def test_pools_fast_equal_reference(cfg):
    cls = cnnkit.MaxPool2d if cfg["kind"] == "max" else cnnkit.AvgPool2d
    layer = cls(cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"], rounding="floor")
    rng = np.random.default_rng(cfg["seed"])
    shape = (cfg["n"], cfg["c"], cfg["h"], cfg["w"])
    x = rng.integers(0, 3, shape) if cfg["ties"] else rng.standard_normal(shape)
    _agree(layer, in_layout(x.astype(cfg["dtype"]), cfg["layout"]), cfg["seed"] + 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_nan_and_relu_nan_follow_the_same_rule(dtype):
    x = np.arange(2 * 3 * 6 * 6, dtype=dtype).reshape(2, 3, 6, 6)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan
    x[1, 2, 4:, 4:] = np.nan
    for layer in (cnnkit.MaxPool2d(2), cnnkit.MaxPool2d(3, 2, 1, rounding="floor"), cnnkit.ReLU()):
        shape = layer.output_shape(x.shape)
        dy = np.random.default_rng(0).standard_normal(shape).astype(dtype)
        fast, slow = _on("fast", layer, x, dy), _on("reference", layer, x, dy)
        np.testing.assert_array_equal(fast[0], slow[0])
        np.testing.assert_array_equal(fast[1], slow[1])


@SETTINGS
@given(
    n=st.integers(0, 5),
    features=st.integers(1, 20),
    out=st.integers(1, 8),
    bias=st.booleans(),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_linear_and_relu_fast_equal_reference(n, features, out, bias, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(dtype)
    _agree(cnnkit.Linear(features, out, bias=bias, dtype=dtype, rng=rng), x, seed)
    _agree(cnnkit.ReLU(), rng.standard_normal((n, 2, 3, features)).astype(dtype), seed)


def test_a_training_run_is_the_same_on_both_engines():
    data = cnnkit.load_dataset("optdigits")
    small = data.train_images[:256], data.train_labels[:256]
    histories = {}
    for engine in ("fast", "reference"):
        model = cnnkit.lecture_network((1, 8, 8), 10, rng=np.random.default_rng(0))
        optimizer = cnnkit.SGD(model.parameters(), lr=0.05, momentum=0.9)
        loss_fn = cnnkit.CrossEntropyLoss()
        losses = []
        with cnnkit.use_engine(engine):
            for start in range(0, 256, 32):
                images, labels = small[0][start : start + 32], small[1][start : start + 32]
                losses.append(loss_fn.forward(model.forward(images), labels))
                optimizer.zero_grad()
                model.backward(loss_fn.backward(), input_grad=False)
                optimizer.step()
        histories[engine] = (losses, model.state_dict())
    np.testing.assert_allclose(histories["fast"][0], histories["reference"][0], rtol=1e-4)
    for name, value in histories["fast"][1].items():
        np.testing.assert_allclose(value, histories["reference"][1][name], rtol=1e-3, atol=1e-5)


def test_backward_runs_on_the_engine_its_forward_ran_on():
    layer = cnnkit.Conv2d(2, 3, 3, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 5)).astype(np.float32)
    with cnnkit.use_engine("reference"):
        y = layer.forward(x)
    dx = layer.backward(np.ones_like(y))  # the fast engine is selected again: no mix-up
    layer.zero_grad()
    with cnnkit.use_engine("reference"):
        layer.forward(x)
        expected = layer.backward(np.ones_like(y))
    np.testing.assert_allclose(dx, expected, rtol=1e-6)
