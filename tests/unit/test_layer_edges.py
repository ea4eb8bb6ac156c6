"""The layer contract at its edges: lazy builds, shape probes, which forward a backward goes
with, and dtypes through containers (each case a way a user's own layer once went wrong)."""

import threading

import layers
import numpy as np
import pytest

import cnnkit
from cnnkit import ConfigError, ShapeError, StateError
from cnnkit.explain import explain_layers
from cnnkit.nn import registry


class Scale(layers.Scale):
    """tests/layers.py's Scale, registered as EDGESCALE here."""


class RunningMean(cnnkit.Layer):
    """Running statistics in buffers, updated by forward in training mode (as BatchNorm's)."""

    def __init__(self, momentum=0.5):
        self.momentum = momentum

    def build(self, input_shape):
        self.register_buffer("running", np.zeros(input_shape[1], self.dtype))
        self.register_buffer("count", np.zeros((), np.int64))

    def forward(self, x):
        if self.training:
            self.running = (1 - self.momentum) * self.running + self.momentum * x.mean((0, 2, 3))
            self.count += 1  # in place
        return x - self.running[:, None, None].astype(x.dtype)

    def backward(self, dy):
        return dy


@pytest.fixture(autouse=True, scope="module")
def keywords():
    cnnkit.register_layer("EDGESCALE")(Scale)
    cnnkit.register_layer("RUNNINGMEAN")(RunningMean)
    yield
    registry.unregister("EDGESCALE")
    registry.unregister("RUNNINGMEAN")


def rng(seed=0):
    return np.random.default_rng(seed)


def ones(*shape, dtype=np.float32):
    return np.ones(shape, dtype)


# ---------------------------------------------------------------------------------------------
# Summaries, explanations and shape questions never change a model


def test_shape_questions_leave_running_statistics_alone():
    model = cnnkit.Sequential(cnnkit.Conv2d(1, 2, 3, padding=1, rng=rng()), RunningMean())
    model.forward(ones(4, 1, 5, 5) * 3)  # builds lazily, then one real update
    layer = model[1]
    assert int(layer.count) == 1
    running = layer.running.copy()
    model.summary((1, 5, 5))
    explain_layers(model, input_shape=(1, 5, 5))
    model.output_shape((2, 1, 5, 5))
    layer.output_shape((2, 2, 5, 5))
    assert int(layer.count) == 1
    np.testing.assert_array_equal(layer.running, running)
    assert layer.training and model.training  # the probe's evaluation mode is undone


def test_lazy_build_does_not_feed_zeros_into_running_statistics():
    model = cnnkit.Sequential(RunningMean(momentum=1.0))
    model.forward(ones(2, 3, 4, 4) * 2)
    assert int(model[0].count) == 1
    np.testing.assert_array_equal(model[0].running, [2.0, 2.0, 2.0])


def test_string_built_model_with_buffers_starts_from_zero():
    model = cnnkit.from_spec("INPUT(2x4x4) - RUNNINGMEAN - FC(2)", rng=rng())
    assert int(model[0].count) == 0
    model.summary()
    assert int(model[0].count) == 0


# ---------------------------------------------------------------------------------------------
# Lazy builds


def test_lazy_build_keeps_the_callers_array_protected():
    x = ones(2, 2, 4, 4)
    model = cnnkit.Sequential(Scale(0.5))
    y = model.forward(x)  # builds Scale on this very call
    x[:] = 5  # changed in place before backward
    model.backward(np.ones_like(y))
    np.testing.assert_array_equal(model[0].weight.grad, [32.0, 32.0])


def test_nested_lazy_build_is_not_filed_with_the_outer_call():
    inner = cnnkit.Sequential(Scale(2.0))
    model = cnnkit.Sequential(cnnkit.ReLU(), inner)
    y = model.forward(ones(1, 2, 3, 3))
    dx = model.backward(np.ones_like(y))
    np.testing.assert_array_equal(dx, np.full((1, 2, 3, 3), 2.0, np.float32))
    np.testing.assert_array_equal(inner[0].weight.grad, [9.0, 9.0])


