"""The layer contract: a layer a user writes works everywhere a built-in one does."""

import copy
import re

import layers
import numpy as np
import pytest

import cnnkit
from cnnkit import ConfigError, DTypeError, ShapeError, SpecError, StateError
from cnnkit.nn import registry

SPEC = "INPUT(2x8x8) - CONV(D=4, F=3, P=1) - SCALE(init=0.5) - RELU - FC(3)"


class Scale(layers.Scale):
    """The layer contract's example layer (registered as SCALE here)."""


@pytest.fixture(autouse=True, scope="module")
def scale_keyword():
    cnnkit.register_layer("SCALE")(Scale)
    yield
    registry.unregister("SCALE")


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------
# A user's layer everywhere


def test_user_layer_in_strings_summary_and_to_spec():
    model = cnnkit.from_spec(SPEC, rng=rng())
    assert [type(layer).__name__ for layer in model] == [
        "Conv2d",
        "Scale",
        "ReLU",
        "Flatten",
        "Linear",
    ]
    assert model[1].weight.data.tolist() == [0.5] * 4
    assert model.to_spec() == (
        "INPUT(2x8x8) - CONV(D=4, F=3, S=1, P=1) - SCALE(init=0.5) - RELU - FC(3)"
    )
    assert cnnkit.parse(model.to_spec()) == cnnkit.parse(SPEC)
    summary = cnnkit.summarize(SPEC)
    row = summary.rows[1]
    assert (row.layer, row.kind, row.output, row.params) == ("SCALE(init=0.5)", "SCALE", "8x8x4", 4)
    assert row.cache_bytes is None and summary.totals.unreported_cache == (1,)
    assert summary.totals.params == sum(p.size for p in model.parameters()) == 4 * 19 + 4 + 771
    assert "does not say what it keeps" in " ".join(summary.table().split())
    assert model.summary().totals.params == summary.totals.params


def test_user_layer_state_dict_and_checkpoint_round_trip(tmp_path):
    model = cnnkit.from_spec(SPEC, rng=rng())
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "4.weight", "4.bias"]
    model[1].weight.data[...] = [1.0, 2.0, 3.0, 4.0]
    other = cnnkit.from_spec(SPEC, rng=rng(1))
    other.load_state_dict(model.state_dict())
    assert other[1].weight.data.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_user_layer_trains_and_checks_its_gradients():
    model = cnnkit.from_spec(SPEC, rng=rng(), dtype=np.float64)
    x = rng(1).standard_normal((3, 2, 8, 8))
    report = cnnkit.gradcheck(model, x, rng=rng(2))
    assert report.ok and bool(report), str(report)
    assert [check.name for check in report.checks] == [
        "dx",
        "0.weight",
        "0.bias",
        "1.weight",
        "4.weight",
        "4.bias",
    ]
    layer = Scale(0.5)  # on its own, built by its first (float64) input
    assert cnnkit.gradcheck(layer, rng(3).standard_normal((2, 3, 4, 4))).ok
    assert layer.weight.data.dtype == np.float64
    model32 = cnnkit.from_spec(SPEC, rng=rng())
    optimizer = cnnkit.SGD(model32.parameters(), lr=0.1)
    labels = np.array([0, 1, 2])
    loss_fn = cnnkit.CrossEntropyLoss()
    images = x.astype(np.float32)
    losses = []
    for _ in range(20):
        losses.append(loss_fn.forward(model32.forward(images), labels))
        optimizer.zero_grad()
        model32.backward(loss_fn.backward(), input_grad=False)
        optimizer.step()
    assert losses[-1] < losses[0] / 2
    assert not np.allclose(model32[1].weight.data, 0.5)  # the scale itself was trained


def test_gradcheck_of_a_loss_is_of_the_logits():
    logits = rng().standard_normal((4, 5))
    report = cnnkit.gradcheck(cnnkit.CrossEntropyLoss(), logits, np.array([0, 4, 2, 2]))
    assert report.ok and [check.name for check in report.checks] == ["dlogits"]


