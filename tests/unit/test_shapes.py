"""shapes.py: the one home of (I - F + 2P)/S + 1."""

import pytest

from cnnkit import ShapeError, shapes


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
