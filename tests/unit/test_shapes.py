"""shapes.py: the one home of (I - F + 2P)/S + 1."""

import pytest

from cnnkit import ConfigError, ShapeError, shapes


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "expected"),
    [(227, 11, 4, 0, 55), (32, 5, 1, 0, 28), (28, 5, 1, 2, 28), (8, 2, 2, 0, 4), (7, 7, 1, 0, 1)],
)
def test_output_size(size, kernel, stride, padding, expected):
    assert shapes.output_size(size, kernel, stride, padding) == expected


def test_asymmetric_padding_counts_both_sides():
    assert shapes.output_size(8, 4, 1, (1, 2)) == 8
    assert shapes.formula(8, 4, 1, (1, 2)) == "(8 - 4 + 1 + 2)/1 + 1"


def test_strict_refuses_with_arithmetic_and_fixes():
    with pytest.raises(
        ShapeError,
        match=r"^\(10 - 3 \+ 2\*0\)/2 \+ 1 = 4\.5 is not a whole number; use stride=1 \(-> 8\) "
        r"or kernel_size=2 \(-> 5\), or pass rounding='floor' \(-> 4, never reads the last 1 row",
    ):
        shapes.output_size(10, 3, stride=2)


def test_padding_fix_is_offered_when_padding_can_fix_it():
    with pytest.raises(ShapeError, match=r"use padding=1 \(-> 3\) or stride=3 \(-> 3\)"):
        shapes.output_size(10, 4, stride=4)


def test_every_offered_fix_really_is_feasible():
    for size in range(1, 20):
        for kernel in range(1, 8):
            for stride in range(1, 5):
                problem = shapes.axis_problem("height", size, kernel, stride, 0)
                if problem is None:
                    continue
                for fix in problem.fixes:
                    changed = {"kernel_size": "kernel", "stride": "stride", "padding": "padding"}
                    args = {"size": size, "kernel": kernel, "stride": stride, "padding": 0}
                    args[changed[fix.name]] = fix.value
                    assert shapes.output_size(**args) == fix.output


def test_floor_rounding_matches_pytorch_and_reports_dropped_rows():
    assert shapes.output_size(10, 3, stride=2, rounding="floor") == 4
    problem = shapes.axis_problem("height", 10, 4, 4, 0)
    assert (problem.floor_output, problem.dropped) == (2, 2)


def test_window_larger_than_padded_input():
    with pytest.raises(
        ShapeError,
        match=r"the 11-wide filter is larger than the padded input \(8 \+ 2\*0 = 8\); use",
    ):
        shapes.output_size(8, 11)
    with pytest.raises(ShapeError, match="larger than the padded input"):
        shapes.output_size(8, 11, rounding="floor")


def test_output_hw_reports_each_axis_when_they_differ():
    with pytest.raises(ShapeError, match=r"^Conv2d\(x\): width: \(12 - 3 \+ 2\*0\)/2 \+ 1 = 5\.5"):
        shapes.output_hw("Conv2d(x)", (11, 12), (3, 3), (1, 2), (0, 0))
    with pytest.raises(ShapeError, match="last 1 row and column"):
        shapes.output_hw("Conv2d(x)", (10, 10), (3, 3), (2, 2), (0, 0))


def test_problems_are_attached_for_tools():
    with pytest.raises(ShapeError) as caught:
        shapes.output_hw("Conv2d(x)", (10, 12), (3, 3), (2, 2), (0, 0))
    assert [p.axis for p in caught.value.problems] == ["height", "width"]
    assert caught.value.problems[0].exact == 4.5


def test_parameter_counts():
    assert shapes.conv_parameter_count(1, 6, (5, 5)) == 156
    assert shapes.conv_parameter_count(3, 8, (3, 3), bias=False) == 216
    assert shapes.unshared_parameter_count(1, 6, (5, 5), (28, 28)) == 28 * 28 * 156


# ---------------------------------------------------------------------------------------------
# The fix search answers by arithmetic: same answers as an exhaustive search, for any size


def _nearest(candidates, target):
    return min(candidates, key=lambda c: (abs(c - target), c)) if candidates else None