def test_build_runs_once_even_when_called_again():
    layer = Scale(3.0)
    layer.build((1, 2, 4, 4))
    assert layer.built
    weight = layer.weight
    layer.build((1, 5, 4, 4))
    layer.forward(ones(1, 2, 4, 4))
    assert layer.weight is weight


def test_threads_building_one_model_share_its_weights():
    class Slow(Scale):
        def build(self, input_shape):
            threading.Event().wait(0.02)  # widen the window in which two threads could race
            super().build(input_shape)

    for _ in range(3):
        model = cnnkit.Sequential(Slow(1.0), cnnkit.Conv2d(2, 2, 3, rng=rng())).eval()
        x = rng(1).standard_normal((2, 2, 5, 5)).astype(np.float32)
        results = [None] * 4

        def run(index, model=model, x=x, results=results):
            results[index] = model.forward(x)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        expected = model.forward(x)
        for result in results:
            np.testing.assert_array_equal(result, expected)


# ---------------------------------------------------------------------------------------------
# dtypes through containers and strings


def test_float64_input_builds_float64_layers_inside_a_sequential():
    model = cnnkit.Sequential(Scale(), cnnkit.Sequential(Scale()))
    x = rng().standard_normal((2, 3, 4, 4))
    assert model.forward(x).dtype == np.float64
    assert {p.dtype for p in model.parameters()} == {np.dtype(np.float64)}
    report = cnnkit.gradcheck(cnnkit.Sequential(Scale()), x, rng=rng(2))
    assert report.ok, str(report)


class Block(cnnkit.Layer):
    """Children made in __init__ (as a residual block makes its convolutions)."""

    def __init__(self, channels, rng=None):
        self.channels = channels
        self.conv = cnnkit.Conv2d(channels, channels, 3, padding=1, rng=rng)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x):
        return x + self.conv.forward(x)

    def backward(self, dy):
        return dy + self.conv.backward(dy)


def test_from_spec_dtype_reaches_children_made_in_init():
    registry.register_layer("EDGEBLOCK")(Block)
    try:
        model = cnnkit.from_spec("INPUT(2x5x5) - EDGEBLOCK(channels=2)", dtype=np.float64)
        assert {p.dtype for p in model.parameters()} == {np.dtype(np.float64)}
        x = rng().standard_normal((2, 2, 5, 5))
        assert model.forward(x).dtype == np.float64
        assert cnnkit.gradcheck(model, x, rng=rng(1)).ok
    finally:
        registry.unregister("EDGEBLOCK")


# ---------------------------------------------------------------------------------------------
# Which forward a backward goes with


def test_backward_goes_with_the_forward_whose_output_is_held():
    def make():
        return cnnkit.from_spec(
            "INPUT(1x8x8) - CONV(D=4, F=3, P=1) - RELU - FC(3)", rng=np.random.default_rng(0)
        )

    xb = rng(1).random((8, 1, 8, 8)).astype(np.float32)
    xv = rng(2).random((8, 1, 8, 8)).astype(np.float32)
    labels = rng(3).integers(0, 3, 8)
    loss = cnnkit.CrossEntropyLoss()
    model = make()
    loss.forward(model.forward(xb), labels)
    model.backward(loss.backward())
    expected = model[0].weight.grad.copy()

    model = make()
    logits = model.forward(xb)
    loss.forward(logits, labels)
    model.forward(xv).argmax(1)  # scored in training mode; the output is thrown away
    model.backward(loss.backward())
    np.testing.assert_array_equal(model[0].weight.grad, expected)
    with pytest.raises(StateError, match="no longer held"):
        model.backward(loss.backward())  # the dropped forward went too: nothing is left


def test_backward_without_holding_the_output_still_works():
    layer = Scale(2.0)
    layer.forward(ones(1, 2, 2, 2))  # the output is not kept
    assert layer.backward(ones(1, 2, 2, 2)).sum() == 16.0


