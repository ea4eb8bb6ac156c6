"""Conv2d's dilation, groups (depthwise included) and padding modes: PyTorch's numbers on both
engines in float32 and float64 (output, dx, dweight, dbias), fast against reference on random
shapes, a central-difference check, PyTorch's initialisation, one-line errors, strings that
round-trip, and what summaries and explanations say about such a layer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnkit
from cnnkit import ConfigError, ShapeError, SpecError
from cnnkit.explain import explain_sharing, explain_sparse
from cnnkit.functional.fast.jit import use_jit
from cnnkit.nn.context import saved_by

torch = pytest.importorskip("torch")

TOLERANCE = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-9, atol=1e-9)}
ENGINES = ["fast", "fast-nojit", "reference"]

# name: (Conv2d arguments, input shape (N, C, H, W))
CASES = {
    "dilation 2": (dict(in_channels=3, out_channels=4, kernel_size=3, dilation=2), (2, 3, 9, 8)),
    "dilation 3 padded": (
        dict(in_channels=2, out_channels=3, kernel_size=3, padding=3, dilation=3),
        (2, 2, 7, 8),
    ),
    "dilation 1x3 stride 2": (
        dict(
            in_channels=2, out_channels=3, kernel_size=(2, 3), stride=2, padding=1, dilation=(1, 3)
        ),
        (2, 2, 9, 10),
    ),
    "dilation 2 wide": (
        dict(in_channels=16, out_channels=32, kernel_size=3, padding=2, dilation=2),
        (2, 16, 8, 8),
    ),
    "depthwise": (
        dict(in_channels=4, out_channels=4, kernel_size=3, padding=1, groups=4),
        (2, 4, 7, 6),
    ),
    "depthwise x2 stride 2": (
        dict(in_channels=3, out_channels=6, kernel_size=3, stride=2, padding=1, groups=3),
        (2, 3, 9, 8),
    ),
    "depthwise dilated no bias": (
        dict(
            in_channels=5,
            out_channels=5,
            kernel_size=(3, 2),
            padding=(2, 1),
            dilation=2,
            groups=5,
            bias=False,
        ),
        (2, 5, 8, 7),
    ),
    "groups 2": (
        dict(in_channels=4, out_channels=6, kernel_size=3, padding=1, groups=2),
        (2, 4, 6, 7),
    ),
    "groups 3 stride 2 dilated": (
        dict(
            in_channels=6, out_channels=9, kernel_size=3, stride=2, padding=2, dilation=2, groups=3
        ),
        (2, 6, 9, 9),
    ),
    "groups 2 no bias 1x1": (
        dict(in_channels=8, out_channels=4, kernel_size=1, groups=2, bias=False),
        (2, 8, 5, 4),
    ),
    "reflect": (
        dict(in_channels=2, out_channels=3, kernel_size=3, padding=(1, 2), padding_mode="reflect"),
        (2, 2, 6, 5),
    ),
    "replicate stride 2": (
        dict(
            in_channels=2,
            out_channels=3,
            kernel_size=3,
            stride=2,
            padding=2,
            padding_mode="replicate",
        ),
        (2, 2, 7, 7),
    ),
    "circular full wrap": (
        dict(
            in_channels=2,
            out_channels=2,
            kernel_size=(3, 5),
            padding=(3, 4),
            padding_mode="circular",
        ),
        (2, 2, 3, 4),
    ),
    "reflect depthwise dilated": (
        dict(
            in_channels=4,
            out_channels=4,
            kernel_size=3,
            padding=2,
            dilation=2,
            groups=4,
            padding_mode="reflect",
        ),
        (2, 4, 6, 6),
    ),
    "replicate groups same": (
        dict(
            in_channels=4,
            out_channels=6,
            kernel_size=4,
            padding="same",
            dilation=1,
            groups=2,
            padding_mode="replicate",
        ),
        (2, 4, 6, 5),
    ),
    "same dilation 2": (
        dict(in_channels=2, out_channels=3, kernel_size=3, padding="same", dilation=2),
        (2, 2, 7, 6),
    ),
    "same dilation 3 even filter": (
        dict(in_channels=2, out_channels=2, kernel_size=(2, 4), padding="same", dilation=3),
        (2, 2, 8, 9),
    ),
    "valid dilated": (
        dict(in_channels=2, out_channels=2, kernel_size=2, padding="valid", dilation=2),
        (1, 2, 5, 5),
    ),
}


def _torch_module(args: dict, dtype):
    module = torch.nn.Conv2d(**args, dtype=torch.float64)
    return module


def _ours(args: dict, module, dtype) -> cnnkit.Conv2d:
    layer = cnnkit.Conv2d(**args, dtype=dtype, rng=np.random.default_rng(0), rounding="floor")
    layer.weight.data[...] = module.weight.detach().numpy()
    if module.bias is not None:
        layer.bias.data[...] = module.bias.detach().numpy()
    return layer


def _run(layer, x, dy, engine: str):
    with cnnkit.use_engine(engine.split("-")[0]), use_jit(engine != "fast-nojit"):
        y = layer.forward(x)
        dx = layer.backward(dy)
    return y, dx


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # torch's
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CASES))
def test_matches_pytorch(name, dtype, engine):
    args, shape = CASES[name]
    module = _torch_module(args, dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    tx = torch.from_numpy(x).requires_grad_()
    ty = module(tx)
    dy = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(dy))
    layer = _ours(args, module, dtype)
    y, dx = _run(layer, x.astype(dtype), dy.astype(dtype), engine)
    assert y.dtype == dx.dtype == layer.weight.grad.dtype == dtype
    assert layer.weight.shape == tuple(module.weight.shape)
    np.testing.assert_allclose(y, ty.detach().numpy(), **TOLERANCE[dtype], err_msg="y")
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOLERANCE[dtype], err_msg="dx")
    expected_dw = module.weight.grad.numpy()
    np.testing.assert_allclose(layer.weight.grad, expected_dw, **TOLERANCE[dtype], err_msg="dw")
    if module.bias is not None:
        expected_db = module.bias.grad.numpy()
        np.testing.assert_allclose(layer.bias.grad, expected_db, **TOLERANCE[dtype], err_msg="db")


@st.composite
def grouped_configs(draw):
    """Small grouped, dilated, padded convolutions whose padded input holds the window."""
    groups = draw(st.integers(1, 3))
    per_group = draw(st.sampled_from([1, 1, 2, 3]))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    spans = [d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True)]
    # reflect needs padding < size, circular padding <= size; every window must fit
    low = [max(s - 2 * p, p + 1, 1) for s, p in zip(spans, padding, strict=True)]
    return {
        "args": dict(
            in_channels=groups * per_group,
            out_channels=groups * draw(st.integers(1, 3)),
            kernel_size=kernel,
            stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=draw(st.booleans()),
            padding_mode=mode,
        ),
        "shape": (
            draw(st.integers(1, 3)),
            groups * per_group,
            *(draw(st.integers(size, size + 5)) for size in low),
        ),
        "seed": draw(st.integers(0, 2**16)),
    }


@settings(max_examples=25, deadline=None)
@given(grouped_configs())
def test_fast_equals_reference_on_random_configs(config):
    args, shape = config["args"], config["shape"]
    rng = np.random.default_rng(config["seed"])
    layer = cnnkit.Conv2d(**args, dtype=np.float64, rng=rng, rounding="floor")
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(layer.output_shape(shape))
    results = {}
    for engine in ENGINES:
        layer.zero_grad()
        y, dx = _run(layer, x, dy, engine)
        grads = [p.grad.copy() for p in layer.parameters()]
        results[engine] = [y, dx, *grads]
    for engine in ("fast", "fast-nojit"):
        for ours, expected in zip(results[engine], results["reference"], strict=True):
            np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize(
    "args",
    [
        dict(
            in_channels=4,
            out_channels=6,
            kernel_size=3,
            padding=2,
            dilation=2,
            groups=2,
            padding_mode="reflect",
        ),
        dict(
            in_channels=3,
            out_channels=6,
            kernel_size=(2, 3),
            stride=2,
            padding=(1, 2),
            groups=3,
            padding_mode="circular",
        ),
    ],
    ids=["grouped dilated reflect", "depthwise circular"],
)
def test_gradients_pass_a_central_difference_check(args):
    layer = cnnkit.Conv2d(**args, dtype=np.float64, rng=np.random.default_rng(3), rounding="floor")
    x = np.random.default_rng(4).standard_normal((2, args["in_channels"], 6, 7))
    report = cnnkit.gradcheck(layer, x)
    assert [check.name for check in report.checks] == ["dx", "weight", "bias"]
    assert report.ok, f"\n{report}"


def test_initialisation_bound_uses_the_channels_one_filter_reads():
    # PyTorch: uniform in +-1/sqrt(fan_in), fan_in = C/groups*KH*KW (1/3 here, not 1/sqrt(288))
    layer = cnnkit.Conv2d(32, 64, 3, groups=32, rng=np.random.default_rng(0))
    assert layer.weight.shape == tuple(torch.nn.Conv2d(32, 64, 3, groups=32).weight.shape)
    bound = 1 / 3
    for values in (layer.weight.data, layer.bias.data):
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.9 * bound
    layer.reset_parameters(np.random.default_rng(1))  # drawn again: the same bound
    assert 0.9 * bound < np.abs(layer.weight.data).max() <= bound


@pytest.mark.parametrize(
    ("make", "error", "pattern"),
    [
        (
            lambda: cnnkit.Conv2d(32, 32, 3, groups=5),
            ConfigError,
            r"^Conv2d: groups=5 must divide both in_channels=32 and out_channels=32; "
            r"use groups=4 or 8$",
        ),
        (
            lambda: cnnkit.Conv2d(6, 9, 3, groups=6),
            ConfigError,
            r"^Conv2d: groups=6 must divide both in_channels=6 and out_channels=9; use groups=3$",
        ),
        (
            lambda: cnnkit.Conv2d(3, 8, 3, dilation=0),
            ConfigError,
            r"^Conv2d: dilation must be >= 1, got 0; use dilation=1 for neighbouring taps",
        ),
        (
            lambda: cnnkit.Conv2d(3, 8, 3, dilation=(2, -1)),
            ConfigError,
            r"^Conv2d: dilation must be >= 1, got -1; use dilation=1",
        ),
        (
            lambda: cnnkit.Conv2d(3, 8, 3, padding_mode="mirror"),
            ConfigError,
            r"^Conv2d: padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular', "
            r"got 'mirror'",
        ),
        (
            lambda: cnnkit.Conv2d(1, 1, 3, padding=3, padding_mode="reflect").forward(
                np.zeros((1, 1, 3, 5), np.float32)
            ),
            ShapeError,
            r"^Conv2d\(1, 1, kernel_size=3, padding=3, padding_mode='reflect'\): "
            r"padding_mode='reflect' .* padding 3 on a height of 3; use padding <= 2 or "
            r"padding_mode='replicate'$",
        ),
        (
            lambda: cnnkit.Conv2d(1, 1, 3, padding=(0, 5), padding_mode="circular").output_shape(
                (1, 1, 8, 4)
            ),
            ShapeError,
            r"padding_mode='circular' .* padding 5 on a width of 4; use padding <= 4",
        ),
        (
            lambda: cnnkit.Conv2d(1, 1, 3, stride=2, padding="same", dilation=2),
            ConfigError,
            r"^Conv2d: padding='same' needs stride=1",
        ),
    ],
    ids=[
        "groups",
        "groups one fix",
        "dilation",
        "dilation pair",
        "mode",
        "reflect",
        "circular",
        "same",
    ],
)
def test_bad_options_are_one_line_naming_the_values_and_a_fix(make, error, pattern):
    with pytest.raises(error, match=pattern) as caught:
        make()
    assert "\n" not in str(caught.value)


def test_same_padding_with_dilation_is_pytorchs():
    for kernel, dilation in [(3, 2), (2, 3), (4, 1), ((3, 2), (1, 3))]:
        layer = cnnkit.Conv2d(1, 1, kernel, padding="same", dilation=dilation)
        module = torch.nn.Conv2d(1, 1, kernel, padding="same", dilation=dilation)
        assert layer.output_shape((1, 1, 7, 8)) == tuple(module(torch.zeros(1, 1, 7, 8)).shape)
    assert cnnkit.Conv2d(1, 1, 3, padding="same", dilation=2).sides == ((2, 2), (2, 2))
    assert cnnkit.Conv2d(1, 1, 2, padding="same", dilation=3).sides == ((1, 2), (1, 2))


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        (
            "INPUT(3x16x16) - CONV(D=8, F=3, P=1, dilation=2)",
            "CONV(D=8, F=3, S=1, P=1, dilation=2)",
        ),
        ("INPUT(16x8x8) - CONV(D=16, F=3, P=1, groups=16)", "CONV(D=16, F=3, S=1, P=1, groups=16)"),
        (
            "INPUT(3x8x8) - CONV(D=8, F=3, P=1, padding_mode=reflect)",
            "CONV(D=8, F=3, S=1, P=1, padding_mode=reflect)",
        ),
        (
            "INPUT(4x9x9) - CONV(D=8, F=3x2, S=2, P=same, dilation=1x2, groups=2, bias=false, "
            "padding_mode=circular)",
            None,
        ),
    ],
)
def test_strings_parse_build_and_round_trip(text, canonical):
    if canonical is None:  # S=2 with P=same is refused: the string itself is the error
        with pytest.raises(SpecError, match=r"^col \d+: P=same needs S=1"):
            cnnkit.parse(text)
        return
    arch = cnnkit.parse(text)
    model = cnnkit.from_spec(text, rng=np.random.default_rng(0))
    written = model.to_spec()
    assert written.endswith(canonical)
    assert cnnkit.parse(written) == arch
    config = dict(arch.layers[0].config)
    again = model[0].get_config()
    assert all(again[name] == value for name, value in config.items())


def test_a_round_trip_of_every_option_together():
    layer = cnnkit.Conv2d(
        4, 8, (3, 2), padding=(2, 1), dilation=(2, 1), groups=2, bias=False, padding_mode="circular"
    )
    text = cnnkit.Sequential(layer).to_spec((4, 9, 9))
    assert text == (
        "INPUT(4x9x9) - CONV(D=8, F=3x2, S=1, P=2x1, dilation=2x1, groups=2, bias=false, "
        "padding_mode=circular)"
    )
    assert (
        repr(cnnkit.from_spec(text)[0])
        == repr(layer)
        == (
            "Conv2d(4, 8, kernel_size=(3, 2), padding=(2, 1), dilation=(2, 1), groups=2, "
            "bias=False, padding_mode='circular')"
        )
    )


@pytest.mark.parametrize(
    ("text", "error", "pattern"),
    [
        (
            "INPUT(3x8x8) - CONV(D=8, F=3, groups=3)",
            SpecError,
            r"^col 31: groups=3 must divide D=8 and the input channels C; use one that divides "
            r"both \(1, 2, 4 or 8 divide D=8\)$",
        ),
        (
            "INPUT(3x8x8) - CONV(D=8, F=3, dilation=0)",
            SpecError,
            r"^col 31: dilation must be N or HxW|^col 31: dilation must be a positive",
        ),
        (
            "INPUT(3x8x8) - CONV(D=8, F=3, padding_mode=mirror)",
            SpecError,
            r"^col 31: padding_mode must be zeros or reflect",
        ),
        (
            "INPUT(3x8x8) - CONV(D=6, F=3, groups=2)",
            ShapeError,
            r"^layer 0 CONV\(D=6, F=3, S=1, P=0, groups=2\) on 8x8: Conv2d: groups=2 must divide "
            r"both in_channels=3 and out_channels=6; use groups=1 or 3$",
        ),
        (
            "INPUT(1x2x2) - CONV(D=1, F=1, P=2, padding_mode=reflect)",
            ShapeError,
            r"^layer 0 CONV\(D=1, F=1, S=1, P=2, padding_mode=reflect\) on 2x2: .*padding 2 on a "
            r"height of 2; use padding <= 1",
        ),
    ],
    ids=["groups and D", "dilation 0", "mode", "groups and C", "reflect"],
)
def test_string_problems_point_at_the_argument_or_the_layer(text, error, pattern):
    with pytest.raises(error, match=pattern) as caught:
        cnnkit.summarize(text)
    assert "\n" not in str(caught.value)


def test_summary_counts_a_depthwise_layer_as_pytorch_does():
    text = "INPUT(32x16x16) - CONV(D=32, F=3, P=1, groups=32) - CONV(D=64, F=1) - RELU"
    rows = cnnkit.summarize(text).rows
    module = torch.nn.Conv2d(32, 32, 3, padding=1, groups=32)
    assert rows[0].params == sum(p.numel() for p in module.parameters()) == 32 * 9 + 32
    assert rows[0].macs == 16 * 16 * 32 * 9  # one multiply-add per weight per unit
    assert rows[0].connections == 9  # a unit reads one depth slice: F*F*C/g
    assert rows[0].unshared_params == 16 * 16 * 32 * (9 + 1)
    grouped = cnnkit.summarize("INPUT(8x6x6) - CONV(D=12, F=3, groups=4)").rows[0]
    assert grouped.params == sum(
        p.numel() for p in torch.nn.Conv2d(8, 12, 3, groups=4).parameters()
    )
    assert grouped.macs == 4 * 4 * 12 * 2 * 9


def test_summary_shows_the_dilated_formula_and_receptive_field():
    rows = cnnkit.summarize(
        "INPUT(1x9x9) - CONV(D=2, F=3, dilation=2) - CONV(D=2, F=3, dilation=2)"
    ).rows
    assert rows[0].formula == "(9 + 2*0 - 2*(3 - 1) - 1)/1 + 1 = 5"
    assert rows[0].output_shape == (1, 2, 5, 5)
    assert [row.receptive_field for row in rows] == [(5, 5), (9, 9)]  # each adds d(F - 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "text",
    [
        "INPUT(8x10x10) - CONV(D=8, F=3, P=1, groups=8) - CONV(D=16, F=3, P=2, dilation=2) "
        "- CONV(D=16, F=3, groups=4) - CONV(D=32, F=3, P=1, padding_mode=reflect) "
        "- CONV(D=32, F=3, P=1, groups=32, padding_mode=replicate)",
    ],
)
def test_summary_memory_is_what_a_real_forward_keeps(text, dtype):
    model = cnnkit.from_spec(text, rng=np.random.default_rng(0), dtype=dtype)
    x = np.zeros((3, 8, 10, 10), dtype)
    for layer in model:
        x = layer.forward(x)
    summary = cnnkit.summarize(text, batch=3, dtype_bytes=np.dtype(dtype).itemsize)
    for row, layer in zip(summary.rows, model, strict=True):
        kept = [a for item in saved_by(layer) if isinstance(item, tuple) for a in item]
        arrays = [a for a in kept if isinstance(a, np.ndarray) and a is not layer.weight.data]
        assert row.cache_bytes * 3 == sum(a.nbytes for a in arrays), row.layer


def test_explanations_say_what_the_options_change():
    depthwise = cnnkit.Conv2d(16, 16, 3, padding=1, groups=16)
    text = depthwise.explain((1, 16, 8, 8))
    assert (
        "16 filters of 3x3x1" in text
        and "A depthwise conv (groups=16): each filter reads one depth slice." in text
    )
    assert "160 parameters" in text
    dilated = cnnkit.Conv2d(2, 4, 3, padding=2, dilation=2, padding_mode="reflect")
    text = dilated.explain((1, 2, 8, 8))
    assert "(8 + 2*2 - 2*(3 - 1) - 1)/1 + 1 = 8" in text
    assert "3x3x2 taps, 2 apart (dilation), of the 5x5x2 region under it" in text
    assert "padded by P=2 (reflect, not zeros)" in text
    grouped = cnnkit.Conv2d(8, 12, 3, groups=4).explain((1, 8, 6, 6))
    assert "split into 4 groups of 2, and each group's 3 filters read only their group's" in grouped


def test_explain_sharing_and_sparse_count_the_channels_a_filter_reads():
    sharing = explain_sharing("INPUT(32x8x8) - CONV(D=32, F=3, P=1, groups=32) - CONV(D=8, F=1)")
    first = sharing.layers[0]
    assert (first.per_filter, first.shared) == (10, 320)
    assert "each filter reads one depth slice" in sharing.text()
    assert "one filter: 3*3*1 weights + 1 bias = 10 parameters" in sharing.text()
    sparse = explain_sparse("INPUT(4x9x9) - CONV(D=4, F=3, P=2, dilation=2, groups=2)", unit=(0, 2))
    assert sparse.connections == 3 * 3 * 2
    assert sparse.extent(0) == (-2, 2) and sparse.extent(1) == (0, 4)
    text = sparse.text()
    assert "(dilation: taps 2 apart, spanning 5x5 inputs)" in text
    assert "in the 2 channels of its filter's group (groups=2)" in text
    assert "rows -2..2 in steps of 2 (row -2 is zero padding)" in text
    grid = text.splitlines()[-9:]
    assert grid[0].split() == list("#.#.#....")
    assert grid[1].split() == ["."] * 9 and grid[2].split() == list("#.#.#....")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "args",
    [
        dict(in_channels=4, out_channels=4, kernel_size=3, padding=1, groups=4),
        dict(in_channels=4, out_channels=6, kernel_size=3, padding=2, dilation=2, groups=2),
        dict(in_channels=2, out_channels=3, kernel_size=3, padding=1, padding_mode="reflect"),
    ],
    ids=["depthwise", "grouped", "reflect"],
)
def test_two_forwards_before_their_backwards_keep_their_own_caches(args, engine):
    layer = cnnkit.Conv2d(**args, dtype=np.float64, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x1, x2 = (rng.standard_normal((2, args["in_channels"], 6, 6)) for _ in range(2))
    dy1, dy2 = (rng.standard_normal(layer.output_shape(x1.shape)) for _ in range(2))
    alone = []
    for x, dy in ((x1, dy1), (x2, dy2)):
        layer.zero_grad()
        alone.append(_run(layer, x, dy, engine)[1].copy())
    with cnnkit.use_engine(engine.split("-")[0]), use_jit(engine != "fast-nojit"):
        y1 = layer.forward(x1)
        y2 = layer.forward(x2)
        dx2 = layer.backward(dy2)
        dx1 = layer.backward(dy1)
    assert y1 is not y2
    np.testing.assert_allclose(dx1, alone[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx2, alone[1], rtol=1e-12, atol=1e-12)
