"""cnnkit explain: the explained numbers are the engine's, and the written-out arithmetic
reproduces them (parsed back from the printed text where it matters)."""

import argparse
import json
import re
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from reference import conv2d_reference

from cnnkit import CnnkitError, ConfigError, Conv2d, DataError, ShapeError, cli, from_spec
from cnnkit.cli.explain import add_explain_parser
from cnnkit.explain import (
    EQUIVARIANCE_DEFAULT,
    LECTURE_B,
    LECTURE_W,
    LECTURE_X,
    explain_backprop,
    explain_conv,
    explain_equivariance,
    explain_shape,
    explain_sharing,
    explain_sparse,
    random_backprop_example,
    random_conv_example,
)
from cnnkit.summary import summarize

LECTURE_OUTPUT = [[3, 4, 1], [4, 1, 6], [3, 3, 4]]


def run(argv, capsys):
    """``cnnkit explain ...`` through a parser built here, as cli.main runs it."""
    parser = argparse.ArgumentParser(prog="cnnkit")
    add_explain_parser(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(["explain", *argv])
    try:
        code = args.run(args)
    except CnnkitError as error:
        print(f"cnnkit: error: {error}", file=sys.stderr)
        code = 2
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def arithmetic(text: str) -> float:
    """Evaluate a printed sum such as ``(0*1 + 1*(-1)) + 2 - 3``: digits and + - * ( ) only."""
    assert re.fullmatch(r"[\d\s+\-*().]+", text), text
    return eval(text, {"__builtins__": {}})


def grids(lines, start: int, rows: int):
    """Read ``rows`` printed rows of side-by-side integer grids starting at ``lines[start]``."""
    return [[int(v) for v in lines[start + r].split()] for r in range(rows)]


# ---------------------------------------------------------------------------------------------
# explain conv: the printed dot products are the engine's output


def test_default_example_is_the_lecture_output():
    e = explain_conv(LECTURE_X, LECTURE_W, LECTURE_B, stride=2, padding=1)
    assert e.output.tolist() == LECTURE_OUTPUT
    assert [u.value for u in e.units] == [v for row in LECTURE_OUTPUT for v in row]
    assert e.units[1].region == "x[:, 0:3, 2:5]"
    assert e.units[1].channel_sums == (1.0, 2.0, 0.0)
    np.testing.assert_array_equal(
        e.output, conv2d_reference(LECTURE_X[None], LECTURE_W[None], np.array([1.0]), 2, 1)[0, 0]
    )


def _check_units(e, x, w, b, stride, padding, exact: bool):
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    reference = conv2d_reference(x[None], w[None], np.array([b]), stride, padding)[0, 0]
    assert e.output.shape == reference.shape
    assert len(e.units) == reference.size
    for unit in e.units:
        (r0, r1), (c0, c1) = unit.rows, unit.cols
        i, j = unit.position
        assert (r0, c0) == (i * stride, j * stride)
        region = padded[:, r0:r1, c0:c1]
        sums = [float(np.sum(region[k] * w[k])) for k in range(x.shape[0])]
        assert unit.value == e.output[i, j]
        if exact:  # small integers: every sum is exact
            assert list(unit.channel_sums) == sums
            assert unit.total == unit.value == reference[i, j]
        else:
            np.testing.assert_allclose(unit.channel_sums, sums, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose([unit.total, unit.value], reference[i, j], rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    size=st.integers(1, 7),
    channels=st.integers(1, 3),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
)
def test_every_unit_sums_to_the_engine_output(seed, size, channels, kernel, stride, padding):
    span = size + 2 * padding - kernel
    assume(span >= 0 and span % stride == 0)
    x, w, b = random_conv_example(seed, size, channels, kernel)
    e = explain_conv(x, w, b, stride=stride, padding=padding)
    _check_units(e, x, w, b, stride, padding, exact=True)


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (1, 1), (2, 1), (3, 1)])
def test_real_valued_units_match_the_engine(stride, padding):
    rng = np.random.default_rng(stride * 10 + padding)
    x, w, b = rng.standard_normal((2, 7, 7)), rng.standard_normal((2, 3, 3)), 0.25
    e = explain_conv(x, w, b, stride=stride, padding=padding)
    _check_units(e, x, w, b, stride, padding, exact=False)


