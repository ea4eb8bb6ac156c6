"""Dropout and Dropout2d: PyTorch's formula with our mask on both engines, float32 and float64,
mask statistics, evaluation as the identity, backward with its own forward's mask, strings,
summaries, the layer's own generator and the generic generator API."""

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnkit
from cnnkit import ConfigError, DTypeError, ShapeError, SpecError
from cnnkit.functional.fast.layout import NHWC, in_layout, layout_of
from cnnkit.nn.context import saved_by
from cnnkit.nn.state import derive_generator, generator_states, load_generator_states

torch = pytest.importorskip("torch")

ENGINES = ["fast", "reference"]
DTYPES = [np.float32, np.float64]
KINDS = {"dropout": (cnnkit.Dropout, 0.3), "dropout2d": (cnnkit.Dropout2d, 0.4)}


def mask_of(layer):
    """The mask the layer's latest forward keeps for its backward (bool, input-shaped or
    (N, C, 1, 1))."""
    _, mask, _ = saved_by(layer)
    return mask


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_forward_and_backward_are_pytorchs_formula_with_our_mask(kind, dtype, engine):
    cls, p = KINDS[kind]
    layer = cls(p, rng=0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6, 5, 3)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    with cnnkit.use_engine(engine):
        y = layer.forward(x)
        mask = mask_of(layer)
        dx = layer.backward(dy)
    assert mask.dtype == bool
    assert mask.shape == ((4, 6, 1, 1) if kind == "dropout2d" else x.shape)
    tx = torch.tensor(x, requires_grad=True)
    ty = tx * torch.tensor(mask) / (1 - p)
    ty.backward(torch.tensor(dy))
    tolerance = 1e-6 if dtype == np.float32 else 1e-12
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=tolerance, atol=tolerance)
    assert 0 < mask.mean() < 1  # some of both, or the comparison would prove little


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_evaluation_is_pytorchs_identity(kind, dtype):
    cls, p = KINDS[kind]
    theirs = (torch.nn.Dropout if kind == "dropout" else torch.nn.Dropout2d)(p).eval()
    layer = cls(p, rng=0).eval()
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 4)).astype(dtype)
    state = layer.rng.bit_generator.state
    with cnnkit.enable_grad():  # recorded, so that backward can run in evaluation mode
        y = layer.forward(x)
        dy = np.ones_like(y)
        dx = layer.backward(dy)
    np.testing.assert_array_equal(y, theirs(torch.tensor(x)).numpy())
    assert y is x and dx is dy
    assert layer.rng.bit_generator.state == state  # nothing drawn


@pytest.mark.parametrize("dtype", DTYPES)
def test_kept_fraction_and_scale(dtype):
    p = 0.3
    y = cnnkit.Dropout(p, rng=5).forward(np.ones((40, 50, 10, 10), dtype))
    kept = y != 0
    n = y.size
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)  # 5 sigma: 0.0007
    np.testing.assert_array_equal(np.unique(y[kept]), [dtype(1 / (1 - p))])
    assert abs(y.mean() - 1) < 0.01  # the expected value is the input


