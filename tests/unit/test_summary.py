"""cnnkit.summary: per-layer costs from shapes alone, checked against torch and real caches."""

import csv
import io
import json
import re

import numpy as np
import pytest

import cnnkit.arch.convert
from cnnkit import (
    AvgPool2d,
    ConfigError,
    Conv2d,
    DTypeError,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    ShapeError,
    lecture_network,
)
from cnnkit import summary as summary_module
from cnnkit.arch import architecture_of, build, parse
from cnnkit.nn.containers import Sequential
from cnnkit.nn.context import saved_by
from cnnkit.nn.parameter import Parameter
from cnnkit.summary import CSV_FIELDS, SCHEMA, summarize

TOTAL_PARAMS = {
    "lenet5": 61_706,
    "alexnet": 62_378_344,
    "alexnet-torchvision": 61_100_840,
    "vgg16": 138_357_544,
}


@pytest.fixture(scope="module")
def alexnet():
    return summarize(parse("alexnet"))


@pytest.fixture(scope="module")
def vgg16():
    return summarize(parse("vgg16"))


# ---------------------------------------------------------------------------------------------
# The lecture's numbers


def test_alexnet_conv1_row_has_the_lecture_numbers(alexnet):
    row = alexnet.rows[0]
    assert row.layer == "CONV(D=96, F=11, S=4, P=0)"
    assert row.kind == "CONV"
    assert row.output == "55x55x96"
    assert row.output_shape == (1, 96, 55, 55)
    assert row.formula == "(227 - 11 + 2*0)/4 + 1 = 55"
    assert row.params == 34_944 == 96 * (11 * 11 * 3 + 1)
    assert row.unshared_params == 105_705_600 == 55 * 55 * 96 * (11 * 11 * 3 + 1)
    assert row.connections == 363  # 11x11x3 inputs per unit; the bias is not an input
    assert row.fc_connections == 154_587 == 227 * 227 * 3


def test_conv_macs_match_the_hand_formula(alexnet):
    # OH*OW*D units, each an 11*11*3 dot product
    assert alexnet.rows[0].macs == 55 * 55 * 96 * 11 * 11 * 3 == 105_415_200
    # conv2: 27x27x256 units over 5x5x96 regions
    assert alexnet.rows[3].macs == 27 * 27 * 256 * 5 * 5 * 96
    fc6 = alexnet.rows[14]
    assert (fc6.layer, fc6.macs, fc6.params) == ("FC(4096)", 9216 * 4096, 9216 * 4096 + 4096)


def test_conv_macs_count_every_multiply_of_a_naive_loop():
    arch = parse("INPUT(2x7x6) - CONV(D=3, F=3x2, S=2x1, P=1x0)")
    row = summarize(arch).rows[0]
    c, h, w, d, kh, kw, sh, sw, ph, pw = 2, 7, 6, 3, 3, 2, 2, 1, 1, 0
    multiplies = 0
    for _filter in range(d):
        for _top in range(0, h + 2 * ph - kh + 1, sh):
            for _left in range(0, w + 2 * pw - kw + 1, sw):
                multiplies += c * kh * kw
    assert row.macs == multiplies
    assert row.formula == "H: (7 - 3 + 2*1)/2 + 1 = 4, W: (6 - 2 + 2*0)/1 + 1 = 5"


@pytest.mark.parametrize("name", sorted(TOTAL_PARAMS))
def test_total_parameters_of_the_built_in_networks(name):
    totals = summarize(parse(name)).totals
    assert totals.params == totals.trainable_params == TOTAL_PARAMS[name]
    assert totals.non_trainable_params == 0
    assert totals.param_bytes == totals.gradient_bytes == 4 * TOTAL_PARAMS[name]


@pytest.mark.parametrize("name", ["lenet5", "lecture", "lecture-mnist"])
def test_total_parameters_equal_the_built_model(name):
    model = build(parse(name), rng=np.random.default_rng(0))
    assert summarize(parse(name)).totals.params == sum(p.size for p in model.parameters())