def test_gradcheck_refuses_float32_naming_the_parameter_and_the_fix():
    model = cnnkit.from_spec(SPEC, rng=rng())
    with pytest.raises(
        DTypeError, match=r"parameter '0\.weight' is float32.*model\.to\(np\.float64\)"
    ):
        cnnkit.gradcheck(model, np.zeros((1, 2, 8, 8)))
    assert cnnkit.gradcheck(model.to(np.float64), rng().standard_normal((1, 2, 8, 8))).ok


def test_explain_and_pictures_work_with_a_user_layer():
    from cnnkit.explain import explain_equivariance, explain_layers
    from cnnkit.viz import feature_maps

    model = cnnkit.from_spec(SPEC, rng=rng())
    notes = explain_layers(SPEC).layers
    assert notes[1].layer == "SCALE(init=0.5)" and "4 parameters" in notes[1].text
    result = explain_equivariance(model, shifts=2)
    assert [row.layer for row in result.rows] == [
        "CONV(D=4, F=3, S=1, P=1)",
        "SCALE(init=0.5)",
        "RELU",
    ]
    assert result.rows[1].cells[0].error == 0.0
    rows = feature_maps(model, np.ones((2, 8, 8), np.float32))
    assert [row.layer for row in rows] == ["CONV(D=4, F=3, S=1, P=1)", "SCALE(init=0.5)", "RELU"]


# ---------------------------------------------------------------------------------------------
# The registry


def test_a_keyword_registered_twice_is_refused_naming_both_classes():
    class Other(cnnkit.Layer):
        def forward(self, x):
            return x

    with pytest.raises(ConfigError, match=r"'SCALE' is already registered to .*Scale; .*Other"):
        cnnkit.register_layer("SCALE")(Other)
    with pytest.raises(ConfigError, match=r"keyword 'CONV' is already registered to .*Conv2d"):
        cnnkit.register_layer("conv")(Other)
    with pytest.raises(ConfigError, match=r"not a cnnkit\.Layer subclass"):
        cnnkit.register_layer("THING")(dict)
    with pytest.raises(ConfigError, match="reserved for the input volume"):
        cnnkit.register_layer("INPUT")(Other)
    with pytest.raises(ConfigError, match="a keyword is a name of letters"):
        cnnkit.register_layer("2D")(Other)


def test_redefining_a_class_keeps_its_keyword():
    for _ in range(2):  # a notebook cell run twice

        @cnnkit.register_layer("TWICE")
        class Twice(cnnkit.Layer):
            def forward(self, x):
                return 2 * x

    try:
        assert type(cnnkit.from_spec("INPUT(1x2x2) - TWICE")[0]) is Twice
    finally:
        registry.unregister("TWICE")


def test_an_unknown_keyword_lists_the_registered_ones_and_the_closest():
    with pytest.raises(SpecError) as caught:
        cnnkit.parse("INPUT(1x8x8) - SCALEE(init=2)")
    message = str(caught.value)
    assert message.startswith("col 16: unknown layer 'SCALEE'; did you mean SCALE?")
    built_in = {"CONV", "FC", "FLATTEN", "GAP", "LEAKYRELU", "NORMALIZE", "POOL", "RELU", "RES"}
    built_in |= {"BN", "BN1D", "DROPOUT", "DROPOUT2D"}
    built_in |= {"SIGMOID", "TANH"}
    assert built_in | {"SCALE"} <= set(registry.keywords())
    assert f"the registered layers are {', '.join(registry.keywords())} " in message


def test_a_subclass_is_not_mistaken_for_its_registered_parent():
    class Wider(cnnkit.Conv2d):
        pass

    model = cnnkit.Sequential(Wider(1, 2, 3, rng=rng()))
    with pytest.raises(ShapeError, match=r"has no architecture-string form: register its class"):
        model.to_spec((1, 5, 5))
    row = cnnkit.summarize(model, input_shape=(1, 5, 5)).rows[0]
    assert row.kind == "Wider" and row.params == 20 and row.formula is not None


def test_user_layer_arguments_are_checked_with_columns():
    with pytest.raises(SpecError, match=r"^col 22: SCALE has no argument 'scale'; it takes init$"):
        cnnkit.parse("INPUT(1x2x2) - SCALE(scale=2)")
    with pytest.raises(SpecError, match=r"^col 22: SCALE got an unexpected value 2; name it"):
        cnnkit.parse("INPUT(1x2x2) - SCALE(2)")
    arch = cnnkit.parse("INPUT(1x2x2) - SCALE(init=-1.5e-1)")
    assert arch.layers[0].get("init") == -0.15 and arch.text().endswith("SCALE(init=-0.15)")