def test_a_refused_gradient_uses_up_nothing():
    model = cnnkit.Sequential(Scale(0.5))
    y = model.forward(ones(1, 2, 4, 4))
    with pytest.raises(ShapeError, match=r"expected dy of shape \(1, 2, 4, 4\)"):
        model.backward(np.ones((1, 2, 4, 5), np.float32))
    with pytest.raises(ShapeError, match="got NoneType"):
        model.backward(None)
    model.backward(np.ones_like(y))
    np.testing.assert_array_equal(model[0].weight.grad, [16.0, 16.0])


def test_inner_backward_after_a_container_forward_points_to_the_container():
    model = cnnkit.Sequential(Scale(0.5), cnnkit.ReLU())
    y = model.forward(ones(1, 2, 4, 4))
    with pytest.raises(StateError, match="ran inside another layer's forward"):
        model[0].backward(np.ones_like(y))


class SquaredError(cnnkit.Layer):
    """A loss written as a layer: forward(prediction, target), backward() without dy."""

    def forward(self, prediction, target):
        self.save_for_backward(prediction - target)
        return float(np.mean((prediction - target) ** 2))

    def backward(self):
        (difference,) = self.saved_tensors
        return 2 * difference / difference.size


def test_a_loss_written_as_a_layer_takes_no_gradient():
    loss = SquaredError()
    prediction = rng().standard_normal((3, 4))
    target = rng(1).standard_normal((3, 4))
    assert loss.forward(prediction, target) == pytest.approx(np.mean((prediction - target) ** 2))
    np.testing.assert_allclose(loss.backward(), 2 * (prediction - target) / 12)
    report = cnnkit.gradcheck(loss, prediction, targets=target)
    assert report.ok and [c.name for c in report.checks] == ["dlogits"]
    loss.forward(prediction, target)
    loss.backward()
    with pytest.raises(StateError, match="second backward"):
        loss.backward()


# ---------------------------------------------------------------------------------------------
# Settings and buffers survive strings and checkpoints exactly, or are refused up front


class Setting(cnnkit.Layer):
    def __init__(self, value=1.0):
        self.value = value

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy


@pytest.fixture
def setting_keyword():
    registry.register_layer("SETTING")(Setting)
    yield
    registry.unregister("SETTING")


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        2.0,
        -0.5,
        1e-20,
        3,
        float("inf"),
        float("-inf"),
        "hard",
        "soft clip",
        "relu-6",
        "a,b",
        "",
        "3",
        "true",
        "none",
        'say "hi"',
        (5,),
        (0.1,),
        (),
        (3, 5),
        (1, -2),
        (True, False),
        ("a b", None, 2.5),
    ],
)
def test_settings_come_back_from_their_string_exactly(setting_keyword, value):
    text = cnnkit.Sequential(Setting(value), input_shape=(1, 4, 4)).to_spec()
    back = cnnkit.from_spec(text)[0].value
    assert type(back) is type(value) and back == value, text


def test_nan_and_typed_words_read_as_values(setting_keyword):
    assert np.isnan(cnnkit.from_spec("INPUT(1x2x2) - SETTING(value=nan)")[0].value)
    assert cnnkit.from_spec("INPUT(1x2x2) - SETTING(value=(true, FALSE))")[0].value == (
        True,
        False,
    )
    assert cnnkit.from_spec("INPUT(1x2x2) - SETTING(value=None)")[0].value is None
    assert cnnkit.from_spec("INPUT(1x2x2) - SETTING(value='None')")[0].value == "None"


@pytest.mark.parametrize("value", [np.array([1.0, 2.0]), {"a": 1}, 1 + 2j, "both ' and \""])
def test_settings_a_string_cannot_hold_are_refused_naming_the_argument(setting_keyword, value):
    model = cnnkit.Sequential(Setting(value), input_shape=(1, 4, 4))
    with pytest.raises(ConfigError, match=r"layer 0 SETTING: value="):
        model.to_spec()


