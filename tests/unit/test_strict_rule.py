"""The refined "strict" rule: a non-whole (I - F + 2P)/S + 1 is rounded down when that loses no
real input (only padding goes unread, or only rows in the gap a stride larger than the window
skips anyway), and refused, with its fixes, when a row of input that a further window would
read is lost. Accepted shapes are PyTorch's floor; summary, ``cnnkit shape`` and ``explain
shape`` say which padding row goes unread."""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pytest

import cnnkit
from cnnkit import Conv2d, MaxPool2d, ShapeError, cli, shapes
from cnnkit.errors import CnnkitError
from cnnkit.explain import explain_shape

torch = pytest.importorskip("torch")


def _torch_size(size, kernel, stride, padding, dilation=1) -> int:
    """PyTorch's output size, from a convolution it runs."""
    x = torch.zeros(1, 1, size, 1)
    w = torch.zeros(1, 1, kernel, 1)
    y = torch.nn.functional.conv2d(x, w, stride=(stride, 1), padding=(padding, 0),
                                   dilation=(dilation, 1))  # fmt: skip
    return y.shape[2]


# (I, F, S, P): rounding down leaves only padding unread, or only the stride's gap
ACCEPTED = [
    (32, 3, 2, 1),  # ResNet's downsampling 3x3 conv: 16.5 -> 16, padding row 33 unread
    (56, 3, 2, 1),
    (224, 7, 2, 3),  # ResNet's stem: 112.5 -> 112
    (224, 11, 4, 2),  # torchvision's AlexNet conv1: 55.25 -> 55
    (32, 1, 2, 0),  # a 1x1 stride-2 projection shortcut: input row 31 lies in the gap
    (7, 1, 3, 0),  # whole: 3
    (8, 1, 3, 0),  # row 7 in the gap S=3 skips after every 1-wide window
    (10, 1, 4, 1),  # 2 input rows and 1 padding row, no more than the gap of 3
    (11, 3, 4, 1),
    (12, 3, 4, 0),
]
REFUSED = [  # (I, F, S, P), the fixes in PyTorch's names
    (10, 3, 2, 0, "use stride=1 (-> 8) or kernel_size=2 (-> 5)"),  # the lecture's 4.5
    (9, 2, 2, 0, "use stride=1 (-> 8) or kernel_size=1 (-> 5)"),
    (13, 3, 4, 0, "use padding=1 (-> 4) or stride=5 (-> 3) or kernel_size=1 (-> 4)"),  # gap 1
    (10, 4, 4, 0, "use padding=1 (-> 3) or stride=3 (-> 3) or kernel_size=2 (-> 3)"),
    (6, 3, 3, 1, "use padding=0 (-> 2) or stride=1 (-> 6) or kernel_size=2 (-> 3)"),
]


@pytest.mark.parametrize(("size", "kernel", "stride", "padding"), ACCEPTED)
def test_accepted_cases_have_pytorchs_floor_shapes(size, kernel, stride, padding):
    expected = _torch_size(size, kernel, stride, padding)
    assert shapes.output_size(size, kernel, stride, padding) == expected
    assert shapes.lost_rows(size, kernel, stride, padding, padding) == 0
    conv = Conv2d(1, 1, kernel, stride=stride, padding=padding)
    assert conv.output_shape((1, 1, size, size)) == (1, 1, expected, expected)
    if padding <= kernel // 2:
        pool = MaxPool2d(kernel, stride, padding)
        assert pool.output_shape((1, 1, size, size)) == (1, 1, expected, expected)


@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "fixes"), REFUSED)
def test_refused_cases_lose_input_and_name_their_fixes(size, kernel, stride, padding, fixes):
    assert shapes.lost_rows(size, kernel, stride, padding, padding) > 0
    with pytest.raises(ShapeError) as caught:
        shapes.output_size(size, kernel, stride, padding)
    message = str(caught.value)
    assert "is not a whole number; " + fixes in message
    assert shapes.output_size(size, kernel, stride, padding, rounding="floor") == _torch_size(
        size, kernel, stride, padding
    )