# ---------------------------------------------------------------------------------------------
# Per-call state: reuse, tied weights, threads


def test_backward_without_forward_and_twice_name_the_layer():
    conv = cnnkit.Conv2d(1, 2, 3, rng=rng())
    with pytest.raises(
        StateError, match=r"^Conv2d\(1, 2, kernel_size=3\): backward\(\) was called"
    ):
        conv.backward(np.zeros((1, 2, 3, 3), np.float32))
    y = conv.forward(np.zeros((1, 1, 5, 5), np.float32))
    conv.backward(np.zeros_like(y))
    with pytest.raises(StateError, match=r"^Conv2d\(1, 2, kernel_size=3\): a second backward\(\)"):
        conv.backward(np.zeros_like(y))
    relu = cnnkit.ReLU().eval()
    relu.forward(np.ones((2, 2), np.float32))
    with pytest.raises(StateError, match=r"after a forward that saved nothing .*enable_grad"):
        relu.backward(np.ones((2, 2), np.float32))
    with cnnkit.enable_grad():
        relu.forward(np.ones((2, 2), np.float32))
    assert relu.backward(np.ones((2, 2), np.float32)).tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_saved_tensors_belong_to_forward_and_backward():
    with pytest.raises(StateError, match=r"save_for_backward\(\) is only valid inside forward"):
        Scale().save_for_backward(np.zeros(1))
    with pytest.raises(StateError, match=r"saved_tensors is only valid inside backward"):
        _ = Scale().saved_tensors


def test_gradients_of_the_wrong_shape_or_dtype_are_refused():
    model = cnnkit.from_spec(SPEC, rng=rng())
    y = model.forward(np.zeros((2, 2, 8, 8), np.float32))
    with pytest.raises(
        DTypeError, match=r"got dy of dtype float64 but the forward returned float32"
    ):
        model.backward(np.zeros(y.shape))
    model.forward(np.zeros((2, 2, 8, 8), np.float32))
    with pytest.raises(ShapeError, match=r"backward expected dy of shape \(2, 3\)"):
        model.backward(np.zeros((2, 4), np.float32))


def _torch_pair(reuse: str):
    """The same network in both libraries, with one layer object used twice."""
    torch = pytest.importorskip("torch")
    generator = rng(4)
    conv = cnnkit.Conv2d(2, 2, 3, padding=1, dtype=np.float64, rng=generator)
    conv_b = cnnkit.Conv2d(2, 2, 3, padding=1, dtype=np.float64, rng=generator)
    relu, pool = cnnkit.ReLU(), cnnkit.MaxPool2d(2)
    second = conv if reuse == "tied" else conv_b
    ours = cnnkit.Sequential(conv, relu, second, relu, pool, pool, cnnkit.Flatten())
    t_conv = torch.nn.Conv2d(2, 2, 3, padding=1).double()
    t_conv_b = torch.nn.Conv2d(2, 2, 3, padding=1).double()
    with torch.no_grad():
        for theirs, mine in ((t_conv, conv), (t_conv_b, conv_b)):
            theirs.weight.copy_(torch.from_numpy(mine.weight.data))
            theirs.bias.copy_(torch.from_numpy(mine.bias.data))
    t_relu, t_pool = torch.nn.ReLU(), torch.nn.MaxPool2d(2)
    t_second = t_conv if reuse == "tied" else t_conv_b
    theirs = torch.nn.Sequential(
        t_conv, t_relu, t_second, t_relu, t_pool, t_pool, torch.nn.Flatten()
    )
    return torch, ours, theirs