def test_fit_refuses_an_unwritable_setting_before_training(setting_keyword, tmp_path):
    from cnnkit.data import load_dataset

    data = load_dataset("optdigits")
    model = cnnkit.Sequential(
        Setting(np.zeros(2)), cnnkit.Flatten(), cnnkit.Linear(64, 10, rng=rng())
    )
    with pytest.raises(ConfigError, match="value=array"):
        cnnkit.fit(model, data, epochs=1, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


class Counter(cnnkit.Layer):
    """A buffer registered as a plain number and replaced (not changed in place) by forward."""

    def build(self, input_shape):
        self.register_buffer("seen", 0)

    def forward(self, x):
        if self.training:
            self.seen = self.seen + len(x)
        return x

    def backward(self, dy):
        return dy


def test_a_number_buffer_is_saved_and_restored(tmp_path):
    from dataclasses import replace

    from cnnkit.data import load_dataset

    registry.register_layer("COUNTER")(Counter)
    try:
        data = load_dataset("optdigits")
        data = replace(
            data, train_images=data.train_images[:96], train_labels=data.train_labels[:96]
        )
        model = cnnkit.from_spec("INPUT(1x8x8) - COUNTER - FC(10)", rng=rng())
        assert model.state_dict()["0.seen"].shape == ()
        cnnkit.fit(model, data, epochs=2, batch_size=32, run_dir=tmp_path)
        assert int(model[0].seen) == 2 * 96
        loaded, _ = cnnkit.load_run(tmp_path, "last")
        assert int(loaded[1].seen) == 2 * 96
        fresh = cnnkit.from_spec("INPUT(1x8x8) - COUNTER - FC(10)", rng=rng())
        fresh.load_state_dict(model.state_dict())
        assert int(fresh[0].seen) == 2 * 96
    finally:
        registry.unregister("COUNTER")


def test_a_buffer_must_be_an_array_or_a_number():
    class Named(cnnkit.Layer):
        def __init__(self):
            self.register_buffer("mode", "fast")

        def forward(self, x):
            return x

    with pytest.raises(
        ConfigError, match=r"register_buffer\('mode', \.\.\.\): a buffer is an array"
    ):
        Named()


# ---------------------------------------------------------------------------------------------
# Modes, summaries and explanations of any layer


def test_predict_puts_every_layer_back_in_its_own_mode():
    from cnnkit.train import predict

    model = cnnkit.from_spec("INPUT(1x4x4) - CONV(D=2, F=3) - RELU - FC(3)", rng=rng())
    model.train()
    model[0].eval()  # frozen
    predict(model, ones(2, 1, 4, 4))
    assert [layer.training for layer in model] == [False, True, True, True]
    assert model.training


def test_summary_of_a_float64_model_counts_eight_bytes_a_value():
    spec = "INPUT(1x8x8) - CONV(D=4, F=3) - RELU - FC(3)"
    model = cnnkit.from_spec(spec, rng=rng()).to(np.float64)
    single = cnnkit.summarize(spec)
    double = model.summary()
    assert double.dtype_bytes == 8 and "float64" in double.table().splitlines()[0]
    assert double.totals.activation_bytes == 2 * single.totals.activation_bytes
    assert cnnkit.summarize(model, dtype_bytes=4).totals == single.totals


def test_a_nested_sequential_is_one_row_with_its_layers_counts():
    inner = cnnkit.Sequential(cnnkit.Conv2d(1, 4, 3, padding=1, rng=rng()), cnnkit.ReLU())
    tail = (cnnkit.MaxPool2d(2), cnnkit.Flatten(), cnnkit.Linear(64, 3, rng=rng()))
    nested = cnnkit.Sequential(inner, *tail, input_shape=(1, 8, 8)).summary()
    flat = cnnkit.Sequential(*inner, *tail, input_shape=(1, 8, 8)).summary()
    assert nested.rows[0].layer == "[CONV(D=4, F=3, S=1, P=1) - RELU]"
    assert nested.rows[0].macs == flat.rows[0].macs + flat.rows[1].macs == 2304
    for name in ("params", "unshared_params", "macs", "activation_bytes", "cache_bytes"):
        assert getattr(nested.totals, name) == getattr(flat.totals, name), name


def test_explain_and_feature_maps_take_one_layer():
    from cnnkit.viz import feature_maps

    conv = cnnkit.Conv2d(2, 3, 3, rng=rng())
    explained = explain_layers(conv, input_shape=(2, 5, 5))
    assert [note.layer for note in explained.layers] == ["CONV(D=3, F=3, S=1, P=0)"]
    rows = feature_maps(conv, ones(2, 5, 5))
    assert len(rows) == 1 and rows[0].activation.shape == (3, 3, 3)
    with pytest.raises(ShapeError, match=r"explain_layers: the model has no input size"):
        explain_layers(cnnkit.Sequential(cnnkit.ReLU()))


def test_errors_on_live_models_name_the_layer_position():
    model = cnnkit.Sequential(cnnkit.ReLU(), cnnkit.Conv2d(2, 4, 3, rng=rng()))
    with pytest.raises(ShapeError, match=r"^layer 1 Conv2d\(2, 4"):
        explain_layers(model, input_shape=(3, 8, 8))

    class Passes(cnnkit.Layer):  # claims any shape works, then fails counting
        def output_shape(self, input_shape):
            return tuple(input_shape)

        def macs(self, input_shape):
            return cnnkit.Conv2d(3, 3, 3).macs(input_shape)

        def forward(self, x):
            return x

    with pytest.raises(ShapeError, match=r"^layer 1 Conv2d\(3, 3"):
        cnnkit.Sequential(cnnkit.ReLU(), Passes()).summary((2, 6, 6))


class Gained(cnnkit.Layer):
    """A build that writes into the weights it makes (a custom initialisation)."""

    def __init__(self, out=4, gain=0.1):
        self.out, self.gain = out, gain

    def build(self, input_shape):
        self.conv = cnnkit.Conv2d(input_shape[1], self.out, 3, padding=1, rng=rng())
        self.conv.weight.data *= self.gain

    def output_shape(self, input_shape):
        return (input_shape[0], self.out, *input_shape[2:])

    def forward(self, x):
        return self.conv.forward(x)

    def backward(self, dy):
        return self.conv.backward(dy)


def test_a_build_that_writes_its_weights_works_from_strings():
    registry.register_layer("GAINED")(Gained)
    try:
        model = cnnkit.from_spec("INPUT(2x5x5) - GAINED(out=3)")
        reference = cnnkit.Conv2d(2, 3, 3, padding=1, rng=rng())
        np.testing.assert_allclose(model[0].conv.weight.data, 0.1 * reference.weight.data)
        assert cnnkit.summarize("INPUT(2x5x5) - GAINED(out=3)").totals.params == 57
    finally:
        registry.unregister("GAINED")


def test_a_repr_never_raises():
    class Hidden(cnnkit.Layer):
        def __init__(self, factor=2.0, shift=0.0):
            self._f = factor  # not under its own name
            self.shift = shift

        def forward(self, x):
            return x

        def backward(self, dy):
            return dy

    layer = Hidden(shift=1.0)
    assert repr(layer) == "Hidden(shift=1.0)"
    with pytest.raises(StateError, match=r"^Hidden\(shift=1.0\): backward\(\) was called before"):
        layer.backward(ones(1, 1))

    class Broken(Hidden):
        def extra_repr(self):
            raise RuntimeError("oops")

    assert repr(Broken()) == "Broken(...)"


# ---------------------------------------------------------------------------------------------
# Gradient checks refuse what they cannot check, in cnnkit's words


def test_gradcheck_mistakes_are_cnnkit_errors():
    x = rng().standard_normal((2, 5))
    linear = cnnkit.Linear(5, 3, dtype=np.float64, rng=rng())
    with pytest.raises(ConfigError, match=r"targets=\.\.\. is for a loss.*Linear\(5, 3\)"):
        cnnkit.gradcheck(linear, x, targets=np.zeros(2, np.int64))
    for bad in (0, -1e-6, float("nan"), "1e-6"):
        with pytest.raises(ConfigError, match="eps must be a finite number > 0"):
            cnnkit.gradcheck(linear, x, eps=bad)
    with pytest.raises(cnnkit.DTypeError, match=r"must be a float64 NumPy array.*a NumPy scalar"):
        cnnkit.gradcheck(Scale(), np.float64(3.0))
    with pytest.raises(cnnkit.DTypeError, match=r"x is float32, but gradient checks need float64"):
        cnnkit.gradcheck(linear, x.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# Forward hooks


def test_forward_hooks_see_every_use_and_change_nothing():
    relu = cnnkit.ReLU()
    model = cnnkit.Sequential(Scale(2.0), relu, Scale(0.5), relu)
    seen = []
    handle = relu.register_forward_hook(lambda layer, inputs, y: seen.append(y.copy()))
    x = rng().standard_normal((2, 2, 3, 3)).astype(np.float32)
    y = model.forward(x)
    dx = model.backward(np.ones_like(y))
    assert len(seen) == 2
    np.testing.assert_array_equal(seen[1], y)
    handle.remove()
    handle.remove()  # a second remove does nothing
    plain = cnnkit.Sequential(Scale(2.0), cnnkit.ReLU(), Scale(0.5), cnnkit.ReLU())
    np.testing.assert_array_equal(plain.forward(x), y)
    np.testing.assert_array_equal(plain.backward(np.ones_like(y)), dx)
    model.forward(x)
    assert len(seen) == 2


def test_a_hook_that_runs_layers_joins_no_backward():
    probe_layer = Scale(3.0)
    conv = cnnkit.Conv2d(2, 2, 3, padding=1, rng=rng())

    def look(layer, inputs, y):
        probe_layer.forward(y)  # a statistic of the output, say

    conv.register_forward_hook(look)
    model = cnnkit.Sequential(conv, Scale(1.0))
    y = model.forward(ones(1, 2, 4, 4))
    model.backward(np.ones_like(y))  # the hook's forward is not waiting in the container
    with pytest.raises(StateError, match="saved nothing"):
        probe_layer.backward(np.ones_like(y))


def test_a_hook_that_returns_a_value_is_refused():
    relu = cnnkit.ReLU()
    relu.register_forward_hook(lambda layer, inputs, y: y * 2)
    with pytest.raises(ConfigError, match="a forward hook returned a value; hooks only look"):
        relu.forward(ones(1, 2))
    with pytest.raises(ConfigError, match="expects a function"):
        relu.register_forward_hook("print")


# -- found by an adversarial pass ----------------------------------------------------------------


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: cnnkit.MaxPool2d(2),
        lambda: cnnkit.AvgPool2d(2),
        lambda: cnnkit.Conv2d(3, 4, 3, padding=1),
        lambda: cnnkit.Sequential(
            cnnkit.Conv2d(3, 4, 3), cnnkit.ReLU(), cnnkit.Flatten(), cnnkit.Linear(16, 2)
        ),
    ],
)
def test_an_empty_batch_runs_on_both_engines(engine, make):
    layer = make()
    with cnnkit.use_engine(engine):
        y = layer.forward(np.zeros((0, 3, 4, 4), np.float32))
        dx = layer.backward(np.zeros_like(y))
    assert y.shape[0] == 0 and dx.shape == (0, 3, 4, 4)


