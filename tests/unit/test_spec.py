"""Architecture strings: grammar, round trips, built-in networks, and parser errors."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit import CnnkitError, Conv2d, Flatten, Linear, MaxPool2d, ShapeError
from cnnkit.arch import ARCHITECTURES, SpecError, from_spec, parse, trace


def count(model):
    return sum(p.size for p in model.parameters())


def test_lecture_grammar_with_defaults_and_implied_flatten():
    model = from_spec(
        "INPUT(3x227x227) - CONV(D=96, F=11, S=4, P=0) - RELU - POOL(F=3, S=2) - FC(10)",
        rng=np.random.default_rng(0),
    )
    assert [type(layer).__name__ for layer in model] == [
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "Flatten",
        "Linear",
    ]
    assert model[0].kernel_size == (11, 11) and model[0].stride == (4, 4)
    assert model[2].stride == (2, 2)
    assert model[4].in_features == 27 * 27 * 96  # inferred, nobody computes it by hand
    assert model.output_shape((2, 3, 227, 227)) == (2, 10)


def test_case_and_spaces_do_not_matter():
    a = parse("INPUT(1x28x28) - CONV(D=8, F=3, P=1) - RELU - POOL(max, F=2) - FC(10)")
    b = parse("input(1x28x28)-conv(d=8,f=3,p=1)-relu-pool(MAX,f=2)-fc(10)")
    assert a == b


def test_defaults():
    arch = parse("INPUT(1x8x8) - CONV(D=4, F=3) - POOL(F=2) - POOL(avg, F=3, S=1, P=1)")
    conv, pool, avg = arch.layers
    assert (conv.get("stride"), conv.get("padding")) == ((1, 1), (0, 0))
    assert pool.get("stride") == (2, 2) and pool.get("kind") == "max"
    assert avg.get("kind") == "avg" and avg.get("padding") == (1, 1)


def test_same_padding_and_pairs():
    model = from_spec("INPUT(2x9x7) - CONV(D=3, F=4, P=same) - CONV(D=2, F=3x1, S=2x1, P=1x0)")
    assert model[0].get_config()["padding"] == "same" and model[0].padding_mode == "zeros"
    assert model[1].kernel_size == (3, 1) and model[1].stride == (2, 1)
    assert model.output_shape((1, 2, 9, 7)) == (1, 2, 5, 7)


@pytest.mark.parametrize("joiner", [" x 3", "x3", " * 3", " × 3"])
def test_repetition(joiner):
    arch = parse(f"INPUT(3x32x32) - [CONV(D=32, F=3, P=1) - RELU - POOL(F=2)]{joiner} - FC(10)")
    kinds = [layer.keyword for layer in arch.layers]
    assert kinds == ["CONV", "RELU", "POOL"] * 3 + ["FLATTEN", "FC"]
    assert trace(arch).steps[-1].output_shape == (10,)


def test_nested_repetition():
    arch = parse("INPUT(1x8x8) - [[RELU] x 2 - FLATTEN] x 1")
    assert len(arch.layers) == 3


def test_explicit_flatten_is_not_doubled():
    model = from_spec("INPUT(1x4x4) - FLATTEN - FC(3)")
    assert sum(isinstance(layer, Flatten) for layer in model) == 1


def test_fc_input_fixed_by_hand_is_kept_when_it_agrees():
    model = from_spec("INPUT(1x4x4) - FC(in=16, 3)")
    assert model[1].in_features == 16


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("lenet5", 61_706),
        ("alexnet", 62_378_344),
        ("alexnet-torchvision", 61_100_840),
        ("vgg16", 138_357_544),
    ],
)
def test_published_parameter_totals(name, params):
    arch = parse(name)
    traced = trace(arch)
    assert not traced.problems
    total = 0
    for step in traced.steps:  # counted from the traced shapes: no weights are allocated
        config = dict(step.spec.config)
        if step.spec.keyword == "CONV":
            kh, kw = config["kernel_size"]
            total += config["out_channels"] * (step.input_shape[0] * kh * kw + config["bias"])
        elif step.spec.keyword == "FC":
            total += config["out_features"] * (step.input_shape[0] + config["bias"])
    assert total == params
    assert total == sum(p.size for step in traced.steps for p in step.layer.parameters())
    assert all(p.is_meta for step in traced.steps for p in step.layer.parameters())


def test_lenet5_built_weights_match_its_published_count():
    assert count(from_spec("lenet5", rng=np.random.default_rng(0))) == 61_706


def test_alexnet_conv1_from_the_lecture():
    model = from_spec("alexnet-conv1", rng=np.random.default_rng(0))
    assert model.output_shape((1, 3, 227, 227)) == (1, 96, 55, 55)
    assert count(model) == 34_944


def test_lenet5_counts_match_pytorch():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    reference = nn.Sequential(
        nn.Conv2d(1, 6, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )
    ours = from_spec("lenet5", rng=np.random.default_rng(0))
    assert [tuple(p.shape) for p in reference.parameters()] == [p.shape for p in ours.parameters()]


def test_alexnet_torchvision_shapes_match_pytorch_floor_rounding():
    torch = pytest.importorskip("torch")
    conv = torch.nn.Conv2d(3, 64, 11, stride=4, padding=2)
    with torch.no_grad():
        torch_hw = tuple(conv(torch.zeros(1, 3, 224, 224)).shape[2:])
    step = trace(parse("alexnet-torchvision")).steps[0]
    assert step.output_shape[1:] == torch_hw == (55, 55)
    assert any("never read" in note for note in step.notes)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_builtin_round_trips(name):
    arch = parse(name)
    assert parse(arch.text()) == arch


@pytest.mark.parametrize(
    "text",
    [
        "INPUT(1x8x8) - CONV(D=16, F=3, P=1) - RELU - POOL(F=2) - CONV(D=32, F=3, P=1) - FC(10)",
        "INPUT(3x9x7) - CONV(D=3, F=4, P=same, bias=false) - POOL(avg, F=3, S=1, P=1) - FC(4)",
        "INPUT(1x10x10) - CONV(D=2, F=3, S=2, round=floor) - FLATTEN - FC(in=32, 3, bias=false)",
    ],
)
def test_model_to_spec_round_trip(text):
    model = from_spec(text, rng=np.random.default_rng(0))
    again = from_spec(model.to_spec(), rng=np.random.default_rng(0))
    assert [repr(layer) for layer in again] == [repr(layer) for layer in model]
    assert again.input_shape == model.input_shape
    assert again.to_spec() == model.to_spec()


def test_to_spec_of_a_hand_built_model():
    from cnnkit import ReLU, Sequential

    rng = np.random.default_rng(0)
    model = Sequential(
        Conv2d(1, 4, 3, padding=1, rng=rng),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(64, 10, rng=rng),
    )
    text = model.to_spec(input_shape=(1, 8, 8))
    assert text == ("INPUT(1x8x8) - CONV(D=4, F=3, S=1, P=1) - RELU - POOL(max, F=2, S=2) - FC(10)")
    assert (
        model.to_spec() == "CONV(D=4, F=3, S=1, P=1) - RELU - POOL(max, F=2, S=2) - FC(in=64, 10)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CONV(D=96, F=11, S=4 P=0)", "col 21: expected ',' or ')', found 'P'"),
        ("CONV(D=96, F=11", "col 16: expected ',' or ')', found the end of the string"),
        (
            "CONVV(D=1, F=3)",
            "col 1: unknown layer 'CONVV'; did you mean CONV? the registered layers are BN, "
            "BN1D, CONV, DROPOUT, DROPOUT2D, FC",
        ),
        ("LSTM(64)", "col 1: unknown layer 'LSTM'; the registered layers are BN, BN1D, CONV, "),
        ("INPUT(axbxc) - RELU", "col 7: INPUT size must be CxHxW or HxW, got axbxc"),
        ("INPUT(1x28x28)", "col 15: INPUT(1x28x28) has no layers after it"),
        ("CONV(D=1e23, F=3)", "col 6: D must be a positive whole number, got 1e23"),
        ("CONV(D=2000000, F=3)", "col 6: D must be at most 1,048,576, got 2000000"),
        ("CONV(D=1.5, F=3)", "col 6: D must be a positive whole number, got 1.5"),
        ("CONV(D=-4, F=3)", "col 6: D must be a positive whole number, got -4"),
        ("MAXPOOL(max, F=2)", "col 9: MAXPOOL got an unexpected value max; name it"),
        ("INPUT(1x8x8) - CONV(F=3)", "col 16: CONV needs D (number of filters)"),
        (
            "CONV(D=1, F=3, Q=2)",
            "col 16: CONV has no argument 'q'; it takes D, F, S, P, dilation, groups, bias, "
            "padding_mode",
        ),
        ("CONV(D=0, F=3)", "col 6: D must be a positive whole number, got 0"),
        ("CONV(D=1, F=3, S=2, P=same)", "col 21: P=same needs S=1"),
        ("POOL(F=2, P=2)", "col 11: POOL padding must be at most F/2 = 1, got 2"),
        ("POOL(min, F=2)", "col 6: kind must be max or avg, got min"),
        ("RELU(3)", "col 6: RELU takes no arguments"),
        ("RELU - INPUT(1x2x2)", "col 8: INPUT can only come first"),
        ("INPUT(3) - RELU", "col 7: INPUT size must be CxHxW or HxW, got 3"),
        ("RELU RELU", "col 5: expected '-' between layers, found 'RELU'"),
        ("RELU -", "col 7: expected a layer"),
        ("[RELU - RELU", "col 13: expected '-' or ']'"),
        ("[RELU] x 0", "col 10: repeat count must be 1..1000, got 0"),
        ("[RELU] 3", "col 7: expected 'x N' after ']'"),
        ("RELU -> FC(10)", "col 6: layers are joined with '-', found '->'"),
        ("RELU - FC(10) ; x", "col 15: unexpected character ';'"),
        ("", "col 1: empty architecture"),
    ],
)
def test_parser_errors_point_at_the_column(text, message):
    with pytest.raises(SpecError, match="^" + re.escape(message)):
        parse(text)


def test_repetition_that_explodes_is_refused():
    with pytest.raises(SpecError, match="more than 10000 layers"):
        parse("[[[RELU] x 100] x 100] x 100")


def test_impossible_stack_lists_every_problem_with_lecture_letters():
    arch = parse(
        "INPUT(1x10x10) - RELU - RELU - CONV(D=16, F=3, S=2, P=0) - RELU - FLATTEN - FC(in=5, 10)"
    )
    traced = trace(arch)
    assert traced.problems == (
        "layer 2 CONV(D=16, F=3, S=2, P=0) on 10x10: (10 - 3 + 2*0)/2 + 1 = 4.5 is not a whole "
        "number; use S=1 (-> 8x8) or F=2 (-> 5x5), or round=floor (-> 4, as PyTorch; "
        "--floor for every layer)",
        "layer 5 FC(in=5, 10) on 256 values: in=5 does not match the 256 values it receives; "
        "use FC(10) to infer it or in=256",
    )
    with pytest.raises(ShapeError, match=r"(?s)layer 2 CONV.*\nlayer 5 FC"):
        from_spec(arch.text())


def test_window_larger_than_input_stops_the_trace():
    traced = trace(parse("INPUT(1x4x4) - POOL(F=5) - FC(3)"))
    assert traced.problems == (
        "layer 0 POOL(max, F=5, S=5) on 4x4: the 5-wide window is larger than the padded input "
        "(4 + 2*0 = 4); use F=4 (-> 1x1)",
    )


def test_floor_computes_as_pytorch_and_names_the_dropped_rows():
    traced = trace(parse("INPUT(1x10x10) - CONV(D=16, F=3, S=2)"), floor=True)
    assert not traced.problems
    assert traced.steps[0].output_shape == (16, 4, 4)
    assert traced.steps[0].notes == (
        "floor: padded rows 9 (of 0..9) are never read",
        "floor: padded columns 9 (of 0..9) are never read",
    )


def test_missing_input_size():
    with pytest.raises(ShapeError, match=r"has no input size; start it with INPUT\(CxHxW\)"):
        from_spec("CONV(D=1, F=3)")
    assert from_spec("CONV(D=1, F=3)", input_shape=(2, 5, 5)).output_shape((1, 2, 5, 5)) == (
        1,
        1,
        3,
        3,
    )


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="INPUTCONVRELUPOOLFCDSxX()[]=,-*0123456789 abcfgmq", max_size=60))
def test_fuzzed_strings_raise_only_cnnkit_errors(text):
    try:
        arch = parse(text)
        if arch.input is not None:
            trace(arch)
    except CnnkitError:
        pass


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["CONV(D=2, F=3, P=1)", "RELU", "POOL(F=2)", "POOL(avg, F=1)", "CONV(D=3, F=1)"]
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["", " - FC(5)"]),
)
def test_generated_specs_round_trip(parts, head):
    text = "INPUT(2x16x16) - " + " - ".join(parts) + head
    arch = parse(text)
    assert parse(arch.text()) == arch
