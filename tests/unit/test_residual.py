"""Residual blocks: PyTorch's numbers and state_dict keys, strings with branches, shapes that
must agree, summaries with the branches indented, and backprop explained through the sum."""

import json

import numpy as np
import pytest

import cnnkit
from cnnkit import ConfigError, ShapeError, SpecError
from cnnkit.explain import explain_residual_backprop

torch = pytest.importorskip("torch")
from torch_models import block_class  # noqa: E402
from torch_models import resnet20 as torch_resnet20  # noqa: E402

PROJECTION = (
    "INPUT(3x8x8) - CONV(D=4, F=3, P=1) - RELU - RES[CONV(D=4, F=3, P=1) - RELU - "
    "CONV(D=4, F=3, P=1)] - RELU - RES[CONV(D=6, F=3, S=2, P=1, round=floor) - RELU - "
    "CONV(D=6, F=3, P=1) | CONV(D=6, F=1, S=2, round=floor)] - RELU - GAP - FC(5)"
)


TorchBlock = block_class()


def torch_projection_net():
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        TorchBlock(
            nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        ),
        nn.ReLU(),
        TorchBlock(
            nn.Sequential(
                nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1)
            ),
            nn.Sequential(nn.Conv2d(4, 6, 1, stride=2)),
        ),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
    )


def copied(model, theirs, dtype):
    """Their weights into our model, key by key (the keys must be the same)."""
    state = {key: value.detach().numpy() for key, value in theirs.state_dict().items()}
    assert list(model.state_dict()) == list(state)
    model.load_state_dict(state)
    return model.to(dtype)


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_network_of_residual_blocks_matches_pytorch(engine, dtype):
    torch.manual_seed(0)
    theirs = torch_projection_net().to(torch.float64 if dtype == np.float64 else torch.float32)
    ours = copied(cnnkit.from_spec(PROJECTION, rng=np.random.default_rng(0)), theirs, dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
    dy = rng.standard_normal((2, 5)).astype(dtype)
    with cnnkit.use_engine(engine):
        y = ours.forward(x)
        dx = ours.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(dy))
    tolerance = 2e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=tolerance, atol=tolerance)
    for (name, p), (their_name, q) in zip(
        ours.named_parameters(), theirs.named_parameters(), strict=True
    ):
        assert name == their_name
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=tolerance, atol=tolerance)


def test_state_dict_keys_name_body_and_shortcut():
    model = cnnkit.from_spec(PROJECTION, rng=np.random.default_rng(0))
    keys = list(model.state_dict())
    assert "2.body.0.weight" in keys and "4.shortcut.0.bias" in keys
    assert keys == list(torch_projection_net().state_dict())


def test_strings_with_branches_round_trip_and_nest():
    text = (
        "INPUT(2x8x8) - RES[RES[CONV(D=2, F=3, P=1)] - [CONV(D=2, F=3, P=1) - RELU] x 2] - "
        "[RES[CONV(D=2, F=1) | CONV(D=2, F=1)] - RELU] x 2 - FC(3)"
    )
    model = cnnkit.from_spec(text, rng=np.random.default_rng(0))
    assert type(model[0].body[0]) is cnnkit.Residual
    assert len(model[0].body) == 5 and len(model) == 7  # FLATTEN implied before the FC
    spec = cnnkit.to_spec(model)
    assert spec.count("RES[") == 4 and " | " in spec
    assert cnnkit.to_spec(cnnkit.from_spec(spec)) == spec
    assert cnnkit.parse(spec).text() == spec


def test_residual_built_in_python_gives_the_same_string():
    block = cnnkit.Residual(
        cnnkit.Sequential(cnnkit.Conv2d(4, 4, 3, padding=1), cnnkit.ReLU()),
        cnnkit.Sequential(cnnkit.Conv2d(4, 4, 1)),
    )
    model = cnnkit.Sequential(block, input_shape=(4, 6, 6))
    assert cnnkit.to_spec(model) == (
        "INPUT(4x6x6) - RES[CONV(D=4, F=3, S=1, P=1) - RELU | CONV(D=4, F=1, S=1, P=0)]"
    )


def test_branch_shapes_that_differ_are_refused_naming_both():
    with pytest.raises(ShapeError) as caught:
        cnnkit.from_spec("INPUT(4x8x8) - RES[CONV(D=8, F=3, S=2, P=1, round=floor)]")
    message = str(caught.value)
    assert "4x4x8" in message and "8x8x4" in message and "CONV(D=8, F=1, S=2)" in message
    block = cnnkit.Residual(cnnkit.Conv2d(4, 8, 3, padding=1))
    with pytest.raises(ShapeError, match=r"8x8x8 .* 8x8x4"):
        block.output_shape((1, 4, 8, 8))
    with pytest.raises(ShapeError, match="8x8x8"):
        block.forward(np.zeros((1, 4, 8, 8), np.float32))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("INPUT(1x4x4) - RES", "RES needs a body of layers in [...], e.g. RES["),
        ("INPUT(1x4x4) - RELU[RELU]", "RELU takes no branches"),
        ("INPUT(1x4x4) - RES[RELU | RELU | RELU]", "at most 2 branches"),
        ("INPUT(1x4x4) - RES[RELU - ]", "expected a layer"),
        ("INPUT(1x4x4) - RES[RELU", "expected '-', '|' or ']'"),
    ],
)
def test_malformed_branches_are_one_line_errors(text, needle):
    with pytest.raises(SpecError) as caught:
        cnnkit.parse(text)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_a_problem_inside_a_body_names_its_place():
    with pytest.raises(ShapeError) as caught:
        cnnkit.from_spec("INPUT(1x10x10) - RES[RELU - CONV(D=1, F=3, S=2)]")
    assert "body.1" in str(caught.value) and "4.5" in str(caught.value)