def _loses_input(size, extent, stride, before, after) -> bool:
    """By brute force: is a real input row left unread that a further window (one that starts
    inside the padded input, cut off at its end) would read?"""
    padded = size + before + after
    count = (padded - extent) // stride + 1
    read = {row for o in range(count) for row in range(o * stride, o * stride + extent)}
    further = {
        row
        for start in range(count * stride, padded, stride)
        for row in range(start, min(start + extent, padded))
    }
    return bool((further - read) & set(range(before, before + size)))


def test_strict_accepts_exactly_when_no_real_row_a_window_would_read_is_lost():
    checked = accepted_non_whole = 0
    for size in range(1, 15):
        for kernel in range(1, 7):
            for dilation in (1, 2):
                extent = dilation * (kernel - 1) + 1
                for stride in range(1, 7):
                    for sides in [(0, 0), (1, 1), (2, 2), (3, 3), (1, 2), (2, 0), (0, 3)]:
                        padded = size + sum(sides)
                        problem = shapes.axis_problem(
                            "size", size, kernel, stride, sides, dilation=dilation
                        )
                        fits = extent <= padded
                        ok = fits and not _loses_input(size, extent, stride, *sides)
                        assert (problem is None) == ok, (size, kernel, dilation, stride, sides)
                        checked += 1
                        accepted_non_whole += ok and (padded - extent) % stride != 0
    assert checked == 14 * 6 * 2 * 6 * 7 and accepted_non_whole > 500


def test_the_rule_is_both_of_the_issues_conditions():
    for size in range(1, 20):
        for extent in range(1, 8):
            for stride in range(1, 8):
                for padding in range(0, 4):
                    left = size + 2 * padding - extent
                    if left < 0:
                        continue
                    r = left % stride
                    gap = stride > extent and r - padding <= stride - extent
                    assert (shapes.lost_rows(size, extent, stride, padding, padding) == 0) == (
                        r <= padding or gap
                    )


def test_floor_stays_pytorchs_unconditional_floor():
    with pytest.raises(ShapeError):
        Conv2d(1, 1, 3, stride=2).output_shape((1, 1, 10, 10))
    floor = Conv2d(1, 1, 3, stride=2, rounding="floor")
    assert (
        floor.output_shape((1, 1, 10, 10))
        == (1, 1, 4, 4)
        == (1, 1, *[_torch_size(10, 3, 2, 0)] * 2)
    )
    assert floor.window.unread_notes((10, 10))[0] == "floor: padded rows 9 (of 0..9) are never read"


def test_a_resnet_stack_traces_with_pytorchs_shapes_and_its_notes():
    arch = cnnkit.parse(
        "INPUT(3x32x32) - CONV(D=16, F=3, S=2, P=1) - RELU - CONV(D=32, F=1, S=2) - "
        "POOL(max, F=3, S=2, P=1)"
    )
    model = cnnkit.from_spec(arch.text(), rng=np.random.default_rng(0))
    y = model.forward(np.zeros((1, 3, 32, 32), np.float32))
    sizes = [32]
    for kernel, stride, padding in [(3, 2, 1), (1, 2, 0), (3, 2, 1)]:
        sizes.append(_torch_size(sizes[-1], kernel, stride, padding))
    assert sizes == [32, 16, 8, 4] and y.shape == (1, 32, 4, 4)
    summary = cnnkit.summarize(arch)
    first = summary.rows[0]
    assert first.formula == "(32 - 3 + 2*1)/2 + 1 = 16.5 -> 16"
    assert first.notes == (
        "the last padding row (33 of 0..33) is never read: the same as padding 1 before and 0 "
        "after",
        "the last padding column (33 of 0..33) is never read: the same as padding 1 before and 0 "
        "after",
    )
    assert summary.rows[2].formula == "(16 - 1 + 2*0)/2 + 1 = 8.5 -> 8"
    assert summary.rows[2].notes[0] == (
        "the last input row (15 of 0..15) is never read, no more than the row S=2 skips after "
        "every 1-wide window anyway"
    )
    table = summary.table()
    assert "(32 - 3 + 2*1)/2 + 1 = 16.5 -> 16" in table
    assert "the last padding row (33 of 0..33) is never read" in table


