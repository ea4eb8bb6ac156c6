"""The fast engine's direct path (stride 1, few channels, compiled loops): which convolutions
take it, and its forward and backward against the reference engine on every layout, filter
shape, padding and dilation, with reuse, evaluation and a workspace that sees other sizes."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.functional import reference
from cnnkit.functional.fast import conv2d_backward, conv2d_forward, direct
from cnnkit.functional.fast.jit import jit_available, use_jit
from cnnkit.functional.fast.layout import NCHW, NHWC, Workspace, in_layout, layout_of

pytestmark = pytest.mark.skipif(not jit_available(), reason="the direct loops need numba")

CASES = {  # C, D, (KH, KW), padding, dilation, (H, W)
    "LeNet conv1": (1, 6, (5, 5), ((2, 2), (2, 2)), (1, 1), (20, 21)),
    "LeNet conv2": (6, 16, (5, 5), ((0, 0), (0, 0)), (1, 1), (10, 9)),
    "3x3 first layer": (3, 16, (3, 3), ((1, 1), (1, 1)), (1, 1), (9, 11)),
    "16 -> 16 uneven padding": (16, 16, (3, 3), ((0, 2), (2, 0)), (1, 1), (8, 9)),
    "dilated": (16, 32, (3, 3), ((2, 2), (2, 2)), (2, 2), (10, 10)),
    "2x4, dilation (1, 2)": (5, 7, (2, 4), ((1, 0), (2, 1)), (1, 2), (9, 10)),
    "1x1": (4, 3, (1, 1), ((0, 0), (0, 0)), (1, 1), (5, 6)),
    "3x3, filters and channels not by four": (7, 9, (3, 3), ((1, 1), (0, 2)), (1, 1), (6, 7)),
}
TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}


def _data(case, dtype, seed=0, batch=3, bias=True):
    c, d, kernel, padding, dilation, (h, w) = CASES[case]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c, h, w)).astype(dtype)
    weight = rng.standard_normal((d, c, *kernel)).astype(dtype)
    b = rng.standard_normal(d).astype(dtype) if bias else None
    return x, weight, b, dict(stride=(1, 1), padding=padding, dilation=dilation)


def _reference(x, weight, b, options, seed=1):
    y, cache = reference.conv2d_forward(x, weight, b, **options)
    dy = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    return dy, (y, *reference.conv2d_backward(dy, cache))


def _close(found, expected, dtype):
    for got, want in zip(found, expected, strict=True):
        if want is None:
            assert got is None
            continue
        scale = max(float(np.abs(want).max()), 1.0)
        assert float(np.abs(got - want).max()) <= TOLERANCE[dtype] * scale


@pytest.mark.parametrize("layout", [NCHW, NHWC])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES))
def test_direct_loops_give_the_reference_numbers(case, dtype, layout):
    """Every filter shape and dilation, though the engine sends only 3x3 ones here."""
    x, weight, b, options = _data(case, dtype)
    dy, expected = _reference(x, weight, b, options)
    sides = dict(padding=options["padding"], dilation=options["dilation"])
    y, cache = direct.conv2d_forward(
        in_layout(x, layout), weight, b, **sides, workspace=Workspace(), save=True
    )
    assert layout_of(y) == NCHW
    found = (y, *direct.conv2d_backward(in_layout(dy, NHWC), cache, workspace=Workspace()))
    _close(found, expected, dtype)


@pytest.mark.parametrize("case", ["3x3 first layer", "16 -> 16 uneven padding", "LeNet conv1"])
def test_the_engine_sends_small_3x3_layers_to_the_direct_loops(case):
    x, weight, b, options = _data(case, np.float32)
    dy, expected = _reference(x, weight, b, options)
    y, cache = conv2d_forward(x, weight, b, **options, workspace=Workspace())
    assert direct.is_direct(cache) and layout_of(y) == NCHW
    _close((y, *conv2d_backward(dy, cache)), expected, np.float32)


def test_without_bias_or_input_gradient():
    x, weight, _, options = _data("3x3 first layer", np.float64, bias=False)
    dy, (y_ref, _, dw_ref, _) = _reference(x, weight, None, options)
    y, cache = conv2d_forward(x, weight, None, **options)
    dx, dw, db = conv2d_backward(dy, cache, input_grad=False)
    assert dx is None and db is None
    _close((y, dw), (y_ref, dw_ref), np.float64)


def test_forwards_waiting_for_their_backwards_keep_their_own_planes():
    workspace = Workspace()
    runs = []
    for seed in (0, 1, 2):
        x, weight, b, options = _data("16 -> 16 uneven padding", np.float64, seed=seed)
        weight, b = _data("16 -> 16 uneven padding", np.float64)[1:3]  # one layer's parameters
        dy, expected = _reference(x, weight, b, options, seed=seed)
        runs.append((dy, expected, *conv2d_forward(x, weight, b, **options, workspace=workspace)))
    for dy, expected, y, cache in reversed(runs):
        _close((y, *conv2d_backward(dy, cache, workspace=workspace)), expected, np.float64)


def test_a_workspace_reused_for_sizes_with_equal_padded_areas():
    """10x12 and 12x10 inputs pad to planes of one area but other borders: no stale border."""
    workspace = Workspace()
    rng = np.random.default_rng(4)
    weight = rng.standard_normal((4, 2, 3, 3))
    options = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1))
    for shape in ((2, 2, 10, 12), (2, 2, 12, 10), (2, 2, 10, 12)):
        x = rng.standard_normal(shape)
        for save in (True, False):
            y, _ = conv2d_forward(x, weight, None, **options, workspace=workspace, save=save)
            np.testing.assert_allclose(y, reference.conv2d_forward(x, weight, None, **options)[0])


@pytest.mark.parametrize("save", [True, False])
def test_a_workspace_reused_for_paddings_with_equal_padded_sizes(save):
    """((0, 2), (0, 2)) and ((1, 1), (1, 1)) both pad 8x8 to 10x10, with other borders."""
    workspace = Workspace()
    rng = np.random.default_rng(5)
    weight = rng.standard_normal((4, 3, 3, 3))
    for sides in (((0, 2), (0, 2)), ((1, 1), (1, 1)), ((2, 0), (1, 1))):
        x = rng.standard_normal((1, 3, 8, 8))
        options = dict(stride=(1, 1), padding=sides, dilation=(1, 1))
        y, cache = conv2d_forward(x, weight, None, **options, workspace=workspace, save=save)
        del cache  # its planes may be lent again
        np.testing.assert_allclose(y, reference.conv2d_forward(x, weight, None, **options)[0])


def test_a_forked_child_runs_the_loops_serially(monkeypatch):
    from cnnkit.functional.fast import tuning

    monkeypatch.setattr(tuning, "PARALLEL_MIN_WORK", 0)  # small calls may go parallel here
    import os
    import time

    x, weight, b, options = _data("16 -> 16 uneven padding", np.float32)
    workspace = Workspace()
    for _ in range(20):  # past the timed calls: the parallel way may be the chosen one
        y, _ = conv2d_forward(x, weight, b, **options, workspace=workspace)
    pid = os.fork()
    if pid == 0:
        try:
            got, _ = conv2d_forward(x, weight, b, **options, workspace=workspace)
            os._exit(0 if np.array_equal(got, y) else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 60
    while not (found := os.waitpid(pid, os.WNOHANG))[0]:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            pytest.fail("the forked child did not finish")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(found[1]) == 0


def test_evaluation_forward_keeps_nothing():
    x, weight, b, options = _data("3x3 first layer", np.float32)
    y, cache = conv2d_forward(x, weight, b, **options, workspace=Workspace(), save=False)
    assert cache is None
    _close((y,), (reference.conv2d_forward(x, weight, b, **options)[0],), np.float32)


@pytest.mark.parametrize(
    "change",
    [
        "channels",
        "filters",
        "stride",
        "dilation",
        "5x5",
        "groups",
        "jit off",
        "int",
        "mixed",
        "tiny",
    ],
)
def test_what_stays_on_the_products(change):
    x, weight, b, options = _data("3x3 first layer", np.float32)
    groups = 1
    if change == "channels":
        x = np.zeros((2, direct.MAX_CHANNELS + 1, 6, 6), np.float32)
        weight = np.zeros((4, direct.MAX_CHANNELS + 1, 3, 3), np.float32)
    elif change == "filters":
        weight = np.zeros((direct.MAX_FILTERS + 1, 3, 3, 3), np.float32)
        b = None
    elif change == "stride":
        options["stride"] = (2, 1)
    elif change == "dilation":
        options["dilation"] = (1, 2)
    elif change == "tiny":  # 1 -> 4 filters on 8x8: 2,304 multiply-adds an image
        x, weight, b = x[:, :1, :8, :8], weight[:4, :1], b[:4]
    elif change == "5x5":
        weight = np.zeros((4, 3, 5, 5), np.float32)
    elif change == "groups":
        groups = 3
    elif change == "int":
        x = x.astype(np.int32)
    elif change == "mixed":
        weight = weight.astype(np.float64)
    with use_jit(change != "jit off"):
        assert not direct.applies(x, weight, b, options["stride"], options["dilation"], groups)
    assert direct.applies(*_data("3x3 first layer", np.float32)[:3], (1, 1), (1, 1), 1)


@pytest.mark.parametrize("path", ["direct", "depthwise"])
def test_serial_and_parallel_loops_give_the_same_numbers_bit_for_bit(path):
    from cnnkit.functional.fast import depthwise_kernels, direct_kernels

    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 6, 9, 8)).astype(np.float32)
    depth = 6 if path == "depthwise" else 10
    weight = rng.standard_normal((depth, 1 if path == "depthwise" else 6, 3, 3)).astype(np.float32)
    b = rng.standard_normal(depth).astype(np.float32)
    padding, dilation, stride = ((1, 1), (2, 0)), (1, 1), (1, 1)
    found = {}
    for parallel in (False, True):
        y = np.empty((5, depth, 9, 8), np.float32)
        dx = np.empty_like(x)
        planes = np.zeros((5, 6, 11 * 10), np.float32)
        dy = np.random.default_rng(6).standard_normal(y.shape).astype(np.float32)
        if path == "direct":
            direct_kernels.forward(x, weight, b, padding, dilation, y, planes, parallel)
            sums = direct_kernels.backward(
                planes, weight, dy, padding, dilation, x.shape, dx, parallel
            )
        else:
            options = (stride, padding, dilation)
            depthwise_kernels.forward(x, weight, b, *options, y, planes, parallel)
            sums = depthwise_kernels.backward(planes, weight, dy, *options, x.shape, dx, parallel)
        found[parallel] = (y, dx, *sums)
    for serial, parallel in zip(found[False], found[True], strict=True):
        np.testing.assert_array_equal(serial, parallel)


def test_layers_in_many_threads_give_what_one_thread_gives(monkeypatch):
    """Each thread's layer has its own workspace; only one parallel loop runs at a time, the
    others run serially, and every result is the same."""
    from concurrent.futures import ThreadPoolExecutor

    import cnnkit
    from cnnkit.functional.fast import tuning

    monkeypatch.setattr(tuning, "PARALLEL_MIN_WORK", 0)  # these small calls may go parallel

    rng = np.random.default_rng(8)
    batches = [rng.standard_normal((8, 16, 12, 12)).astype(np.float32) for _ in range(6)]
    grads = rng.standard_normal((8, 16, 12, 12)).astype(np.float32)

    def run(batch):
        layer = cnnkit.Conv2d(16, 16, 3, padding=1, rng=np.random.default_rng(9))
        out = [layer.forward(batch)]
        for _ in range(8):  # past the timed first calls: both ways run
            layer.forward(batch)
            out.append(layer.backward(grads))
        return out

    expected = [run(batch) for batch in batches]
    with ThreadPoolExecutor(4) as pool:
        for got, want in zip(pool.map(run, batches), expected, strict=True):
            for a, b in zip(got, want, strict=True):
                np.testing.assert_array_equal(a, b)