def _exhaustive_fixes(size, kernel, stride, padding, max_padding):
    """The fixes by trying every value, as the search did before it became arithmetic."""
    before, after = padding
    found = []
    if before == after:
        limit = max(before + stride, kernel) if max_padding is None else max_padding
        pads = [
            p
            for p in range(limit + 1)
            if p != before and size + 2 * p >= kernel and (size + 2 * p - kernel) % stride == 0
        ]
        found.append(("padding", _nearest(pads, before)))
    span = size + before + after - kernel
    if span > 0:
        strides = [s for s in range(1, span + 1) if s != stride and span % s == 0]
        found.append(("stride", _nearest(strides, stride)))
    padded = size + before + after
    kernels = [
        k
        for k in range(1, padded + 1)
        if k != kernel
        and (padded - k) % stride == 0
        and (max_padding is None or max(before, after) <= k // 2)
    ]
    found.append(("kernel_size", _nearest(kernels, kernel)))
    return [(name, value) for name, value in found if value is not None]


def test_fixes_match_an_exhaustive_search_on_small_sizes():
    checked = 0
    for size in range(1, 12):
        for kernel in range(1, 12):
            for stride in range(1, 6):
                for sides in [(0, 0), (1, 1), (2, 2), (1, 2), (3, 0)]:
                    for limit in (None, kernel // 2):
                        problem = shapes.axis_problem(
                            "size", size, kernel, stride, sides, max_padding=limit
                        )
                        if problem is None:
                            continue
                        found = [(fix.name, fix.value) for fix in problem.fixes]
                        assert found == _exhaustive_fixes(size, kernel, stride, sides, limit)
                        checked += 1
    assert checked > 2500  # refusals only: rounding down that loses no input is accepted


def test_solutions_match_an_exhaustive_search():
    for size in range(1, 30):
        for output in range(1, 30):
            for max_kernel, max_stride in [(11, 4), (3, 1), (20, 7)]:
                expected = [  # what strict accepts: whole, or rounding down losing no input
                    (k, s, p)
                    for k in range(1, max_kernel + 1)
                    for s in range(1, min(k, max_stride) + 1)
                    for p in range(k // 2 + 1)
                    if shapes.axis_problem("size", size, k, s, p) is None
                    and (size + 2 * p - k) // s + 1 == output
                ]
                found = shapes.solutions(size, output, max_kernel=max_kernel, max_stride=max_stride)
                assert [(s.kernel, s.stride, s.padding) for s in found] == expected


HUGE = [10**9, 10**12, 2**62]


@pytest.fixture
def no_hang():
    """Fail instead of hanging if a search enumerates again (a guard, not a timing target)."""
    import signal

    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def stop(signum, frame):
        raise AssertionError("the search did not finish within 60 s: it enumerates")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("huge", HUGE)
@pytest.mark.parametrize("which", ["size", "kernel", "stride", "padding"])
def test_huge_sizes_get_feasible_fixes(huge, which, no_hang):
    # Each refused because rounding down would lose real input (every HUGE is even):
    args = {
        "size": {"size": huge, "kernel": 3, "stride": 2, "padding": 0},  # row I - 1 lost
        "kernel": {"size": 10, "kernel": huge, "stride": 2, "padding": 0},  # too large
        # a second window would start in the input: S skips 0 of its last 2 rows
        "stride": {"size": huge + 2, "kernel": 3, "stride": huge, "padding": 0},
        # r = I + P - F + P = P + 2 rows left over, only P of them padding, no gap (S = F)
        "padding": {"size": 10, "kernel": huge + 8, "stride": huge + 8, "padding": huge},
    }[which]
    problem = shapes.axis_problem(
        "size", args["size"], args["kernel"], args["stride"], args["padding"]
    )
    assert problem is not None and problem.fixes
    names = {"kernel_size": "kernel", "stride": "stride", "padding": "padding"}
    for fix in problem.fixes:
        changed = {**args, names[fix.name]: fix.value}
        assert shapes.output_size(**changed) == fix.output


def test_a_huge_stride_fix_is_the_nearest_divisor(no_hang):
    span = (2**31 - 1) * (2**32 - 5)  # two primes: the search must factor, not enumerate
    kernel = 2**31 + 1007  # wider than the stride: no gap, so the leftover rows are lost
    problem = shapes.axis_problem("size", span + kernel, kernel, 2**31 + 7, 0)
    assert {fix.name: fix.value for fix in problem.fixes}["stride"] == 2**31 - 1


def test_huge_layers_fail_with_one_shape_error_and_exact_arithmetic(no_hang):
    import numpy as np

    from cnnkit import Conv2d, MaxPool2d

    x = np.zeros((1, 1, 8, 8), np.float32)
    with pytest.raises(
        ShapeError,
        match=r"^MaxPool2d\(kernel_size=1000000000\): the 1000000000-wide window is larger than "
        r"the padded input \(8 \+ 2\*0 = 8\); use padding=499999996 \(-> 1\) or kernel_size=8",
    ):
        MaxPool2d(10**9).forward(x)
    # One window, and the stride skips the rest anyway: accepted, with the exact arithmetic.
    pool = MaxPool2d(3, stride=2**62)
    assert pool.forward(x).shape == (1, 1, 1, 1)
    assert pool.window.formula((8, 8), (1, 1)) == (
        "(8 - 3 + 2*0)/4611686018427387904 + 1 = 1 + 5/4611686018427387904 -> 1"
    )
    conv = Conv2d(1, 1, 3, stride=2**62)
    assert conv.output_shape(x.shape) == (1, 1, 1, 1)
    with pytest.raises(  # a second window would start in the input: its rows would be lost
        ShapeError,
        match=r"height: \(4611686018427387906 - 3 \+ 2\*0\)/4611686018427387904 \+ 1 = "
        r"1 \+ 4611686018427387903/4611686018427387904 is not a whole number; use stride=",
    ):
        conv.output_shape((1, 1, 2**62 + 2, 8))


def test_exact_text_never_shows_a_fraction_as_whole():
    assert shapes.exact_text(7, 2) == "4.5"
    assert shapes.exact_text(5, 10**12) == "1 + 5/1000000000000"
    assert shapes.exact_text(10**12, 10**12) == "2"


def test_solutions_refuse_to_list_more_than_their_limit(no_hang):
    message = (
        r"^solutions\(I=10, O=5, max_kernel=1000000000000, max_stride=4\): more than 100,000 "
        r"ways \(F, S, P\); give a smaller max_kernel \(cnnkit shape: a smaller --filter\)$"
    )
    with pytest.raises(ConfigError, match=message):
        shapes.solutions(10, 5, max_kernel=10**12)
    found = shapes.solutions(10**12, 5, max_kernel=10**12)
    assert [(s.stride, s.padding) for s in found if s.kernel == 10**12] == [
        (1, 2),
        (2, 4),
        (3, 6),
        (3, 7),  # (I - F + 14)/3 + 1 = 5.67 -> 5: the last 2 rows, both padding, unread
        (4, 8),
        (4, 9),
    ]


def test_the_cli_answers_huge_sizes_without_hanging():
    """A guard against enumeration: each command must finish, in one process, within minutes
    where the exhaustive search took hours (no timing target)."""
    import subprocess
    import sys

    commands = [
        ["shape", "-I", "10", "-F", "3", "-S", str(10**9)],  # possible: one window
        ["shape", "-I", str(10**9 + 2), "-F", "3", "-S", str(10**9)],
        ["shape", "-I", str(10**12), "-F", "3", "-S", "2"],
        ["shape", "-I", str(2**62), "-F", "3", "-S", "2", "-P", str(2**62)],  # only padding
        ["shape", "-I", str(10**12), "--output", "5", "-F", str(10**12)],
        ["shape", "-I", "10", "--output", "5", "-F", str(10**12)],
        ["explain", "shape", str(10**12), "3", "2"],
    ]
    script = (
        "import sys, json; from cnnkit import cli\n"
        f"print(json.dumps([cli.main(c) for c in {commands!r}]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[0, 1, 1, 0, 0, 0, 1]"
    assert "Traceback" not in done.stderr
    assert "S=1 (-> 999999999998) or F=2 (-> 500000000000)" in done.stdout
    assert "F=1000000000000 S=1 P=499999999997" in done.stdout  # the given F, solved for