@pytest.mark.parametrize("engine", ENGINES)
def test_dropout2d_zeroes_whole_depth_slices(engine):
    p = 0.25
    x = np.random.default_rng(3).uniform(1, 2, (400, 50, 3, 4)).astype(np.float32)
    with cnnkit.use_engine(engine):
        y = cnnkit.Dropout2d(p, rng=7).forward(x)
    zero = (y == 0).all(axis=(2, 3))
    scaled = np.isclose(y, x / (1 - p), rtol=1e-6).all(axis=(2, 3))
    assert (zero ^ scaled).all()  # each slice (n, c) wholly dropped or wholly kept
    n = zero.size
    assert abs(zero.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    assert zero.any(axis=0).all() and zero.any(axis=1).all()  # per example and channel


def test_the_mask_is_the_same_on_both_engines_in_either_dtype_and_layout():
    x = np.random.default_rng(4).standard_normal((3, 4, 5, 6)) + 10  # no zeros
    masks = []
    for engine in ENGINES:
        for dtype in DTYPES:
            for stored in (x.astype(dtype), in_layout(x.astype(dtype), NHWC)):
                with cnnkit.use_engine(engine):
                    y = cnnkit.Dropout(0.5, rng=11).forward(stored)
                assert layout_of(y) == layout_of(stored)  # the next layer keeps its fast path
                masks.append(y != 0)
    for mask in masks[1:]:
        np.testing.assert_array_equal(mask, masks[0])


def test_each_backward_uses_its_own_forwards_mask():
    layer = cnnkit.Dropout(0.5, rng=0)
    x = np.ones((2, 3, 4, 4), np.float32)
    y1 = layer.forward(x)
    y2 = layer.forward(x)
    assert not np.array_equal(y1, y2)  # two masks
    dy = np.full(x.shape, 3.0, np.float32)
    dx2 = layer.backward(dy)  # the newest forward first, as calls are undone
    dx1 = layer.backward(dy)
    np.testing.assert_array_equal(dx1, 3 * y1)
    np.testing.assert_array_equal(dx2, 3 * y2)


def test_a_layer_used_twice_in_a_model_undoes_each_use_with_its_mask():
    drop = cnnkit.Dropout(0.5, rng=1)
    model = cnnkit.Sequential(drop, cnnkit.ReLU(), drop)
    x = np.random.default_rng(0).uniform(1, 2, (2, 8)).astype(np.float64)
    y = model.forward(x)
    dx = model.backward(np.ones_like(y))
    # y = m2 * 2 * (m1 * 2 * x) with x > 0: dx = 4 * m1 * m2, wherever y is not 0
    np.testing.assert_array_equal(dx, np.where(y != 0, 4.0, 0.0))
    assert (y == 0).mean() > (x == 0).mean()


def test_p_zero_is_the_identity_and_draws_nothing():
    layer = cnnkit.Dropout(0.0, rng=0)
    state = layer.rng.bit_generator.state
    x = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    y = layer.forward(x)
    dy = np.ones_like(x)
    assert y is x and layer.backward(dy) is dy
    assert layer.rng.bit_generator.state == state


def test_no_grad_in_training_mode_still_drops_and_keeps_nothing():
    layer = cnnkit.Dropout(0.5, rng=0)
    with cnnkit.no_grad():
        y = layer.forward(np.ones((4, 100), np.float32))
    assert 0 < (y == 0).mean() < 1
    assert saved_by(layer) == ()


def rewind(layer) -> None:
    """The generator back where it was at the first forward: one mask for every forward."""
    if not hasattr(layer, "start"):
        layer.start = layer.rng.bit_generator.state
    layer.rng.bit_generator.state = layer.start


class FrozenDropout(cnnkit.Dropout):
    """A function the central differences can take: the same mask every forward."""

    def forward(self, x):
        rewind(self)
        return super().forward(x)


class FrozenDropout2d(cnnkit.Dropout2d):
    def forward(self, x):
        rewind(self)
        return super().forward(x)


@pytest.mark.parametrize("frozen", [FrozenDropout, FrozenDropout2d])
def test_gradients_pass_a_central_difference_check(frozen):
    model = cnnkit.Sequential(
        cnnkit.Conv2d(1, 3, 3, padding=1, dtype=np.float64, rng=np.random.default_rng(1)),
        frozen(0.4, rng=3),
    )
    x = np.random.default_rng(2).standard_normal((2, 1, 4, 4))
    report = cnnkit.gradcheck(model, x)
    assert report.ok, str(report)
    y = model.forward(x)
    assert (y == 0).any()  # a mask with zeros was checked


@settings(max_examples=12, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    p=st.floats(0.0, 0.95),
    engine=st.sampled_from(ENGINES),
)
def test_any_shape_is_x_times_mask_over_one_minus_p(shape, p, engine):
    x = np.random.default_rng(0).standard_normal((2, *shape))
    layer = cnnkit.Dropout(p, rng=1)
    with cnnkit.use_engine(engine):
        y = layer.forward(x)
        kept = mask_of(layer)
        dx = layer.backward(np.ones_like(y))
    if p == 0:
        assert y is x
        return
    np.testing.assert_allclose(y, np.where(kept, x / (1 - p), 0.0), rtol=1e-13, atol=0)
    np.testing.assert_allclose(dx, np.where(kept, 1 / (1 - p), 0.0), rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# Checks at the edge


@pytest.mark.parametrize("p", [1, 1.0, -0.1, 2, float("nan"), float("inf")])
@pytest.mark.parametrize("cls", [cnnkit.Dropout, cnnkit.Dropout2d])
def test_p_outside_0_1_is_refused_naming_the_layer_value_and_fix(cls, p):
    with pytest.raises(ConfigError) as caught:
        cls(p)
    message = str(caught.value)
    assert message.startswith(f"{cls.__name__}: p must be in [0, 1), got p={p}")
    assert "use a p in [0, 1)" in message and "\n" not in message
    assert ("would zero every one" in message) == (p >= 1)


@pytest.mark.parametrize("p", ["0.5", True, None, [0.5]])
def test_p_that_is_not_a_number_is_refused(p):
    with pytest.raises(ConfigError, match=r"^Dropout: p must be a number in \[0, 1\), got"):
        cnnkit.Dropout(p)


def test_wrong_inputs_and_generators_are_refused_in_one_line():
    with pytest.raises(DTypeError, match=r"Dropout\(\): expected a floating-point array, got int"):
        cnnkit.Dropout().forward(np.ones((2, 3), np.int64))
    with pytest.raises(DTypeError, match=r"expected a floating-point array, got list"):
        cnnkit.Dropout().forward([[1.0]])
    with pytest.raises(ShapeError, match=r"Dropout2d\(\): expected a 4-D input .*\(3, 4, 4\)"):
        cnnkit.Dropout2d().forward(np.ones((3, 4, 4), np.float32))
    with pytest.raises(ShapeError, match=r"got shape \(2, 10\); use Dropout \(DROPOUT\) after"):
        cnnkit.Dropout2d().output_shape((2, 10))
    with pytest.raises(DTypeError, match=r"Dropout2d: rng must be a numpy.random.Generator, an"):
        cnnkit.Dropout2d(rng="seed")
    with pytest.raises(DTypeError, match=r"rng must be"):
        cnnkit.Dropout(rng=True)
    with pytest.raises(ConfigError, match=r"Dropout: an rng seed must be >= 0, got -1"):
        cnnkit.Dropout(rng=-1)


# ---------------------------------------------------------------------------------------------
# Strings, summaries, explanations


def test_strings_round_trip_and_p_is_positional_or_named():
    text = "INPUT(1x8x8) - CONV(D=4, F=3, S=1, P=0) - DROPOUT2D(0.1) - RELU - DROPOUT(0.2) - FC(10)"
    model = cnnkit.from_spec(text, rng=np.random.default_rng(0))
    assert model.to_spec() == text
    named = cnnkit.from_spec(text.replace("(0.2)", "(p=0.2)").replace("(0.1)", "(p=0.1)"))
    assert named.to_spec() == text
    assert (model[1].p, model[3].p) == (0.1, 0.2)
    assert repr(model[3]) == "Dropout(p=0.2)" and repr(cnnkit.Dropout()) == "Dropout()"
    plain = cnnkit.from_spec("INPUT(1x8x8) - DROPOUT - DROPOUT2D(0) - FC(10)")
    assert plain.to_spec() == "INPUT(1x8x8) - DROPOUT - DROPOUT2D(0.0) - FC(10)"
    assert (plain[0].p, plain[1].p) == (0.5, 0.0)
    assert isinstance(plain[0], cnnkit.Dropout) and isinstance(plain[1], cnnkit.Dropout2d)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("INPUT(1x8x8) - DROPOUT(p=1) - FC(10)", r"col 24: p must be in \[0, 1\) .*got 1"),
        ("INPUT(1x8x8) - DROPOUT(1.5) - FC(10)", r"col 24: p must be in \[0, 1\)"),
        ("INPUT(1x8x8) - DROPOUT2D(p=-0.2) - FC(10)", r"col 26: p must be in \[0, 1\)"),
        ("INPUT(1x8x8) - DROPOUT(p=x) - FC(10)", r"col 24: p must be a number, got x"),
    ],
)
def test_a_wrong_p_in_a_string_is_a_spec_error_with_its_column(text, match):
    with pytest.raises(SpecError, match=match):
        cnnkit.parse(text)