def test_receptive_fields(alexnet, vgg16):
    assert (alexnet.rows[0].receptive_field, alexnet.rows[0].jump) == ((11, 11), (4, 4))
    last_conv = [row for row in vgg16.rows if row.kind == "CONV"][-1]
    assert (last_conv.index, last_conv.receptive_field, last_conv.jump) == (
        28,
        (196, 196),
        (16, 16),
    )
    pool5 = vgg16.rows[30]
    assert (pool5.kind, pool5.receptive_field, pool5.jump) == ("POOL", (212, 212), (32, 32))
    flatten, fc = vgg16.rows[31], vgg16.rows[32]
    assert flatten.receptive_field == (212, 212)  # FLATTEN moves values, it does not mix them
    assert fc.receptive_field is None and fc.jump is None  # an FC unit sees the whole input


def _support(grad):
    rows = np.flatnonzero(grad.any(axis=1))
    cols = np.flatnonzero(grad.any(axis=0))
    return rows[0], rows[-1] - rows[0] + 1, cols[0], cols[-1] - cols[0] + 1


def test_receptive_field_matches_the_input_gradient_of_one_unit():
    text = (
        "INPUT(1x40x41) - CONV(D=1, F=3x5, S=1x2, P=1) - RELU - POOL(avg, F=2) "
        "- CONV(D=1, F=4, S=2)"
    )
    model = build(parse(text), rng=np.random.default_rng(0), dtype=np.float64)
    for p in model.parameters():
        p.data[...] = 1.0  # positive weights: no cancellation hides part of the field
    y = model.forward(np.ones((1, 1, 40, 41)))
    row = summarize(parse(text)).rows[-1]
    assert (row.receptive_field, row.jump) == ((10, 19), (4, 8))
    starts = []
    for oh, ow in ((3, 1), (3, 2), (4, 1)):  # units whose fields stay clear of the padding
        dy = np.zeros_like(y)
        dy[0, 0, oh, ow] = 1.0
        top, height, left, width = _support(model.backward(dy, retain_graph=True)[0, 0])
        assert (height, width) == row.receptive_field
        starts.append((top, left))
    assert (starts[2][0] - starts[0][0], starts[1][1] - starts[0][1]) == row.jump


# ---------------------------------------------------------------------------------------------
# Against PyTorch (meta tensors: no memory, no data)


def _torch_networks(nn):
    def vgg16():
        layers, channels = [], 3
        for depth in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M"] + [512, 512, 512, "M"] * 2:
            if depth == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, depth, 3, padding=1), nn.ReLU()]
                channels = depth
        return layers, 25088

    def alexnet(c1, c2, c3, c4, padding):
        layers = [nn.Conv2d(3, c1, 11, 4, padding), nn.ReLU(), nn.MaxPool2d(3, 2)]
        layers += [nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2)]
        layers += [nn.Conv2d(c2, 384, 3, padding=1), nn.ReLU()]
        layers += [nn.Conv2d(384, c3, 3, padding=1), nn.ReLU()]
        layers += [nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2)]
        return layers, 9216

    head = [nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000)]
    lenet = [nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU()]
    lenet += [nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84)]
    nets = {"lenet5": ([*lenet, nn.ReLU(), nn.Linear(84, 10)], (1, 32, 32))}
    for name, (body, flat), size in (
        ("vgg16", vgg16(), 224),
        ("alexnet", alexnet(96, 256, 384, 256, 0), 227),
        ("alexnet-torchvision", alexnet(64, 192, 256, 256, 2), 224),
    ):
        layers = [*body, nn.Flatten(), nn.Linear(flat, 4096), nn.ReLU(), *head]
        nets[name] = (layers, (3, size, size))
    return nets