class Shift(cnnkit.Layer):
    """A setting (an array) that no architecture string can hold."""

    def __init__(self, offset=(0.0, 0.0, 0.0)):
        self.offset = np.asarray(offset, np.float32)

    def forward(self, x):
        return x + self.offset[:, None, None]

    def backward(self, dy):
        return dy


def test_a_setting_without_text_still_gets_a_summary_and_an_explanation():
    registry.register_layer("EDGESHIFT")(Shift)
    try:
        model = cnnkit.Sequential(cnnkit.Conv2d(3, 3, 1), Shift((1.0, 2.0, 3.0)))
        rows = model.summary((3, 4, 4)).rows
        assert rows[1].layer.startswith("Shift(offset=array([1., 2., 3.]")
        assert "Shift(offset=" in explain_layers(model, input_shape=(3, 4, 4)).architecture
        with pytest.raises(ConfigError, match=r"^layer 1 EDGESHIFT: offset=array"):
            model.to_spec((3, 4, 4))
    finally:
        registry.unregister("EDGESHIFT")


def test_a_forward_that_returns_no_array_is_a_cnnkit_error():
    class Listing(cnnkit.Layer):
        def forward(self, x):
            return x.tolist()

        def backward(self, dy):
            return dy

    with pytest.raises(cnnkit.DTypeError, match=r"^Listing: forward returned list, not an array"):
        Listing().output_shape((1, 1, 2, 2))