def test_dropout2d_after_fc_is_a_shape_problem():
    with pytest.raises(ShapeError, match=r"DROPOUT2D\(0\.1\) on 10 values: .*4-D input"):
        cnnkit.from_spec("INPUT(1x8x8) - FC(10) - DROPOUT2D(0.1) - FC(2)")


def test_summary_counts_no_parameters_and_a_mask_per_value_or_depth_slice():
    model = cnnkit.from_spec("INPUT(3x8x8) - DROPOUT(0.2) - DROPOUT2D(0.3) - FC(10)")
    rows = model.summary().rows
    assert [row.params for row in rows[:2]] == [0, 0]
    assert [row.cache_bytes for row in rows[:2]] == [3 * 8 * 8, 3]  # a bool each
    assert (
        model[0]
        .explain((1, 3, 8, 8))
        .startswith(
            "DROPOUT (p=0.2): in training each of the 8x8x3 = 192 values is zeroed with "
            "probability 0.2 and the rest are scaled by 1/(1 - 0.2) = 1.25"
        )
    )
    assert "each of the 3 depth slices (8x8 values)" in model[1].explain((1, 3, 8, 8))
    assert "zeroed whole with probability 0.3" in model[1].explain((1, 3, 8, 8))


# ---------------------------------------------------------------------------------------------
# The layer's own generator