def test_printed_default_example_shows_the_real_numbers(capsys):
    code, out, _ = run(["conv"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("the lecture's worked example: a 5x5x3 input")
    assert "(5 - 3 + 2*1)/2 + 1 = 3" in lines[1]
    # the padded channels, side by side, are x with a ring of zeros
    start = lines.index("x[0, :, :]              x[1, :, :]              x[2, :, :]") + 1
    rows = grids(lines, start, 7)
    padded = np.pad(LECTURE_X, ((0, 0), (1, 1), (1, 1)))
    assert rows == np.concatenate(list(padded), axis=1).astype(int).tolist()
    # every unit: its region, its terms and its value
    e = explain_conv(LECTURE_X, LECTURE_W, LECTURE_B, stride=2, padding=1)
    heads = [n for n, line in enumerate(lines) if line.startswith("out[")]
    assert len(heads) == 9
    for n, unit in zip(heads, e.units, strict=True):
        i, j = unit.position
        (r0, r1), (c0, c1) = unit.rows, unit.cols
        assert lines[n].startswith(f"out[{i},{j}] = sum(x[:, {r0}:{r1}, {c0}:{c1}] * w) + b")
        block = [lines[n]]
        while re.match(r" {9}[=+] ", lines[n + len(block)]):  # the unit's continuation lines
            block.append(lines[n + len(block)])
        *_, terms, value = block[-1].split(" = ")
        assert float(value) == unit.value == LECTURE_OUTPUT[i][j]
        assert arithmetic(terms) == unit.value
        signed = [float(sign + number) for sign, number in re.findall(r"(-?)\s*(\d+)", terms)]
        assert signed == [*unit.channel_sums, LECTURE_B]  # one sum per channel, then b
    assert len([n for n in range(len(lines)) if re.match(r" {9}[=+] ", lines[n])]) == 5
    # the first unit is written product by product; each channel's products give its sum
    first = lines[heads[0] + 1 : heads[0] + 5]
    for k, line in enumerate(first[:3]):
        products, note = line.split("<-")
        assert arithmetic(products.strip()[2:]) == e.units[0].channel_sums[k]
        assert note.strip() == f"x[{k}] * w[{k}] = {int(e.units[0].channel_sums[k])}"
    assert first[3].split("<-")[0].strip() == "+ 1"
    # the grid after the last unit is the engine's output
    end = lines.index(
        "output out (Conv2d(3, 1, kernel_size=3, stride=2, padding=1).forward, the engine's), 3x3:"
    )
    assert grids(lines, end + 1, 3) == LECTURE_OUTPUT
    assert lines[heads[2] + 1 : heads[2] + 4] == [
        "    out so far:   3  4  1",
        "                  .  .  .",
        "                  .  .  .",
    ]


def test_verbose_writes_every_product_and_they_add_up(capsys):
    code, out, _ = run(["conv", "--verbose", "--seed", "4", "--stride", "1"], capsys)
    assert code == 0
    x, w, b = random_conv_example(4)
    e = explain_conv(x, w, b, stride=1, padding=1)
    notes = [line for line in out.splitlines() if "<- x[" in line]
    assert len(notes) == 25 * 3
    for n, line in enumerate(notes):
        unit, k = e.units[n // 3], n % 3
        assert line.split("<-")[1].strip() == f"x[{k}] * w[{k}] = {int(unit.channel_sums[k])}"
        assert arithmetic(line.split("<-")[0].strip()[2:]) == unit.channel_sums[k]


def test_long_filters_wrap_one_filter_row_per_line(capsys):
    code, out, _ = run(["conv", "--seed", "1", "--filter", "5", "--channels", "1"], capsys)
    assert code == 0
    lines = out.splitlines()
    first = lines.index("out[0,0] = sum(x[:, 0:5, 0:5] * w) + b")
    block = lines[first + 1 : first + 6]  # one line per filter row
    assert block[0].startswith("         = (") and block[0].endswith(" +")
    assert all(line.startswith("            ") for line in block[1:])
    x, w, b = random_conv_example(1, 5, 1, 5)
    e = explain_conv(x, w, b, stride=2, padding=1)
    assert block[4].endswith(f"<- x[0] * w[0] = {int(e.units[0].channel_sums[0])}")
    text = " ".join(line.split("<-")[0].strip() for line in block)
    assert arithmetic(text[2:]) == e.units[0].channel_sums[0]


def test_values_file_is_explained(tmp_path, capsys):
    path = tmp_path / "values.json"
    path.write_text(json.dumps({"x": [[1, 2, 3], [4, 5, 6], [7, 8, 9]], "w": [[1, 0], [0, -1]]}))
    code, out, _ = run(["conv", "--values", str(path), "--stride", "1", "--padding", "0"], capsys)
    assert code == 0
    assert out.splitlines()[0].startswith(f"values from {path}: a 3x3x1 input")
    assert out.rstrip().endswith("-4 -4\n-4 -4")


# ---------------------------------------------------------------------------------------------
# explain backprop: the contributions add up to the engine's gradient


@pytest.mark.parametrize(
    ("seed", "size", "channels", "kernel", "stride", "padding", "weight"),
    [
        (0, 4, 1, 3, 1, 0, (0, 0, 0)),
        (1, 4, 1, 3, 1, 0, (0, 1, 2)),
        (2, 5, 2, 3, 2, 1, (1, 2, 0)),
        (3, 6, 1, 2, 2, 0, (0, 1, 1)),
        (4, 3, 3, 3, 1, 1, (2, 0, 2)),
    ],
)
def test_backprop_contributions_sum_to_the_weight_gradient(
    seed, size, channels, kernel, stride, padding, weight
):
    out = (size + 2 * padding - kernel) // stride + 1
    x, w, b, dy = random_backprop_example(seed, size, channels, kernel, (out, out))
    e = explain_backprop(x, w, b, dy, stride=stride, padding=padding, weight=weight)
    assert e.total == e.weight_grad
    assert e.bias_total == e.bias_grad == dy.sum()
    # the engine's numbers, independently: every unit's gradient for the whole filter, summed
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    per_unit = [
        dy[p, q] * padded[:, p * stride : p * stride + kernel, q * stride : q * stride + kernel]
        for p in range(out)
        for q in range(out)
    ]
    np.testing.assert_array_equal(e.grad, np.sum(per_unit, axis=0))
    assert e.weight_grad == e.grad[weight]
    assert [t.contribution for t in e.terms] == [u[weight] for u in per_unit]


def test_backprop_with_real_values():
    rng = np.random.default_rng(5)
    x, w, dy = (
        rng.standard_normal((2, 5, 5)),
        rng.standard_normal((2, 3, 3)),
        rng.normal(size=(3, 3)),
    )
    e = explain_backprop(x, w, 0.5, dy, stride=1, padding=0, weight=(1, 2, 1))
    conv = Conv2d(2, 1, 3, dtype=np.float64, rng=rng)
    conv.weight.data[0] = w
    conv.forward(x[None])
    conv.backward(dy[None, None])
    assert e.weight_grad == conv.weight.grad[0, 1, 2, 1]
    np.testing.assert_allclose(e.total, e.weight_grad, rtol=1e-12)


def test_printed_backprop_sum_is_the_engine_gradient(capsys):
    code, out, _ = run(["backprop", "--weight", "1", "2", "--seed", "3"], capsys)
    assert code == 0
    x, w, b, dy = random_backprop_example(3)
    e = explain_backprop(x, w, b, dy, weight=(0, 1, 2))
    lines = out.splitlines()
    units = [line for line in lines if line.startswith("unit out[")]
    assert len(units) == 4
    for line, term in zip(units, e.terms, strict=True):
        p, q = term.position
        assert line.startswith(f"unit out[{p},{q}]: dy[{p},{q}] * x[0,{p + 1},{q + 2}] = ")
        *_, product, value = line.split(" = ")
        assert arithmetic(product) == float(value) == term.contribution
    total = next(line for line in lines if line.startswith("sum over the depth slice: "))
    terms, value = total.split(": ")[1].split(" = ")
    assert arithmetic(terms) == float(value) == e.weight_grad
    assert f"weight.grad[0,0,1,2] = {int(e.weight_grad)}: equal" in out
    assert f"bias.grad[0] = {int(dy.sum())}: equal" in out


# ---------------------------------------------------------------------------------------------
# explain equivariance: zero exactly where theory says


@pytest.mark.parametrize("axis", ["width", "height", "both"])
def test_stride_one_conv_and_relu_commute_with_every_shift(axis):
    e = explain_equivariance(
        "INPUT(2x16x16) - CONV(D=3, F=3, P=1) - RELU - CONV(D=2, F=5, P=2)", axis=axis, shifts=5
    )
    assert [row.layer for row in e.rows] == [
        "CONV(D=3, F=3, S=1, P=1)",
        "RELU",
        "CONV(D=2, F=5, S=1, P=2)",
    ]
    for row in e.rows:
        for cell in row.cells:
            assert cell.exact and cell.compared > 0
            assert cell.error < 1e-12


@pytest.mark.parametrize(
    "spec",
    [
        "INPUT(2x16x16) - CONV(D=3, F=4, S=2, P=1)",
        "INPUT(2x16x16) - CONV(D=3, F=3, S=2, P=1, round=floor)",
        "INPUT(2x16x16) - POOL(F=2)",
        "INPUT(2x16x16) - AVGPOOL(F=2)",
    ],
)
def test_stride_two_commutes_only_with_even_shifts(spec):
    e = explain_equivariance(spec, shifts=4)
    (row,) = e.rows
    assert row.jump == (2, 2)
    for cell in row.cells:
        k = cell.shift[1]
        assert cell.exact == (k % 2 == 0)
        if k % 2 == 0:
            assert cell.output_shift == (0, k // 2)
            assert cell.error < 1e-12
        else:
            assert cell.error > 1e-3


def test_default_stack_follows_the_cumulative_stride():
    e = explain_equivariance(shifts=6, axis="both")
    assert e.architecture == (
        "INPUT(1x16x16) - CONV(D=4, F=3, S=1, P=1) - RELU - POOL(max, F=2, S=2) - "
        "CONV(D=4, F=4, S=2, P=1)"
    )
    assert [row.jump for row in e.rows] == [(1, 1), (1, 1), (2, 2), (4, 4)]
    assert [row.receptive_field for row in e.rows] == [(3, 3), (3, 3), (4, 4), (10, 10)]
    for row in e.rows:
        for cell in row.cells:
            k = cell.shift[0]
            if k % row.jump[0] == 0:
                assert cell.error < 1e-12, (row.layer, k)
            elif cell.error is not None:
                assert cell.error > 1e-3, (row.layer, k)
    assert all(cell.error is not None for row in e.rows for cell in row.cells[:4])


def test_border_margin_is_the_receptive_field():
    # CONV F=3, P=1 on 16 columns: unit u reads columns u-1..u+1; after a roll by k it is
    # compared when u-1 >= k and u+1 <= 15, i.e. u = k+1..14: 14 - k columns, every row.
    e = explain_equivariance("INPUT(1x16x16) - CONV(D=2, F=3, P=1)", shifts=3)
    assert [cell.compared for cell in e.rows[0].cells] == [(14 - k) * 16 * 2 for k in (1, 2, 3)]


def test_a_live_model_and_its_layers_are_measured():
    model = from_spec(
        "INPUT(1x12x12) - CONV(D=2, F=3, P=1) - RELU - POOL(F=2) - FC(3)",
        rng=np.random.default_rng(0),
        dtype=np.float64,
    )
    e = explain_equivariance(model, shifts=2)
    assert len(e.rows) == 3 and e.skipped[0].startswith("layer 3 FLATTEN")
    assert [cell.exact for cell in e.rows[2].cells] == [False, True]
    assert e.rows[2].cells[1].error < 1e-12 < 1e-3 < e.rows[2].cells[0].error


def test_equivariance_table(capsys):
    code, out, _ = run(["equivariance"], capsys)
    assert code == 0
    lines = out.splitlines()
    header = next(n for n, line in enumerate(lines) if line.startswith("layer "))
    assert lines[header].split() == ["layer", "J", "RF", "k=1", "k=2", "k=3", "k=4"]
    e = explain_equivariance(EQUIVARIANCE_DEFAULT)
    for line, row in zip(lines[header + 1 : header + 5], e.rows, strict=True):
        cells = line.split()[-4:]
        assert cells == [f"{c.error:.1e}" + ("" if c.exact else "*") for c in row.cells]
    assert lines[header + 1].endswith("0.0e+00    0.0e+00    0.0e+00    0.0e+00")


# ---------------------------------------------------------------------------------------------
# explain sharing and sparse: the lecture's numbers, and the summary's


def test_sharing_alexnet_conv1(capsys):
    (layer,) = explain_sharing().layers
    assert (layer.shared, layer.unshared, layer.units) == (34_944, 105_705_600, 3025)
    code, out, _ = run(["sharing"], capsys)
    assert code == 0
    assert "96*(11*11*3 + 1) = 34,944" in out
    assert "55*55*96*(11*11*3 + 1) = 105,705,600" in out
    assert "sharing divides the count by 55*55 = 3,025" in out


def test_sharing_multi_layer_spec_matches_the_summary(capsys):
    e = explain_sharing("lenet5")
    rows = {row.index: row for row in summarize("lenet5").rows if row.kind == "CONV"}
    assert [layer.index for layer in e.layers] == [0, 3]
    for layer in e.layers:
        assert (layer.shared, layer.unshared) == (
            rows[layer.index].params,
            rows[layer.index].unshared_params,
        )
    assert (e.shared, e.unshared) == (156 + 2416, 122_304 + 241_600)
    code, out, _ = run(["sharing", "lenet5", "--json"], capsys)
    document = json.loads(out)
    assert code == 0 and document["schema"] == "cnnkit.explain.sharing/1"
    assert document["shared"] == 2572 and document["layers"][1]["shared_formula"] == (
        "16*(5*5*6 + 1)"
    )
    no_bias = explain_sharing("INPUT(3x8x8) - CONV(D=4, F=3, bias=false)").layers[0]
    assert (no_bias.shared, no_bias.unshared_formula()) == (108, "6*6*4*(3*3*3)")


def test_sparse_alexnet_conv1(capsys):
    e = explain_sparse()
    row = summarize("alexnet-conv1").rows[0]
    assert (
        (e.connections, e.fc_connections)
        == (363, 154_587)
        == (
            row.connections,
            row.fc_connections,
        )
    )
    code, out, _ = run(["sparse"], capsys)
    assert code == 0
    assert "11*11*3 = 363 inputs" in out and "227*227*3 = 154,587 inputs" in out
    assert "= 0.23% of them (1 in 426)" in out


def test_sparse_region_reaches_into_the_padding(capsys):
    e = explain_sparse("worked-example", unit=(0, 2))
    assert (e.extent(0), e.extent(1)) == ((-1, 1), (3, 5))
    code, out, _ = run(["sparse", "worked-example", "--unit", "0", "2"], capsys)
    assert code == 0
    assert "rows -1..1 (row -1 is zero padding): first = i*S - P = 0*2 - 1 = -1" in out
    assert out.splitlines()[-5:] == ["  . . . # #", "  . . . # #"] + ["  . . . . ."] * 3


# ---------------------------------------------------------------------------------------------
# explain shape: the cnnkit shape verdict, step by step


@pytest.mark.parametrize(
    ("argv", "shape_argv", "code"),
    [
        (["5", "3", "2", "1"], ["-I", "5", "-F", "3", "-S", "2", "-P", "1"], 0),
        (["10", "3", "2"], ["-I", "10", "-F", "3", "-S", "2"], 1),
        (["10", "3", "2", "--floor"], ["-I", "10", "-F", "3", "-S", "2", "--floor"], 0),
        (["5", "7"], ["-I", "5", "-F", "7"], 1),
        (["227", "11", "4"], ["-I", "227", "-F", "11", "-S", "4"], 0),
    ],
)
def test_shape_ends_with_the_words_of_cnnkit_shape(argv, shape_argv, code, capsys):
    got, out, _ = run(["shape", *argv], capsys)
    assert cli.main(["shape", *shape_argv]) == code
    reference = capsys.readouterr().out.splitlines()
    assert got == code
    assert out.splitlines()[-len(reference) :] == reference


def test_shape_steps():
    e = explain_shape(10, 3, 2, 0)
    assert (e.span, e.exact, e.possible, e.positions, e.unread) == (7, 4.5, False, [0, 2, 4, 6], 1)
    assert e.text().splitlines()[:4] == [
        "units along one axis = (I - F + 2P)/S + 1   with I=10, F=3, S=2, P=0",
        "                     = (10 - 3 + 2*0)/2 + 1",
        "                     = 7/2 + 1",
        "                     = 4.5",
    ]
    assert explain_shape(10, 3, 2, 0, floor=True).output == 4
    assert [fix["letter"] for fix in e.to_dict()["fixes"]] == ["S", "F"]


# ---------------------------------------------------------------------------------------------
# Refusals, pinned


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["conv", "--input", "11"],
            r"^explain conv: the zero-padded input is 13x13, too large to print \(at most 12x12\); "
            r"use a smaller --input or --padding, or --png FILE for a picture$",
        ),
        (
            ["conv", "--channels", "5"],
            r"^explain conv: 5 channels are too many to print \(at most 4\); use --channels 4 or "
            r"fewer, or --png FILE for a picture$",
        ),
        (
            ["conv", "--input", "9", "--stride", "1"],
            r"^explain conv: 9x9 = 81 output units are too many to print \(at most 49\); use a "
            r"larger --stride or a smaller --input, or --png FILE for a picture$",
        ),
        (
            ["conv", "--input", "6", "--stride", "3"],  # --input 6 alone: only padding unread
            r"^explain conv \(I=6, F=3, S=3, P=1\): \(6 - 3 \+ 2\*1\)/3 \+ 1 = 2\.667 is not a "
            r"whole number; use P=0 \(-> 2\) or S=1 \(-> 6\) or F=2 \(-> 3\); P=1 is the worked "
            r"example's, kept because only the size changed: give --stride and --padding too$",
        ),
        (
            ["backprop", "--input", "12"],
            r"^explain backprop: 10x10 = 100 output units are too many to print \(at most 49\); "
            r"use a larger --stride or a smaller --input$",
        ),
        (
            ["backprop", "--weight", "3", "0"],
            r"^explain backprop: weight w\[0,0,3,0\] is outside the 1x3x3 filter; use --weight "
            r"I J with I in 0\.\.2 and J in 0\.\.2$",
        ),
        (
            ["sparse", "lenet5", "--layer", "1"],
            r"^explain sparse: layer 1 \(RELU\) is not a CONV layer; use --layer with a CONV "
            r"layer's index: 0, 3$",
        ),
        (
            ["sparse", "--unit", "55", "0"],
            r"^explain sparse: unit \(55, 0\) is outside the 55x55 output of layer 0; use --unit "
            r"I J with I in 0\.\.54 and J in 0\.\.54$",
        ),
        (
            ["sharing", "INPUT(1x8x8) - RELU"],
            r"^explain sharing: INPUT\(1x8x8\) - RELU has no CONV layer; e\.g\. ",
        ),
        (
            ["equivariance", "--shifts", "16"],
            r"^explain equivariance: a shift of 16 pixels rolls the 16x16 input all the way "
            r"around; use --shifts 15 or fewer$",
        ),
        (
            ["equivariance", "INPUT(1x8x8) - FC(3)"],
            r"^explain equivariance: INPUT\(1x8x8\) - FC\(3\) has no layer that keeps positions ",
        ),
        (
            ["equivariance", "INPUT(1x10x10) - CONV(D=2, F=3, S=2)"],
            r"^layer 0 CONV\(D=2, F=3, S=2, P=0\) on 10x10: \(10 - 3 \+ 2\*0\)/2 \+ 1 = 4\.5",
        ),
    ],
)
def test_refusals(argv, message, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert re.search(message, err.removeprefix("cnnkit: error: ").rstrip("\n"))


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        ('{"x": 1', DataError, r"is not valid JSON: Expecting ',' delimiter at line 1 column 8$"),
        ("[1, 2]", DataError, r'must hold one object such as \{"x": \[\[\[\.\.\.\]\]\]'),
        ('{"x": [[1]]}', DataError, r'has no "w"; expected an object such as'),
        ('{"x": [[1]], "w": [[1]], "bias": 1}', DataError, r'has unknown key "bias"; expected'),
        (
            '{"x": [[1, 2], [3]], "w": [[1]]}',
            DataError,
            r'"x" must be nested lists of numbers with rows of equal length',
        ),
        ('{"x": [[1]], "w": [[1]], "b": "one"}', DataError, r"\"b\" must be a number, got 'one'$"),
        ('{"x": [1, 2, 3], "w": [[1]]}', ShapeError, r'"x" must be C x H x W .* got shape \(3,\)$'),
        (
            '{"x": [[[1]], [[2]]], "w": [[1]]}',
            ShapeError,
            r"^explain conv: the filter w has 1 channels but the input x has 2; a filter spans",
        ),
    ],
)
def test_values_file_refusals(content, error, message, tmp_path, capsys):
    path = tmp_path / "values.json"
    path.write_text(content)
    parser = argparse.ArgumentParser()
    add_explain_parser(parser.add_subparsers())
    args = parser.parse_args(["explain", "conv", "--values", str(path)])
    with pytest.raises(error, match=message):
        args.run(args)