def test_a_block_of_float64_children_is_probed_in_float64():
    class Block(cnnkit.Layer):
        def __init__(self):
            self.a = cnnkit.Conv2d(2, 2, 3, padding=1, dtype=np.float64)

        def forward(self, x):
            return self.a.forward(x) + x

        def backward(self, dy):
            return self.a.backward(dy) + dy

    block = Block()
    assert block.output_shape((1, 2, 5, 5)) == (1, 2, 5, 5)
    assert cnnkit.Sequential(block).summary((2, 5, 5)).totals.params == 38


def test_a_layer_without_backward_is_refused_before_training():
    class Forward(cnnkit.Layer):
        def forward(self, x):
            return x

    data = cnnkit.load_dataset("optdigits")
    model = cnnkit.Sequential(Forward(), cnnkit.Flatten(), cnnkit.Linear(64, 10))
    with pytest.raises(cnnkit.TrainingError, match=r"^layer 0 Forward: defines no backward"):
        cnnkit.fit(model, data, epochs=1)


def test_a_gradient_of_the_wrong_shape_is_blamed_on_the_layer_that_returned_it():
    class Halves(cnnkit.Layer):
        def forward(self, x):
            return x

        def backward(self, dy):
            return dy[:, :, ::2]  # a bug: half the rows

    model = cnnkit.Sequential(cnnkit.Conv2d(1, 2, 3, padding=1), Halves(), cnnkit.ReLU())
    y = model.forward(np.ones((1, 1, 4, 4), np.float32))
    with pytest.raises(ShapeError, match=r"^layer 1 Halves: backward returned dx of shape"):
        model.backward(np.ones_like(y))


