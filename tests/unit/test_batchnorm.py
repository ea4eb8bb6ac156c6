"""BatchNorm2d and BatchNorm1d: PyTorch's numbers on both engines (outputs, every gradient,
running statistics), its state_dict keys, checkpoints and resume, strings, summaries, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnkit
from cnnkit import BatchNorm1d, BatchNorm2d, ConfigError, DTypeError, ShapeError, SpecError
from cnnkit.explain import explain_layers
from cnnkit.functional.fast import jit
from cnnkit.functional.fast import norm as fast_norm
from cnnkit.functional.fast.layout import NCHW, in_layout, layout_of
from cnnkit.nn import probe
from cnnkit.train import checkpoint

torch = pytest.importorskip("torch")

ENGINES = ["fast", "reference"]
DTYPES = [np.float32, np.float64]
TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}


def tolerance(dtype) -> float:
    return 2e-5 if dtype == np.float32 else 1e-11


def pair(shape, dtype, seed=0, **options):
    """Our layer and PyTorch's for inputs of ``shape``, with the same random weight, bias and
    running statistics (so that nothing agrees by starting at ones and zeros)."""
    rng = np.random.default_rng(seed)
    channels = shape[1]
    ours = (BatchNorm2d if len(shape) == 4 else BatchNorm1d)(channels, dtype=dtype, **options)
    theirs = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(
        channels, **options
    ).to(TORCH_DTYPES[dtype])
    for name, low in (
        ("weight", -2.0),
        ("bias", -1.0),
        ("running_mean", -1.0),
        ("running_var", 0.5),
    ):
        ours_value = getattr(ours, name)
        if ours_value is None:
            continue
        value = rng.uniform(low, 2.0, channels).astype(dtype)
        (ours_value.data if name in ("weight", "bias") else ours_value)[...] = value
        with torch.no_grad():
            getattr(theirs, name).copy_(torch.tensor(value))
    return ours, theirs


def batch(shape, dtype, seed=1):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)  # a mean away from 0, std 3
    return x, rng.standard_normal(shape).astype(dtype)


def compare(ours, theirs, x, dy, engine, *, steps=1, train=True):
    """Run ``steps`` forward/backward pairs on both; compare outputs, dx, the parameters'
    gradients (accumulated over the steps) and the buffers."""
    ours.train(train)
    theirs.train(train)
    dtype = x.dtype.type
    tol = tolerance(dtype)
    for _ in range(steps):
        with cnnkit.use_engine(engine), cnnkit.enable_grad():
            y = ours.forward(x)
            dx = ours.backward(dy)
        tx = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
        ty = theirs(tx)
        ty.backward(torch.tensor(dy))
        assert y.dtype == dx.dtype == dtype and y.shape == x.shape
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=tol, atol=tol)
    for name, value in theirs.named_parameters():
        np.testing.assert_allclose(getattr(ours, name).grad, value.grad.numpy(), rtol=tol, atol=tol)
    for name, value in theirs.named_buffers():
        np.testing.assert_allclose(getattr(ours, name), value.numpy(), rtol=tol, atol=tol)
    return y


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape",
    [(4, 3, 5, 6), (16, 8, 9, 7)],  # below and above the size where the compiled loops start
)
@pytest.mark.parametrize("train", [True, False])
def test_2d_matches_pytorch_in_training_and_evaluation(shape, dtype, engine, train):
    ours, theirs = pair(shape, dtype)
    x, dy = batch(shape, dtype)
    compare(ours, theirs, x, dy, engine, steps=2, train=train)
    if not train:
        assert int(ours.num_batches_tracked) == 0 and ours.running_mean.dtype == dtype


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_running_statistics_follow_pytorchs_over_several_steps(momentum, engine):
    ours, theirs = pair((8, 4, 12, 12), np.float64, momentum=momentum)
    for step in range(4):
        x, dy = batch((8, 4, 12, 12), np.float64, seed=step)
        compare(ours, theirs, x, dy, engine)
    assert ours.num_batches_tracked.dtype == np.int64 and ours.num_batches_tracked.shape == ()
    assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 4
    x, dy = batch((8, 4, 12, 12), np.float64, seed=9)
    compare(ours, theirs, x, dy, engine, train=False)  # evaluation with what they learned


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "options",
    [
        {"affine": False},
        {"track_running_stats": False},
        {"affine": False, "track_running_stats": False, "eps": 1e-3},
    ],
)
def test_without_affine_map_or_running_statistics(options, dtype, engine):
    shape = (16, 8, 9, 7)
    ours, theirs = pair(shape, dtype, **options)
    x, dy = batch(shape, dtype)
    compare(ours, theirs, x, dy, engine)
    compare(ours, theirs, x, dy, engine, train=False)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert len(list(ours.parameters())) == (2 if ours.affine else 0)
    if not ours.track_running_stats:
        assert ours.running_mean is None and ours.running_var is None
        assert ours.num_batches_tracked is None


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 5), (600, 12), (4, 3, 7), (32, 6, 40)])
def test_1d_takes_features_and_sequences(shape, dtype, engine):
    ours, theirs = pair(shape, dtype, momentum=None)
    x, dy = batch(shape, dtype)
    compare(ours, theirs, x, dy, engine, steps=2)
    compare(ours, theirs, x, dy, engine, train=False)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("layout", ["nhwc", "cnhw"])
def test_channels_last_inputs_give_the_same_numbers_stored_alike(layout, engine):
    shape = (8, 16, 6, 5)
    ours, theirs = pair(shape, np.float32)
    x, dy = batch(shape, np.float32)
    y = compare(ours, theirs, in_layout(x, layout), in_layout(dy, NCHW), engine)
    assert layout_of(y) == layout  # the next layer reads it on its fast path


def test_the_fast_engine_without_compiled_loops_matches_pytorch():
    shape = (16, 8, 9, 7)
    ours, theirs = pair(shape, np.float32)
    x, dy = batch(shape, np.float32)
    with jit.use_jit(False):
        compare(ours, theirs, x, dy, "fast", steps=2)
    arguments = dict(training=True, momentum=None, eps=1e-5)
    paths = {}
    for enabled in (True, False):
        with jit.use_jit(enabled):
            paths[enabled] = fast_norm.batch_norm_forward(x, None, None, None, None, **arguments)
    assert (paths[True][1][0], paths[False][1][0]) == ("fast", "reference")
    np.testing.assert_allclose(paths[True][0], paths[False][0], rtol=1e-5, atol=1e-5)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 6),
    c=st.integers(1, 5),
    h=st.integers(1, 9),
    w=st.integers(1, 40),
    momentum=st.sampled_from([0.0, 0.3, 1.0, None]),
    engine=st.sampled_from(ENGINES),
)
def test_random_small_shapes_match_pytorch(n, c, h, w, momentum, engine):
    ours, theirs = pair((n, c, h, w), np.float64, momentum=momentum)
    x, dy = batch((n, c, h, w), np.float64)
    compare(ours, theirs, x, dy, engine, steps=2)


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("train", [True, False])
def test_gradients_pass_a_central_difference_check(train):
    model = cnnkit.Sequential(
        cnnkit.Conv2d(2, 3, 3, padding=1, dtype=np.float64, rng=np.random.default_rng(1)),
        BatchNorm2d(3, dtype=np.float64),
        cnnkit.Tanh(),
        cnnkit.Flatten(),
        cnnkit.Linear(3 * 4 * 4, 5, dtype=np.float64, rng=np.random.default_rng(2)),
        BatchNorm1d(5, dtype=np.float64),
    )
    model[1].weight.data[...] = [1.5, -0.5, 2.0]
    model[1].bias.data[...] = [0.1, 0.2, -0.3]
    model.train(train)
    x = np.random.default_rng(3).standard_normal((3, 2, 4, 4))
    report = cnnkit.gradcheck(model, x)
    assert report.ok, f"\n{report}"


def test_state_dict_keys_and_values_are_pytorchs():
    ours = cnnkit.Sequential(
        cnnkit.Conv2d(3, 4, 3, rng=np.random.default_rng(0)), BatchNorm2d(4), cnnkit.ReLU()
    )
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    x, _ = batch((5, 3, 8, 8), np.float32)
    with torch.no_grad():
        theirs(torch.tensor(x))  # moves its running statistics: they are not the defaults now
    expected = {k: v.numpy() for k, v in theirs.state_dict().items()}
    assert (
        list(ours.state_dict())
        == list(expected)
        == [
            "0.weight",
            "0.bias",
            "1.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "1.num_batches_tracked",
        ]
    )
    assert [name for name, _ in ours.named_parameters()] == [
        n for n, _ in theirs.named_parameters()
    ]
    assert [name for name, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    ours.load_state_dict(expected)
    assert int(ours[1].num_batches_tracked) == 1
    for train in (False, True):
        ours.train(train)
        theirs.train(train)
        with torch.no_grad():
            wanted = theirs(torch.tensor(x)).numpy()
        np.testing.assert_allclose(ours.forward(x), wanted, rtol=1e-5, atol=1e-5)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name], value.numpy(), rtol=1e-6, atol=1e-6)


def test_buffers_are_state_not_parameters_and_to_keeps_the_counter_an_integer():
    layer = BatchNorm2d(3)
    assert [p.shape for p in layer.parameters()] == [(3,), (3,)]
    assert [name for name, _ in layer.named_buffers()] == [
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    layer.forward(batch((2, 3, 2, 2), np.float32)[0])
    layer.to(np.float64)
    assert layer.running_mean.dtype == layer.running_var.dtype == layer.weight.dtype == np.float64
    assert layer.num_batches_tracked.dtype == np.int64 and int(layer.num_batches_tracked) == 1
    y = layer.forward(batch((2, 3, 2, 2), np.float64)[0])
    assert y.dtype == np.float64 and int(layer.num_batches_tracked) == 2


def test_no_grad_still_moves_the_statistics_in_training_and_evaluation_never_does():
    layer = BatchNorm2d(2)
    x = batch((4, 2, 3, 3), np.float32)[0]
    with cnnkit.no_grad():
        layer.forward(x)
    assert int(layer.num_batches_tracked) == 1
    before = layer.state_dict()
    layer.eval().forward(x)
    after = layer.state_dict()
    assert all(np.array_equal(before[name], after[name]) for name in before)


def test_shape_probes_summaries_and_explanations_leave_the_buffers_alone():
    model = cnnkit.from_spec("INPUT(2x6x6) - CONV(D=3, F=3) - BN - RELU - FC(4) - BN1D")
    model.forward(batch((4, 2, 6, 6), np.float32)[0])
    before = model.state_dict()
    model.output_shape((1, 2, 6, 6))
    model.summary()
    explain_layers(model)
    with probe.probing(model):  # even a forward in training mode inside a probe is undone
        model.train()
        model.forward(batch((4, 2, 6, 6), np.float32, seed=5)[0])
    after = model.state_dict()
    assert all(np.array_equal(before[name], after[name]) for name in before)
    assert model.training  # the probe put every mode back too


def test_checkpoints_hold_the_buffers_and_refuse_a_counter_of_another_kind(tmp_path):
    model = cnnkit.from_spec("INPUT(1x4x4) - CONV(D=2, F=3) - BN - FC(3) - BN1D(momentum=none)")
    for seed in range(3):
        model.forward(batch((5, 1, 4, 4), np.float32, seed=seed)[0])
    path = checkpoint.save(tmp_path / "c.npz", {"spec": model.to_spec()}, model.state_dict())
    other = cnnkit.from_spec(model.to_spec())
    loaded = checkpoint.load(path, other)
    other.load_state_dict(loaded.model)
    for name, value in model.state_dict().items():
        assert np.array_equal(other.state_dict()[name], value), name
        assert other.state_dict()[name].dtype == value.dtype
    assert other[1].num_batches_tracked.shape == () and int(other[1].num_batches_tracked) == 3
    state = model.state_dict()
    state["1.num_batches_tracked"] = np.array(3.0)
    bad = checkpoint.save(tmp_path / "bad.npz", {}, state)
    with pytest.raises(cnnkit.DataError, match=r"model/1\.num_batches_tracked is float64"):
        checkpoint.load(bad, other)


def test_a_training_run_saves_loads_and_resumes_the_running_statistics(tmp_path):
    from dataclasses import replace

    from cnnkit.data import load_dataset

    digits = load_dataset("optdigits", validation=0.1, seed=0)
    small = replace(
        digits, train_images=digits.train_images[:96], train_labels=digits.train_labels[:96]
    )
    spec = "INPUT(1x8x8) - CONV(D=4, F=3, P=1) - BN - RELU - POOL(F=2) - FC(10) - BN1D"
    recipe = cnnkit.Recipe(epochs=1, batch_size=32)
    model = cnnkit.from_spec(spec, rng=np.random.default_rng(0))
    cnnkit.fit(model, small, recipe=recipe, run_dir=tmp_path / "run")
    assert int(model[1].num_batches_tracked) == 3
    network, _ = cnnkit.load_run(tmp_path / "run", "last")
    loaded = network.state_dict()  # a Normalize in front: every key one further on
    for name, value in model.state_dict().items():
        index, rest = name.split(".", 1)
        assert np.array_equal(loaded[f"{int(index) + 1}.{rest}"], value), name
    resumed = cnnkit.from_spec(spec, rng=np.random.default_rng(0))
    cnnkit.fit(
        resumed, small, recipe=replace(recipe, epochs=2), run_dir=tmp_path / "run", resume=True
    )
    assert int(resumed[1].num_batches_tracked) == 6
    assert not np.array_equal(resumed[1].running_mean, model[1].running_mean)


def test_strings_infer_the_channels_and_round_trip():
    model = cnnkit.from_spec("INPUT(3x8x8) - CONV(D=4, F=3) - BN - RELU - FC(10)")
    assert type(model[1]) is BatchNorm2d and model[1].num_features == 4
    assert model.to_spec() == "INPUT(3x8x8) - CONV(D=4, F=3, S=1, P=0) - BN - RELU - FC(10)"
    text = (
        "INPUT(3x8x8) - CONV(D=4, F=3, S=1, P=0) - BN(eps=0.001, momentum=none, affine=false) - "
        "FC(6) - BN1D(momentum=0.5, track_running_stats=false)"
    )
    model = cnnkit.from_spec(text)
    assert model.to_spec() == text
    assert repr(model[1]) == "BatchNorm2d(4, eps=0.001, momentum=None, affine=False)"
    assert repr(model[4]) == "BatchNorm1d(6, momentum=0.5, track_running_stats=False)"
    assert cnnkit.from_spec(model.to_spec()).to_spec() == text
    assert repr(BatchNorm2d(16)) == "BatchNorm2d(16)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("INPUT(3x8x8) - BN(eps=0)", r"col 19: eps must be a number > 0, got 0"),
        ("INPUT(3x8x8) - BN(momentum=1.5)", r"col 19: momentum must be a number in \[0, 1\]"),
        ("INPUT(3x8x8) - BN(affine=maybe)", r"col 19: affine must be true or false"),
    ],
)
def test_string_arguments_are_checked_with_columns(text, message):
    with pytest.raises(SpecError, match=message):
        cnnkit.parse(text)


def test_flat_inputs_need_bn1d_and_volumes_bn():
    with pytest.raises(ShapeError, match=r"BatchNorm2d\(10\).*flat input \(1, 10\); use BN1D"):
        cnnkit.from_spec("INPUT(3x8x8) - FC(10) - BN")
    with pytest.raises(ShapeError, match=r"BatchNorm2d\(3\).*flat input \(4, 3\); use BN1D"):
        BatchNorm2d(3).forward(np.zeros((4, 3), np.float32))
    with pytest.raises(ShapeError, match=r"BatchNorm1d\(3\).*volume \(2, 3, 4, 4\); use BN"):
        BatchNorm1d(3).forward(np.zeros((2, 3, 4, 4), np.float32))


def test_errors_name_the_layer_the_values_and_a_fix():
    with pytest.raises(ShapeError, match=r"BatchNorm2d\(4\): expected 4 channels .* got 3 .*"):
        BatchNorm2d(4).forward(np.zeros((2, 3, 5, 5), np.float32))
    one = np.zeros((1, 4, 1, 1), np.float32)
    with pytest.raises(
        ShapeError,
        match=r"shape \(1, 4, 1, 1\).*train with batches of 2 or more, or call model\.eval\(\)",
    ):
        BatchNorm2d(4).forward(one)
    assert BatchNorm2d(4).eval().forward(one).shape == one.shape  # evaluation takes one image
    with pytest.raises(
        ShapeError, match=r"BatchNorm1d\(4, track_running_stats=False\).*batches of 2"
    ):
        BatchNorm1d(4, track_running_stats=False).eval().forward(np.zeros((1, 4), np.float32))
    with pytest.raises(
        DTypeError, match=r"input is float64 but the layer's parameters are float32"
    ):
        BatchNorm2d(2).forward(np.zeros((2, 2, 3, 3)))
    for arguments, message in [
        ({"num_features": 0}, r"BatchNorm2d: num_features must be >= 1, got 0"),
        (
            {"num_features": 2, "eps": 0.0},
            r"BatchNorm2d: eps must be a finite number > 0, got 0\.0",
        ),
        ({"num_features": 2, "eps": -1}, r"eps must be a finite number > 0, got -1"),
        (
            {"num_features": 2, "momentum": 1.5},
            r"momentum must be a number in \[0, 1\] or None.*1\.5",
        ),
        ({"num_features": 2, "momentum": "fast"}, r"got 'fast'"),
        ({"num_features": 2, "affine": 1}, r"affine must be True or False, got 1"),
    ]:
        with pytest.raises(ConfigError, match=message):
            BatchNorm2d(**arguments)


def test_summary_counts_the_running_statistics_as_non_trainable():
    summary = cnnkit.summarize("INPUT(3x8x8) - CONV(D=4, F=3) - BN - RELU - FC(10) - BN1D")
    bn, bn1d = summary.rows[1], summary.rows[5]
    assert (bn.params, bn.buffers, bn.macs) == (8, 8, 4 * 6 * 6)  # num_batches_tracked: not counted
    assert (bn.activation_bytes, bn.cache_bytes) == (4 * 6 * 6 * 4, 4 * 6 * 6 * 4)
    assert (bn1d.params, bn1d.buffers, bn1d.macs) == (20, 20, 10)
    totals = summary.totals
    assert totals.trainable_params == 112 + 8 + 1450 + 20
    assert totals.non_trainable_params == 28
    assert totals.params == totals.trainable_params + totals.non_trainable_params
    assert "non-trainable 8" in summary.table()
    csv_rows = summary.csv().splitlines()
    assert csv_rows[0].split(",")[6:9] == ["params", "shared_params", "buffers"]
    assert csv_rows[2].split(",")[6:9] == ["8", "0", "8"]
    live = cnnkit.from_spec("INPUT(3x8x8) - CONV(D=4, F=3) - BN(affine=false)").summary()
    assert (live.rows[1].params, live.rows[1].buffers) == (0, 8)
    assert "BN: each of the 4 channels" in BatchNorm2d(4).explain((1, 4, 6, 6))