@pytest.mark.parametrize("name", sorted(TOTAL_PARAMS))
def test_parameters_shapes_and_macs_match_torch(name):
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    batch = 2
    summary = summarize(parse(name), batch=batch)
    with torch.device("meta"):
        layers, input_shape = _torch_networks(torch.nn)[name]
        net = torch.nn.Sequential(*layers)
        x = torch.zeros(batch, *input_shape)
        shapes = []
        with FlopCounterMode(display=False) as counter:
            for layer in net:
                x = layer(x)
                shapes.append(tuple(x.shape))
    assert summary.totals.params == sum(p.numel() for p in net.parameters())
    assert [row.output_shape for row in summary.rows] == shapes
    assert 2 * summary.totals.macs == counter.get_total_flops()  # torch counts a MAC as 2 FLOPs


# ---------------------------------------------------------------------------------------------
# Memory: the estimate is what a real forward keeps


def _kept_bytes(layer) -> int:
    """Bytes of every array the layer's forward saved for its backward, apart from its own
    parameters."""
    own = [p.data for p in layer.parameters()]
    arrays = []
    for item in saved_by(layer):
        if isinstance(item, tuple):
            arrays += [value for value in item if isinstance(value, np.ndarray)]
        elif isinstance(item, np.ndarray):
            arrays.append(item)
    return sum(a.nbytes for a in arrays if not any(a is p for p in own))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "text",
    [
        "INPUT(3x10x10) - CONV(D=4, F=3, S=1, P=1) - RELU - POOL(max, F=2) "
        "- POOL(avg, F=3, S=1, P=1) - CONV(D=6, F=3, S=2) - RELU - FC(7) - RELU - FC(5)",
        # wide layers: channels-last outputs, the bias in the first layer's products
        "INPUT(3x10x10) - CONV(D=32, F=3, P=1) - RELU - POOL(max, F=2) - CONV(D=32, F=3) "
        "- RELU - CONV(D=8, F=3, bias=false) - FC(5)",
        # LeNet-5's second conv stores its output channels-last: FLATTEN then copies
        "INPUT(1x28x28) - CONV(D=6, F=5, P=2) - RELU - POOL(max, F=2) - CONV(D=16, F=5) "
        "- RELU - POOL(max, F=2) - FC(120) - RELU - FC(10)",
    ],
    ids=["narrow", "wide", "lenet"],
)
def test_backward_memory_equals_the_caches_of_a_real_forward(text, dtype):
    batch = 3
    model = build(parse(text), rng=np.random.default_rng(0), dtype=dtype)
    shape = parse(text).input
    x = np.zeros((batch, shape.channels, shape.height, shape.width), dtype=dtype)
    new_outputs = 0
    for layer in model:
        y = layer.forward(x)
        new_outputs += 0 if np.shares_memory(x, y) else y.nbytes
        x = y
    summary = summarize(parse(text), batch=batch, dtype_bytes=np.dtype(dtype).itemsize)
    totals = summary.totals
    assert totals.cache_bytes == sum(_kept_bytes(layer) for layer in model)
    for row, layer in zip(summary.rows, model, strict=True):
        assert row.cache_bytes * batch == _kept_bytes(layer), row.layer
    assert totals.gradient_bytes == sum(p.grad.nbytes for p in model.parameters())
    assert totals.param_bytes == sum(p.data.nbytes for p in model.parameters())
    assert totals.activation_bytes == new_outputs
    assert totals.backward_bytes == totals.cache_bytes + totals.gradient_bytes
    assert totals.training_bytes == totals.param_bytes + totals.backward_bytes


def test_batch_scales_totals_but_not_rows():
    one, four = summarize(parse("lenet5")), summarize(parse("lenet5"), batch=4)
    assert four.rows[0].output_shape == (4, 6, 28, 28)
    assert four.rows[-1].output_shape == (4, 10)
    assert [r.macs for r in four.rows] == [r.macs for r in one.rows]
    assert four.totals.macs == 4 * one.totals.macs == 4 * four.totals.macs_per_example
    assert four.totals.cache_bytes == 4 * one.totals.cache_bytes
    assert four.totals.param_bytes == one.totals.param_bytes


# ---------------------------------------------------------------------------------------------
# No weights, no data