def test_a_live_models_summary_notes_the_unread_padding_too():
    model = cnnkit.Sequential(Conv2d(3, 4, 3, stride=2, padding=1, rng=np.random.default_rng(0)))
    row = model.summary(input_shape=(3, 32, 32)).rows[0]
    assert row.notes[0].startswith("the last padding row (33 of 0..33) is never read")


def test_cnnkit_shape_shows_the_arithmetic_and_the_unread_padding_row(capsys):
    assert cli.main(["shape", "-I", "32", "-F", "3", "-S", "2", "-P", "1"]) == 0
    assert capsys.readouterr().out == (
        "(32 - 3 + 2*1)/2 + 1 = 16.5 -> 16: possible, 16 units along this axis; the last padding "
        "row (33 of 0..33) is never read: the same as padding 1 before and 0 after\n"
    )
    assert cli.main(["shape", "-I", "10", "-F", "3", "-S", "2"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "(10 - 3 + 2*0)/2 + 1 = 4.5 is not a whole number: impossible"
    assert out[1].startswith("use S=1 (-> 8) or F=2 (-> 5), or --floor (-> 4")


def _explain(argv, capsys):
    from cnnkit.cli.explain import add_explain_parser

    parser = argparse.ArgumentParser(prog="cnnkit")
    add_explain_parser(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(["explain", *argv])
    try:
        code = args.run(args)
    except CnnkitError as error:
        print(f"cnnkit: error: {error}", file=sys.stderr)
        code = 2
    return code, capsys.readouterr().out


def test_explain_shape_says_which_padding_row_goes_unread(capsys):
    explained = explain_shape(32, 3, 2, 1)
    assert explained.possible and explained.output == 16
    assert explained.note == (
        "the last padding row (33 of 0..33) is never read: the same as padding 1 before and 0 after"
    )
    assert explained.to_dict()["note"] == explained.note
    code, out = _explain(["shape", "32", "3", "2", "1"], capsys)
    assert code == 0
    assert out.splitlines()[-1] == (
        "(32 - 3 + 2*1)/2 + 1 = 16.5 -> 16: possible, 16 units along this axis; the last padding "
        "row (33 of 0..33) is never read: the same as padding 1 before and 0 after"
    )
    code, out = _explain(["shape", "10", "3", "2"], capsys)
    assert code == 1
    assert "the last 1 is never read (it is input that one more window would read)" in out


def test_explain_conv_accepts_what_only_leaves_padding_unread(capsys):
    code, out = _explain(["conv", "--input", "6"], capsys)  # (6 - 3 + 2*1)/2 + 1 = 3.5 -> 3
    assert code == 0 and "3x3:" in out


def test_cnnkit_shape_output_lists_the_ways_strict_accepts(capsys):
    assert cli.main(["shape", "-I", "32", "-O", "16", "-F", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "(I - F + 2P)/S + 1 = 16 for I = 32 and F = 3: 1 way",
        "  F=3 S=2 P=1   (32 - 3 + 2*1)/2 + 1 = 16.5 -> 16 (only padding unread)",
    ]
    assert cli.main(["shape", "-I", "32", "-O", "16", "-F", "1", "-S", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        "  F=1 S=2 P=0   (32 - 1 + 2*0)/2 + 1 = 16.5 -> 16 (only the stride's gap unread)"
    )
    every = shapes.solutions(32, 16, max_kernel=11, max_stride=4)
    for way in every:
        assert shapes.axis_problem("size", 32, way.kernel, way.stride, way.padding) is None
        assert _torch_size(32, way.kernel, way.stride, way.padding) == 16
    assert (3, 2, 1) in [(w.kernel, w.stride, w.padding) for w in every]