def test_only_layers_make_a_residual():
    with pytest.raises(ConfigError, match="not a cnnkit layer"):
        cnnkit.Residual("conv")


def test_a_block_used_twice_accumulates_gradients_like_pytorch():
    conv = cnnkit.Conv2d(2, 2, 3, padding=1, dtype=np.float64, rng=np.random.default_rng(0))
    block = cnnkit.Residual(conv)
    model = cnnkit.Sequential(block, cnnkit.ReLU(), block)
    t_conv = torch.nn.Conv2d(2, 2, 3, padding=1).double()
    with torch.no_grad():
        t_conv.weight.copy_(torch.tensor(conv.weight.data))
        t_conv.bias.copy_(torch.tensor(conv.bias.data))
    x = np.random.default_rng(2).standard_normal((2, 2, 5, 5))
    y = model.forward(x)
    dx = model.backward(np.ones_like(y))
    tx = torch.tensor(x, requires_grad=True)
    h = torch.relu(t_conv(tx) + tx)
    ty = t_conv(h) + h
    ty.sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(conv.weight.grad, t_conv.weight.grad.numpy(), rtol=1e-10)


def test_gradients_pass_a_central_difference_check():
    model = cnnkit.from_spec(
        "INPUT(2x5x5) - RES[CONV(D=2, F=3, P=1) - TANH - CONV(D=2, F=3, P=1)] - "
        "RES[CONV(D=3, F=3, P=1) | CONV(D=3, F=1)] - FC(3)",
        rng=np.random.default_rng(0),
        dtype=np.float64,
    )
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 5))
    assert cnnkit.gradcheck(model, x).ok


def test_first_layer_residual_skips_the_input_gradient_when_asked():
    model = cnnkit.Sequential(cnnkit.Residual(cnnkit.Conv2d(1, 1, 3, padding=1)), cnnkit.ReLU())
    x = np.ones((1, 1, 4, 4), np.float32)
    y = model.forward(x)
    assert model.backward(np.ones_like(y), input_grad=False) is None
    assert np.abs(model[0].body.weight.grad).sum() > 0


def test_summary_indents_the_branches_and_counts_each_parameter_once():
    summary = cnnkit.summarize(PROJECTION)
    model = cnnkit.from_spec(PROJECTION, rng=np.random.default_rng(0))
    assert summary.totals.trainable_params == sum(p.size for p in model.parameters())
    rows = {row.path: row for row in summary.rows}
    block = rows["4"]
    assert block.branches == ("body", "shortcut") and block.depth == 0
    inside = [row for row in summary.rows if row.path.startswith("4.")]
    assert [row.path for row in inside] == ["4.body.0", "4.body.1", "4.body.2", "4.shortcut.0"]
    assert all(row.depth == 1 for row in inside)
    assert block.params == sum(row.params for row in inside)
    assert block.macs == sum(row.macs for row in inside)
    assert rows["2"].notes[-1] == "shortcut: the identity (x itself)"
    table = summary.table()
    assert "RES[body | shortcut]" in table and "     shortcut.0 CONV(D=6" in table
    data = json.loads(summary.to_json())
    assert data["schema"] == "cnnkit.summary/3"
    assert [r["depth"] for r in data["rows"]].count(1) == 7
    live = cnnkit.summarize(model)
    assert [r.path for r in live.rows] == [r.path for r in summary.rows]


def test_receptive_field_of_a_block_covers_both_branches():
    summary = cnnkit.summarize("INPUT(1x32x32) - RES[CONV(D=1, F=3, P=1) - CONV(D=1, F=3, P=1)]")
    assert summary.rows[0].receptive_field == (5, 5)
    summary = cnnkit.summarize("INPUT(1x32x32) - RES[RELU | CONV(D=1, F=5, P=2)]")
    assert summary.rows[0].receptive_field == (5, 5)


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_explain_backprop_through_a_residual_block_uses_the_engines_numbers(engine):
    with cnnkit.use_engine(engine):
        explanation = explain_residual_backprop(size=5, seed=3)
    assert explanation.matches
    np.testing.assert_array_equal(explanation.shortcut_dx, explanation.dy)
    np.testing.assert_allclose(explanation.body_dx + explanation.dy, explanation.dx)
    np.testing.assert_allclose(explanation.y, explanation.body_out + explanation.x)
    assert not np.allclose(explanation.body_dx, 0)
    text = explanation.text()
    assert "dy goes down BOTH branches" in text and "equals the block's dx" in text
    assert explanation.to_dict()["schema"] == "cnnkit.explain.residual/1"
    with pytest.raises(ConfigError):
        explain_residual_backprop(size=99)


def test_resnet20_is_he_et_al_with_projection_shortcuts_and_matches_pytorch():
    summary = cnnkit.summarize("resnet20")
    theirs = torch_resnet20()
    assert summary.totals.trainable_params == sum(p.numel() for p in theirs.parameters())
    assert summary.totals.trainable_params == 272_474
    outputs = [row.output for row in summary.rows if row.depth == 0 and row.kind == "RES"]
    assert outputs[0] == "32x32x16" and outputs[3] == "16x16x32" and outputs[6] == "8x8x64"
    model = copied(cnnkit.from_spec("resnet20", rng=np.random.default_rng(0)), theirs, np.float32)
    x = np.random.default_rng(3).standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = model.forward(x)
    dx = model.backward(np.ones_like(y))
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    for key, value in theirs.state_dict().items():
        if "running" in key:
            np.testing.assert_allclose(model.state_dict()[key], value.numpy(), rtol=1e-4, atol=1e-6)