@pytest.mark.parametrize("reuse", ["tied", "separate"])
def test_reuse_and_tied_weights_match_pytorch(reuse):
    torch, ours, theirs = _torch_pair(reuse)
    x = rng(5).standard_normal((3, 2, 8, 8))
    g = rng(6).standard_normal((3, 2 * 2 * 2))
    y = ours.forward(x)
    dx = ours.backward(g)
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = theirs(tx)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    mine = dict(ours.named_parameters())
    for name, parameter in theirs.named_parameters():
        np.testing.assert_allclose(mine[name].grad, parameter.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert list(mine) == [name for name, _ in theirs.named_parameters()]
    assert len(list(ours.parameters())) == (2 if reuse == "tied" else 4)


def test_a_shared_parameter_is_counted_once_and_marked():
    conv = cnnkit.Conv2d(2, 2, 3, padding=1, rng=rng())
    model = cnnkit.Sequential(conv, cnnkit.ReLU(), conv)
    summary = model.summary((2, 6, 6))
    first, _, again = summary.rows
    assert (first.params, again.params, again.shared_params) == (38, 0, 38)
    assert again.notes == ("shares weight, bias with layer 0",)
    assert summary.totals.params == 38
    assert "shares weight, bias with layer 0" in summary.table()


def test_one_layer_called_twice_on_its_own_pairs_backwards_in_reverse():
    linear = cnnkit.Linear(3, 2, dtype=np.float64, rng=rng())
    a, b = rng(1).standard_normal((4, 3)), rng(2).standard_normal((4, 3))
    ya = linear.forward(a)  # a siamese pair: both outputs are still held
    yb = linear.forward(b)
    g = np.ones((4, 2))
    assert np.allclose(linear.backward(g), g @ linear.weight.data)  # b's
    np.testing.assert_allclose(linear.weight.grad, g.T @ b)
    linear.backward(g)  # a's
    np.testing.assert_allclose(linear.weight.grad, g.T @ (a + b))
    assert ya.shape == yb.shape


def test_forwards_whose_outputs_are_gone_are_forgotten_by_the_next_forward():
    """Scoring in training mode without backward keeps nothing piling up."""
    from cnnkit.nn.context import MAX_PENDING

    conv = cnnkit.Conv2d(1, 2, 3, rng=rng())
    x = np.zeros((2, 1, 6, 6), np.float32)
    for _ in range(3 * MAX_PENDING):
        conv.forward(x)  # the output is dropped at once
    assert len(conv._local.pending) == 1
    held = [conv.forward(x) for _ in range(3)]
    assert len(conv._local.pending) == 3  # held outputs keep their forwards
    for y in reversed(held):
        conv.backward(np.ones_like(y))
    with pytest.raises(StateError, match=r"a later forward replaced one whose output was no"):
        conv.backward(np.ones_like(held[0]))
    loss_fn = cnnkit.CrossEntropyLoss()  # the loss holds the logits it was given
    linear = cnnkit.Linear(3, 2, rng=rng())
    loss_fn.forward(linear.forward(np.ones((4, 3), np.float32)), np.array([0, 1, 0, 1]))
    loss_fn.forward(linear.forward(np.ones((4, 3), np.float32)), np.array([0, 1, 0, 1]))
    linear.backward(loss_fn.backward())  # the second forward's, not a stale one


def test_retain_graph_allows_a_second_backward_of_one_forward():
    model = cnnkit.from_spec(SPEC, rng=rng(), dtype=np.float64)
    x = rng(1).standard_normal((2, 2, 8, 8))
    y = model.forward(x)
    g = rng(2).standard_normal(y.shape)
    first = model.backward(g, retain_graph=True)
    second = model.backward(g)
    np.testing.assert_array_equal(first, second)
    with pytest.raises(StateError, match="a second backward"):
        model.backward(g)


def test_changing_the_input_in_place_does_not_change_the_gradients():
    conv = cnnkit.Conv2d(16, 8, 3, rng=rng())  # keeps its input, not its columns
    linear = cnnkit.Linear(12, 3, rng=rng())
    x = rng(1).standard_normal((4, 16, 40, 40)).astype(np.float32)
    v = rng(2).standard_normal((5, 12)).astype(np.float32)
    for layer, data in ((conv, x), (linear, v)):
        y = layer.forward(data)
        g = np.ones_like(y)
        expected = layer.backward(g)
        layer.zero_grad()
        layer.forward(data)
        data += 100.0  # after forward, before backward
        np.testing.assert_array_equal(layer.backward(g), expected)
        data -= 100.0


def test_threads_share_one_model_in_evaluation_mode():
    from concurrent.futures import ThreadPoolExecutor

    model = cnnkit.lecture_network((1, 16, 16), 10, rng=rng()).eval()
    batches = [rng(seed).standard_normal((16, 1, 16, 16)).astype(np.float32) for seed in range(8)]
    expected = [model.forward(batch) for batch in batches]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            results = list(pool.map(model.forward, batches))
            for got, want in zip(results, expected, strict=True):
                np.testing.assert_array_equal(got, want)


def test_train_and_eval_propagate_and_evaluation_restores_the_mode():
    from cnnkit.train import predict

    model = cnnkit.from_spec(SPEC, rng=rng())
    assert model.eval() is model and not any(layer.training for layer in model.modules())
    model.train()
    predict(model, np.zeros((3, 2, 8, 8), np.float32))
    assert all(layer.training for layer in model.modules())
    model.eval()
    predict(model, np.zeros((3, 2, 8, 8), np.float32))
    assert not model.training


def test_a_lazy_layer_must_be_built_before_its_parameters_are_asked_for():
    model = cnnkit.Sequential(cnnkit.Conv2d(1, 2, 3, rng=rng()), Scale())
    with pytest.raises(StateError, match=r"Scale\(\) is not built yet: .*model\.build"):
        list(model.parameters())
    model.build((1, 1, 5, 5))
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight"]


def test_copies_and_config():
    model = cnnkit.from_spec(SPEC, rng=rng())
    clone = copy.deepcopy(model)
    x = rng(1).standard_normal((1, 2, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(clone.forward(x), model.forward(x))
    assert Scale(0.25).get_config() == {"init": 0.25}
    assert repr(Scale(0.25)) == "Scale(init=0.25)" and repr(Scale()) == "Scale()"

    class Forgetful(cnnkit.Layer):
        def __init__(self, size=3):
            pass

        def forward(self, x):
            return x

    with pytest.raises(ConfigError, match=r"reads the __init__ argument 'size' from self\.size"):
        Forgetful().get_config()


def test_buffers_are_state_but_not_parameters():
    layer = cnnkit.Normalize([0.5, 0.25], [2.0, 4.0])
    assert list(layer.parameters()) == []
    assert list(layer.state_dict()) == ["mean", "std"]
    model = cnnkit.Sequential(layer, cnnkit.Conv2d(2, 1, 1, rng=rng()))
    assert list(model.state_dict()) == ["0.mean", "0.std", "1.weight", "1.bias"]
    summary = model.summary((2, 3, 3))
    assert summary.totals.non_trainable_params == 4 and summary.totals.trainable_params == 3


# ---------------------------------------------------------------------------------------------
# Errors at the edge


def test_wrong_inputs_are_explained_at_the_input():
    model = cnnkit.from_spec("lecture", rng=rng())
    with pytest.raises(
        ShapeError,
        match=re.escape(
            "the network takes (N, 1, 8, 8) images (1x8x8), got shape (5, 1, 28, 28); resize the "
            "images to 8x8, or build the network for 28x28"
        ),
    ):
        model.forward(np.zeros((5, 1, 28, 28), np.float32))
    with pytest.raises(ShapeError, match=r"channels-last: use x\.transpose\(0, 3, 1, 2\)"):
        model.forward(np.zeros((5, 8, 8, 1), np.float32))
    with pytest.raises(ShapeError, match=r"add a batch axis with x\[None\]"):
        model.forward(np.zeros((1, 8, 8), np.float32))
    conv = cnnkit.Conv2d(3, 4, 3, rng=rng())
    with pytest.raises(ShapeError, match=r"looks channels-last \(N, H, W, C\): transpose it with"):
        conv.forward(np.zeros((2, 9, 9, 3), np.float32))


def test_the_dtype_fix_offered_is_one_that_works():
    conv = cnnkit.Conv2d(1, 2, 3, rng=rng())
    with pytest.raises(DTypeError) as caught:
        conv.forward(np.zeros((1, 1, 5, 5), np.float16))
    assert "float16" not in str(caught.value).split(";")[1]  # no dtype=np.float16 offered
    with pytest.raises(DTypeError, match=r"build the layer with dtype=np\.float64"):
        conv.forward(np.zeros((1, 1, 5, 5), np.float64))