def test_values_and_sizes_are_exclusive(tmp_path, capsys):
    code, _, err = run(["conv", "--values", str(tmp_path / "none.json"), "--seed", "1"], capsys)
    assert code == 2 and "--values FILE sets x, w and b; drop --input" in err
    code, _, err = run(["conv", "--values", str(tmp_path / "none.json")], capsys)
    assert code == 2
    assert err.startswith(f"cnnkit: error: explain conv --values: cannot read {tmp_path}")


def test_png_without_matplotlib_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    code, _, err = run(["conv", "--png", str(tmp_path / "conv.png")], capsys)
    assert code == 2
    assert "matplotlib is not installed; pip install cnnkit[viz]" in err


def test_png_is_drawn_when_matplotlib_is_there(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "conv.png"
    code, out, _ = run(["conv", "--input", "10", "--stride", "1", "--png", str(path)], capsys)
    assert code == 0 and out.startswith("explain conv: wrote")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_library_arguments_are_checked():
    with pytest.raises(ConfigError, match="stride must be >= 1, got 0"):
        explain_conv(LECTURE_X, LECTURE_W, stride=0)
    with pytest.raises(DataError, match="x holds NaN or infinity"):
        explain_conv(np.full((1, 3, 3), np.nan), np.ones((1, 2, 2)))
    with pytest.raises(ShapeError, match=r"dy must have the output's shape 2x2, got shape \(3,"):
        explain_backprop(np.ones((1, 4, 4)), np.ones((1, 3, 3)), 0, np.ones((3, 3)))
    with pytest.raises(ConfigError, match="axis must be one of width, height, both"):
        explain_equivariance(axis="diagonal")


# ---------------------------------------------------------------------------------------------
# The argparse wiring


@pytest.mark.parametrize(
    ("argv", "schema"),
    [
        (["conv"], "conv"),
        (["conv", "--input", "20", "--stride", "1"], "conv"),  # JSON is not limited to print
        (["shape", "10", "3", "2"], "shape"),
        (["sharing"], "sharing"),
        (["sparse", "lenet5", "--layer", "3"], "sparse"),
        (["equivariance", "--shifts", "2"], "equivariance"),
        (["backprop"], "backprop"),
        (["batchnorm"], "batchnorm"),
    ],
)
def test_every_topic_has_json(argv, schema, capsys):
    code, out, err = run([*argv, "--json"], capsys)
    assert code == (1 if schema == "shape" else 0), err
    document = json.loads(out)
    version = 2 if schema == "shape" else 1  # shape/2 added dilation and ceil
    assert document["schema"] == f"cnnkit.explain.{schema}/{version}"


def test_json_numbers_are_the_engine_numbers(capsys):
    _, out, _ = run(["conv", "--json"], capsys)
    document = json.loads(out)
    assert document["output"] == LECTURE_OUTPUT
    for unit in document["units"]:
        i, j = unit["out"]
        assert unit["value"] == unit["sum"] == sum(unit["channel_sums"]) + document["b"]
        assert unit["value"] == LECTURE_OUTPUT[i][j]
        products = np.array(unit["inputs"]) * np.array(document["w"])
        assert products.sum(axis=(1, 2)).tolist() == unit["channel_sums"]
    _, out, _ = run(["backprop", "--json"], capsys)
    document = json.loads(out)
    assert sum(t["contribution"] for t in document["terms"]) == document["weight_grad"]
    assert document["bias_sum"] == document["bias_grad"]


@pytest.mark.parametrize(
    "argv",
    [
        ["conv"],
        ["conv", "--seed", "7", "--input", "4", "--channels", "2", "--stride", "1"],
        ["shape", "5", "3", "2", "1"],
        ["sharing", "alexnet"],
        ["sparse"],
        ["equivariance", "--axis", "height"],
        ["backprop", "--channels", "2", "--channel", "1"],
        ["batchnorm", "--images", "3", "--size", "3"],
    ],
)
def test_topics_print_text_and_exit_zero(argv, capsys):
    code, out, err = run(argv, capsys)
    assert (code, err) == (0, "")
    assert out.strip() and not out.lstrip().startswith("{")


def test_explain_without_a_topic_prints_its_help(capsys):
    code, out, _ = run([], capsys)
    assert code == 0
    assert out.startswith("usage: cnnkit explain")
    for topic in ("conv", "shape", "sharing", "sparse", "equivariance", "backprop", "batchnorm"):
        assert f"\n    {topic}" in out


def test_argparse_refuses_bad_numbers(capsys):
    with pytest.raises(SystemExit) as stop:
        run(["conv", "--stride", "0"], capsys)
    assert stop.value.code == 2
    assert "must be > 0, got 0" in capsys.readouterr().err


def test_a_non_whole_result_is_never_printed_as_whole(capsys):
    code, out, _ = run(["shape", "1000000000001", "2", "2"], capsys)
    assert code == 1
    assert "                     = 500000000000 + 1/2\n" in out  # was "= 5e+11"
    assert "= 500000000000 + 1/2 is not a whole number: impossible" in out
    code, out, _ = run(["shape", "1000000000001", "2", "2", "--floor"], capsys)
    assert code == 0 and "= 500000000000 + 1/2 -> floor 500000000000 (as PyTorch)" in out
    code, out, _ = run(["shape", "100000", "1", "100000"], capsys)
    assert code == 0 and "                     = 1 + 99999/100000\n" in out  # was "= 1"
    assert "= 1 + 99999/100000 -> 1: possible" in out  # the stride skips the rest anyway


def test_numbers_in_explanations_keep_their_fraction():
    from cnnkit.explain._format import _num

    assert [_num(v) for v in (3.0, -0.0, 0.25, 2 / 3)] == ["3", "0", "0.25", "0.6667"]
    assert [_num(v) for v in (1.00001, -1.99999, 5e11 + 0.5)] == [
        "1.00001",
        "-1.99999",
        "500000000000.5",
    ]