def test_vgg16_needs_no_weights(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("summarize must not build layers or allocate parameters")

    monkeypatch.setattr(cnnkit.arch.convert, "build", refuse)
    monkeypatch.setattr(Parameter, "__init__", refuse)
    assert summarize(parse("vgg16"), batch=256).totals.params == TOTAL_PARAMS["vgg16"]


def test_a_live_model_summarizes_through_architecture_of():
    model = lecture_network((1, 8, 8), 10, rng=np.random.default_rng(0))
    assert summarize(architecture_of(model, (1, 8, 8))) == summarize(parse("lecture"))
    model = Sequential(Conv2d(1, 2, 3, rng=np.random.default_rng(0)), ReLU(), MaxPool2d(2))
    model.append(AvgPool2d(2)).append(Flatten()).append(Linear(8, 3, rng=np.random.default_rng(1)))
    summary = summarize(architecture_of(model, (1, 10, 10)))
    assert summary.totals.params == sum(p.size for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# floor, errors


def test_floor_rounding_shows_the_fraction_and_the_unread_rows():
    row = summarize(parse("alexnet-torchvision")).rows[0]
    assert row.formula == "(224 - 11 + 2*2)/4 + 1 = 55.25 -> 55 (floor)"
    assert row.notes == (  # only padding goes unread: strict would accept it too
        "the last padding row (227 of 0..227) is never read: the same as padding 2 before and 1 "
        "after",
        "the last padding column (227 of 0..227) is never read: the same as padding 2 before and "
        "1 after",
    )
    arch = parse("INPUT(3x10x10) - CONV(D=2, F=3, S=2)")
    assert summarize(arch, floor=True).rows[0].formula == "(10 - 3 + 2*0)/2 + 1 = 4.5 -> 4 (floor)"


def test_shape_problems_raise_one_line_each():
    arch = parse("INPUT(3x10x10) - CONV(D=2, F=3, S=2) - POOL(F=3, S=2)")
    with pytest.raises(ShapeError, match=r"(?s)^layer 0 CONV.*4\.5 is not a whole number.*\n"):
        summarize(arch)


def test_missing_input_size_says_how_to_give_it():
    with pytest.raises(ShapeError, match=r"no input size; start it with INPUT\(CxHxW\)"):
        summarize(parse("CONV(D=2, F=3) - FC(10)"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch": 0}, "summarize: batch must be a whole number >= 1, got 0; e.g. batch=4"),
        ({"batch": 2.0}, "summarize: batch must be a whole number >= 1, got 2.0"),
        ({"dtype_bytes": -4}, "summarize: dtype_bytes must be a whole number >= 1, got -4"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        summarize(parse("lenet5"), **kwargs)


def test_a_non_architecture_is_refused():
    with pytest.raises(DTypeError, match=r"an Architecture or a model, got int; e.g. summarize"):
        summarize(3)
    assert summarize("lenet5") == summarize(parse("lenet5"))


# ---------------------------------------------------------------------------------------------
# Renderings


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "alexnet-torchvision", "lenet5"])
def test_table_fits_100_columns(name):
    table = summarize(parse(name), batch=256).table()
    assert max(len(line) for line in table.splitlines()) <= 100
    assert str(summarize(parse(name), batch=256)) == table


def test_vgg16_layer_names_stay_on_one_line(vgg16):
    table = vgg16.table()
    assert re.search(
        r"^ 2  CONV\(D=64,F=3,S=1,P=1\) +224x224x64 +36,928 +1,849,688,064 ", table, re.M
    )


def test_table_shows_the_lecture_numbers(alexnet):
    table = alexnet.table()
    assert "(227 - 11 + 2*0)/4 + 1 = 55" in table
    assert "without sharing 105,705,600" in table
    assert "inputs/unit 363 (FC: 154,587)" in table
    assert "NCHW 1x96x55x55" in table
    assert re.search(
        r"^parameters +62,378,344 \(trainable 62,378,344, non-trainable 0\)", table, re.M
    )


def test_json_is_stable_and_documented(alexnet):
    text = alexnet.to_json()
    assert text == summarize(parse("alexnet")).to_json()
    data = json.loads(text)
    assert data["schema"] == SCHEMA == "cnnkit.summary/3"
    assert data["input_shape"] == [3, 227, 227] and data["batch"] == 1
    assert data["dtype_bytes"] == 4 and data["floor"] is False
    assert data["architecture"] == parse("alexnet").text()
    conv1 = data["rows"][0]
    assert conv1["output_shape"] == [1, 96, 55, 55]
    assert conv1["receptive_field"] == [11, 11] and conv1["jump"] == [4, 4]
    assert (conv1["params"], conv1["unshared_params"]) == (34944, 105705600)
    assert data["rows"][14]["receptive_field"] is None
    assert data["totals"]["params"] == TOTAL_PARAMS["alexnet"]
    documented = summary_module.__doc__
    keys = [*data, *data["rows"][0], *data["totals"]]
    assert [key for key in keys if f'"{key}"' not in documented] == []
    integer_keys = ["index", "params", "unshared_params", "connections", "macs", "cache_bytes"]
    assert all(type(row[key]) is int for row in data["rows"] for key in integer_keys)


def test_csv_parses_with_one_line_per_layer(alexnet):
    records = list(csv.DictReader(io.StringIO(alexnet.csv())))
    assert tuple(records[0]) == CSV_FIELDS
    assert len(records) == len(alexnet.rows)
    conv1 = records[0]
    assert conv1["formula"] == "(227 - 11 + 2*0)/4 + 1 = 55"
    assert int(conv1["unshared_params"]) == 105_705_600
    assert conv1["output_shape"] == "1x96x55x55"
    assert (conv1["receptive_field_h"], conv1["jump_w"]) == ("11", "4")
    assert records[14]["receptive_field_h"] == "" and records[1]["fc_connections"] == ""
    assert sum(int(r["params"]) for r in records) == TOTAL_PARAMS["alexnet"]
    assert [key for key in CSV_FIELDS if key not in summary_module.__doc__] == []


def test_markdown_has_a_row_per_layer_and_the_totals(alexnet):
    text = alexnet.markdown()
    table_lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table_lines) == 2 + len(alexnet.rows)
    assert len({line.count(" | ") for line in table_lines[2:]}) == 1
    assert "| 0 | `CONV(D=96, F=11, S=4, P=0)` | 55x55x96 | 1x96x55x55 |" in text
    assert "- **parameters**: 62,378,344" in text


@pytest.mark.parametrize("depths", [(16,), (32,), (16, 32), (32, 16)])
def test_flatten_memory_matches_whether_the_engine_copies(depths):
    from cnnkit import lecture_network

    model = lecture_network((1, 8, 8), 10, depths=depths, rng=np.random.default_rng(0))
    x = np.zeros((1, 1, 8, 8), np.float32)
    for layer in model.layers[:-1]:
        previous, x = x, layer.forward(x)
    copies = not np.shares_memory(x, previous)
    flatten = summarize(architecture_of(model, (1, 8, 8))).rows[-2]
    assert flatten.kind == "FLATTEN"
    assert flatten.activation_bytes == (x.nbytes if copies else 0)


def test_cnnkit_shape_never_prints_a_fraction_as_whole(capsys):
    from cnnkit import cli

    assert cli.main(["shape", "-I", "100000", "-F", "1", "-S", "100000", "--floor"]) == 0
    assert capsys.readouterr().out.startswith(  # possible: the stride skips the rest anyway
        "(100000 - 1 + 2*0)/100000 + 1 = 1 + 99999/100000 -> 1: possible"
    )  # was "= 2 -> floor 1"
    assert cli.main(["shape", "-I", "1000000000001", "-F", "2", "-S", "2", "--floor"]) == 0
    assert "= 500000000000 + 1/2 -> floor 500000000000" in capsys.readouterr().out  # was 5e+11
