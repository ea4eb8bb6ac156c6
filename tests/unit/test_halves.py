"""Batches split over two threads with BLAS on one (fast/halves.py): the im2col path gives the
reference numbers on every plan when it splits, and BLAS's thread count comes back."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.functional import reference
from cnnkit.functional.fast import conv2d_backward, conv2d_forward, halves
from cnnkit.functional.fast.layout import CNHW, NCHW, NHWC, Workspace, in_layout
from cnnkit.functional.fast.plan import COLUMNS, IMAGES, ROWS, ConvPlan

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> list[int]:
    return [c.get_num_threads() for c in halves._controllers()]


@pytest.fixture
def always_split(monkeypatch):
    monkeypatch.setattr(halves, "MIN_WORK", 0)
    with halves.one_blas_thread():
        if halves.split(4, 1) == [(0, 4)]:
            pytest.skip("BLAS runs on one thread here: the batch is never split")


CASES = {  # x shape, D, kernel, stride, padding, dilation
    "3x3 P=1": ((5, 8, 9, 9), 12, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    "5x5 S=2": ((4, 3, 13, 11), 7, (5, 5), (2, 2), ((2, 1), (0, 2)), (1, 1)),
    "dilated": ((3, 20, 10, 10), 6, (3, 3), (1, 1), ((2, 2), (2, 2)), (2, 2)),
}


PLANS = [  # order, source layout, output layout, images per chunk, keep columns, dx order/layout
    ConvPlan(ROWS, NHWC, NHWC, 1, False),
    ConvPlan(ROWS, NHWC, NCHW, 2, True),
    ConvPlan(COLUMNS, NCHW, NHWC, 2, False),
    ConvPlan(COLUMNS, CNHW, NCHW, 64, True),  # one product over the batch: never split
    ConvPlan(IMAGES, NCHW, NCHW, 1, True),
    ConvPlan(IMAGES, CNHW, NHWC, 2, False),
    ConvPlan(ROWS, NHWC, NHWC, 2, True, IMAGES, NCHW),
    ConvPlan(ROWS, NHWC, NHWC, 1, False, COLUMNS, NCHW),
]


@pytest.mark.parametrize("plan", PLANS, ids=range(len(PLANS)))
@pytest.mark.parametrize("case", list(CASES))
def test_split_batches_give_the_reference_numbers(case, plan, always_split):
    shape, depth, kernel, stride, padding, dilation = CASES[case]
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((depth, shape[1], *kernel))
    b = rng.standard_normal(depth)
    options = dict(stride=stride, padding=padding, dilation=dilation)
    y_ref, cache_ref = reference.conv2d_forward(x, w, b, **options)
    dy = rng.standard_normal(y_ref.shape)
    expected = (y_ref, *reference.conv2d_backward(dy, cache_ref))
    workspace = Workspace()
    for _ in range(2):  # the second time through reused scratch
        y, cache = conv2d_forward(x, w, b, **options, plan=plan, workspace=workspace)
        found = (y, *conv2d_backward(in_layout(dy, NHWC), cache, workspace=workspace))
        for got, want in zip(found, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_blas_threads_held_at_one_inside_and_restored_after():
    before = _blas_threads()
    with halves.one_blas_thread():
        with halves.one_blas_thread():
            assert set(_blas_threads()) <= {1}
        assert set(_blas_threads()) <= {1}
    assert _blas_threads() == before


@pytest.mark.parametrize("images", [0, 1])
def test_tiny_batches_stay_whole(images, always_split):
    with halves.one_blas_thread():
        assert halves.split(images, 1 << 30) == [(0, images)]


@pytest.mark.parametrize("failing", [0, 1])
def test_an_error_in_a_half_reaches_the_caller_and_blas_comes_back(failing, always_split):
    before = _blas_threads()

    def fails(first, last, slot):
        if slot == failing:
            raise ValueError(f"half {slot}")
        return slot

    with pytest.raises(ValueError, match=f"half {failing}"):
        with halves.one_blas_thread():
            halves.run(halves.split(4, 1), fails)
    assert _blas_threads() == before


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_splits_batches_on_its_own_second_thread(always_split):
    import os

    with halves.one_blas_thread():
        halves.run(halves.split(4, 1), lambda first, last, slot: slot)  # the pool exists
    pid = os.fork()
    if pid == 0:  # the child: its own second thread, its own lock
        try:
            with halves.one_blas_thread():
                found = halves.run(halves.split(4, 1), lambda first, last, slot: slot)
            os._exit(0 if found == [0, 1] else 1)
        except BaseException:
            os._exit(2)
    import time

    deadline = time.monotonic() + 60
    while True:  # a child that hangs must not hang the suite
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child did not finish within 60 s")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