SPEC = "INPUT(1x8x8) - CONV(D=4, F=3) - DROPOUT(p=0.2) - FC(10)"


def test_a_dropout_in_a_string_leaves_the_weights_after_it_alone():
    with_dropout = cnnkit.from_spec(SPEC, rng=np.random.default_rng(0))
    without = cnnkit.from_spec(SPEC.replace(" - DROPOUT(p=0.2)", ""), rng=np.random.default_rng(0))
    np.testing.assert_array_equal(with_dropout[0].weight.data, without[0].weight.data)
    np.testing.assert_array_equal(with_dropout[3].weight.data, without[2].weight.data)
    np.testing.assert_array_equal(with_dropout[3].bias.data, without[2].bias.data)


def test_the_same_build_seed_draws_the_same_masks_and_another_seed_others():
    x = np.ones((4, 4, 6, 6), np.float32)

    def masks(seed):
        model = cnnkit.from_spec(SPEC, rng=np.random.default_rng(seed))
        return model[1].forward(x) != 0, model[1].rng

    first, generator = masks(0)
    again, other = masks(0)
    np.testing.assert_array_equal(first, again)
    assert generator is not other
    assert not np.array_equal(first, masks(1)[0])


def test_a_generator_given_to_a_layer_is_not_advanced_and_children_differ():
    parent = np.random.default_rng(0)
    before = parent.bit_generator.state
    a, b = cnnkit.Dropout(rng=parent), cnnkit.Dropout(rng=parent)
    assert parent.bit_generator.state == before
    assert a.rng is not parent and a.rng.bit_generator.state != b.rng.bit_generator.state
    assert cnnkit.Dropout(rng=3).rng.random() == np.random.default_rng(3).random()
    other = np.random.Generator(np.random.Philox(0))  # any bit generator: the child is PCG64
    assert isinstance(derive_generator(other).bit_generator, np.random.PCG64)
    fresh = [cnnkit.Dropout().rng.bit_generator.state for _ in range(2)]
    assert fresh[0] != fresh[1]  # None: unpredictable


def test_named_generators_follow_state_dict_paths_and_round_trip():
    inner = cnnkit.Sequential(cnnkit.ReLU(), cnnkit.Dropout2d(0.1, rng=1))
    shared = cnnkit.Dropout(rng=2)
    model = cnnkit.Sequential(cnnkit.Conv2d(1, 2, 3, rng=np.random.default_rng(0)), shared)
    model = cnnkit.Sequential(*model.layers, inner, shared)  # the shared one is listed once
    assert [name for name, _ in model.named_generators()] == ["1.rng", "2.1.rng"]
    assert "1.rng" not in model.state_dict()  # arrays only there
    states = generator_states(model)
    first = model[1].rng.random(3)
    model[2][1].rng.random(5)
    load_generator_states(model, states)
    np.testing.assert_array_equal(model[1].rng.random(3), first)
    with pytest.raises(ConfigError, match=r"got generators \['1\.rng'\], the model has"):
        load_generator_states(model, {"1.rng": states["1.rng"]})
    bad = {**states, "2.1.rng": {"bit_generator": "MT19937"}}
    before = model[1].rng.bit_generator.state
    with pytest.raises(ConfigError, match=r"2\.1\.rng is not the state of a PCG64 generator"):
        load_generator_states(model, bad)
    assert model[1].rng.bit_generator.state == before  # nothing changed


def test_register_generator_takes_pcg64_generators_only():
    class Noisy(cnnkit.Layer):
        def __init__(self, generator):
            self.register_generator("noise", generator)

    assert [n for n, _ in Noisy(np.random.default_rng(0)).named_generators()] == ["noise"]
    for wrong in (np.random.Generator(np.random.MT19937(0)), np.random.RandomState(0), 3):
        with pytest.raises(ConfigError, match=r"Noisy\.register_generator\('noise', \.\.\.\)"):
            Noisy(wrong)


def test_copies_carry_the_generator_state_and_draw_on_their_own():
    layer = cnnkit.Dropout(rng=4)
    x = np.ones((2, 64), np.float32)
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert clone.rng is not layer.rng
        np.testing.assert_array_equal(clone.forward(x), cnnkit.Dropout(rng=4).forward(x))
    assert [n for n, _ in copy.deepcopy(layer).named_generators()] == ["rng"]