def test_a_users_init_refusing_its_settings_is_located_in_the_string():
    class Picky(cnnkit.Layer):
        def __init__(self, k=1):
            if k < 0:
                raise ValueError("k must be >= 0")
            self.k = k

        def forward(self, x):
            return x

        def backward(self, dy):
            return dy

    registry.register_layer("PICKY")(Picky)
    try:
        with pytest.raises(
            ShapeError, match=r"^layer 0 PICKY\(k=-1\) on 2x2: Picky\(k=-1\) raised ValueError: k "
        ):
            cnnkit.from_spec("INPUT(1x2x2) - PICKY(k=-1)")
    finally:
        registry.unregister("PICKY")


def test_a_wrapped_summary_row_keeps_quoted_text_as_written():
    from cnnkit.summary.render import _wrap_layer

    text = "SETTING(mode=\"a, b (c)\", k=1, other='x,y')"
    lines = _wrap_layer(text, 16)
    assert len(lines) > 1  # it is wrapped, between arguments only
    assert any('mode="a, b (c)"' in line for line in lines)
    assert any("other='x,y')" in line for line in lines)


def test_fit_builds_a_lazy_model_and_refuses_one_that_does_not_fit_the_data():
    data = cnnkit.load_dataset("optdigits")
    lazy = cnnkit.Sequential(Scale(0.5), cnnkit.Flatten(), cnnkit.Linear(64, 10))
    assert len(cnnkit.fit(lazy, data, epochs=1, batch_size=512)) == 1
    wrong = cnnkit.Sequential(cnnkit.Flatten(), cnnkit.Linear(64, 7))
    with pytest.raises(ShapeError, match=r"output is 7 per image but the data has 10 classes"):
        cnnkit.fit(wrong, data, epochs=1)
    too_big = cnnkit.Sequential(cnnkit.Flatten(), cnnkit.Linear(784, 10))
    with pytest.raises(ShapeError, match=r"^layer 1 "):
        cnnkit.fit(too_big, data, epochs=1)
