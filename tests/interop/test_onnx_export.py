"""cnnkit -> ONNX -> cnnkit: each network, trained a few SGD steps (so BatchNorm's running
statistics are not the initial ones), is written by export_onnx, passes ONNX's full check, runs
in ONNX Runtime to cnnkit's numbers for batches of 1 and 5, and comes back through import_onnx
computing the same; the refusals of export_onnx, each pinned to its one-line message."""

import copy
import functools
import os

import numpy as np
import pytest

import cnnkit
from cnnkit.errors import CnnkitError, ConfigError, DTypeError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from cnnkit.interop.onnx_export import export_onnx  # noqa: E402
from cnnkit.interop.onnx_import import import_onnx  # noqa: E402

TOLERANCE = 1e-5  # max |cnnkit - other| / max |cnnkit|, float32

# The modern network of tests/differential/test_modern_network.py, with every other layer and
# option: padding modes, dilation, padding='same' (asymmetric for an even kernel), pools with
# ceil_mode (where rounding up matters), count_include_pad=False and dilation, a 3 -> 2
# adaptive pool (overlapping windows), LeakyReLU, Sigmoid, Tanh, BN1D after an FC, Normalize
# first.
EVERY = (
    "INPUT(3x20x20) - NORMALIZE(mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7))"
    " - CONV(D=8, F=3, P=1, padding_mode=reflect) - BN - LEAKYRELU(0.1)"
    " - CONV(D=8, F=3, P=2, padding_mode=replicate) - SIGMOID"
    " - CONV(D=8, F=3, P=1, padding_mode=circular) - TANH"
    " - CONV(D=8, F=3, P=same, dilation=2) - CONV(D=8, F=2, P=same) - RELU"
    " - POOL(avg, F=3, S=2, P=1, ceil=true, count_include_pad=false)"
    " - POOL(max, F=3, S=2, ceil=true) - POOL(max, F=2, S=1, P=1, dilation=2, ceil=true)"
    " - RES[CONV(D=8, F=3, P=1) - BN - RELU - CONV(D=8, F=3, P=1, bias=false) - BN] - RELU"
    " - RES[CONV(D=16, F=3, S=2, P=1) - BN - RELU - CONV(D=16, F=3, P=1) - BN"
    " | CONV(D=16, F=1, S=2) - BN] - RELU - CONV(D=16, F=3, P=1, groups=16)"
    " - GAP(out=2) - DROPOUT2D(p=0.1) - POOL(avg, F=2, S=1, P=1, ceil=true) - GAP"
    " - FC(32) - BN1D - RELU - DROPOUT(p=0.2) - FC(10)"
)
MODERN = (  # tests/differential/test_modern_network.py's string, as it is
    "INPUT(3x16x16) - CONV(D=8, F=3, P=1) - BN - RELU - RES[CONV(D=8, F=3, P=1) - BN - RELU - "
    "CONV(D=8, F=3, P=1) - BN] - RELU - RES[CONV(D=16, F=3, S=2, P=1) - BN - RELU - "
    "CONV(D=16, F=3, P=1) - BN | CONV(D=16, F=1, S=2) - BN] - RELU - "
    "CONV(D=16, F=3, P=1, groups=16) - POOL(max, F=3, S=2, ceil=true) - DROPOUT2D(p=0.1) - "
    "GAP - DROPOUT(p=0.2) - FC(10)"
)
NETWORKS = {
    "lecture": lambda rng: cnnkit.lecture_network((1, 8, 8), 10, rng=rng),
    "lenet5": lambda rng: cnnkit.from_spec("lenet5", rng=rng),
    "resnet20": lambda rng: cnnkit.from_spec("resnet20", rng=rng),
    "modern": lambda rng: cnnkit.from_spec(MODERN, rng=rng),
    "every-layer": lambda rng: cnnkit.from_spec(EVERY, rng=rng),
}


def train_steps(model, steps: int = 3, batch: int = 8, seed: int = 0):
    """A few SGD steps on random images and labels, then evaluation mode."""
    rng = np.random.default_rng(seed)
    loss_fn = cnnkit.CrossEntropyLoss()
    optimizer = cnnkit.SGD(model.parameters(), lr=0.05, momentum=0.9)
    classes = model.output_shape((1, *model.input_shape))[1]
    model.train()
    for _ in range(steps):
        x = rng.standard_normal((batch, *model.input_shape)).astype(np.float32)
        loss_fn.forward(model.forward(x), rng.integers(0, classes, batch))
        optimizer.zero_grad()
        model.backward(loss_fn.backward())
        optimizer.step()
    return model.eval()


@functools.cache
def trained(name: str):
    return train_steps(NETWORKS[name](np.random.default_rng(0)))


def relative_error(ours, theirs) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(ours).max())


def run_onnx(path, x):
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def images(model, batch: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, *model.input_shape)).astype(np.float32)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_network_round_trip(name, tmp_path):
    model = trained(name)
    running = [b for k, b in model.state_dict().items() if k.endswith("running_var")]
    assert all(not np.allclose(v, 1) for v in running)  # the statistics moved in training
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    proto = onnx.load(os.fspath(path))
    onnx.checker.check_model(proto, full_check=True)
    graph = proto.graph
    assert [i.name for i in graph.input] == ["input"]
    assert [o.name for o in graph.output] == ["logits"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    back = import_onnx(path)
    assert back.input_shape == model.input_shape
    for batch in (1, 5):
        x = images(model, batch)
        ours = model.forward(x)
        assert relative_error(ours, run_onnx(path, x)) <= TOLERANCE, (name, batch)
        assert relative_error(ours, back.forward(x)) <= TOLERANCE, (name, batch)
    if not any(hasattr(layer, "p") for layer in model.modules()):  # no Dropout left out
        ours, theirs = model.state_dict(), back.state_dict()
        assert list(theirs) == list(ours)
        for key, value in ours.items():  # num_batches_tracked is not in ONNX: 0 after import
            if not key.endswith("num_batches_tracked"):
                np.testing.assert_allclose(theirs[key], value, rtol=1e-6, err_msg=key)


def test_initializers_are_named_by_state_dict_keys(tmp_path):
    model = trained("resnet20")
    proto = onnx.load(os.fspath(export_onnx(model, tmp_path / "r.onnx")))
    names = {tensor.name for tensor in proto.graph.initializer}
    floats = {k for k, v in model.state_dict().items() if v.dtype.kind == "f"}
    assert floats <= names
    assert "3.body.0.weight" in names and any(".shortcut.1.running_var" in k for k in names)


@pytest.mark.parametrize("opset", [17, 22])
def test_other_opsets(opset, tmp_path):
    if opset > onnx.defs.onnx_opset_version():
        pytest.skip(f"onnx {onnx.__version__} does not know opset {opset}")
    model = trained("modern")
    path = export_onnx(model, tmp_path / "m.onnx", opset=opset)
    proto = onnx.load(os.fspath(path))
    assert proto.opset_import[0].version == opset
    onnx.checker.check_model(proto, full_check=True)
    x = images(model, 5)
    assert relative_error(model.forward(x), run_onnx(path, x)) <= TOLERANCE


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_ceil_mode_where_the_last_window_would_start_in_the_padding(kind, tmp_path):
    """5 rows, F=2, S=2, P=1: rounding up would give 4 windows, but the 4th would start in the
    bottom padding, so PyTorch (and cnnkit) count 3; before opset 22 ONNX's shape inference
    would say 4, so the file says ceil_mode=0, which counts 3 too."""
    model = cnnkit.from_spec(
        f"INPUT(2x5x5) - POOL({kind}, F=2, S=2, P=1, ceil=true) - FC(3)",
        rng=np.random.default_rng(0),
    ).eval()
    path = export_onnx(model, tmp_path / "p.onnx")
    proto = onnx.load(os.fspath(path))
    onnx.checker.check_model(proto, full_check=True)  # the Gemm after it reads 2*3*3 values
    pool = next(node for node in proto.graph.node if node.op_type.endswith("Pool"))
    assert onnx.helper.get_node_attr_value(pool, "ceil_mode") == 0
    x = images(model, 5)
    assert relative_error(model.forward(x), run_onnx(path, x)) <= TOLERANCE
    assert import_onnx(path).output_shape((1, 2, 5, 5)) == (1, 3)


def test_ceil_mode_on_one_axis_needs_opset_22(tmp_path):
    model = cnnkit.from_spec(
        "INPUT(2x5x6) - POOL(max, F=2x3, S=2, P=1, ceil=true) - FC(3)",
        rng=np.random.default_rng(0),
    ).eval()
    with pytest.raises(ConfigError, match=r"^layer 0 \(MaxPool2d\): ceil_mode rounds up on one"):
        export_onnx(model, tmp_path / "p.onnx")
    if onnx.defs.onnx_opset_version() >= 22:
        path = export_onnx(model, tmp_path / "p.onnx", opset=22)
        x = images(model, 3)
        assert relative_error(model.forward(x), run_onnx(path, x)) <= TOLERANCE


def test_uniform_adaptive_windows_and_refused_ones(tmp_path):
    rng = np.random.default_rng(0)
    for size, out in ((7, 3), (8, 2), (6, (3, 2))):
        model = cnnkit.Sequential(cnnkit.AdaptiveAvgPool2d(out), input_shape=(2, size, size))
        x = images(model, 2)
        path = export_onnx(model, tmp_path / "a.onnx")
        assert relative_error(model.forward(x), run_onnx(path, x)) <= TOLERANCE
    model = cnnkit.Sequential(
        cnnkit.Conv2d(2, 2, 1, rng=rng), cnnkit.AdaptiveAvgPool2d(3), input_shape=(2, 5, 5)
    )
    with pytest.raises(
        ConfigError,
        match=r"^layer 1 \(AdaptiveAvgPool2d\): on 5 inputs its 3 windows are \[2, 3, 2\] wide",
    ):
        export_onnx(model, tmp_path / "a.onnx")


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
def test_padding_modes_with_asymmetric_same(padding_mode, tmp_path):
    conv = cnnkit.Conv2d(
        2,
        3,
        (2, 4),
        padding="same",
        dilation=(3, 1),
        padding_mode=padding_mode,
        rng=np.random.default_rng(0),
    )
    model = cnnkit.Sequential(conv, input_shape=(2, 7, 9)).eval()
    path = export_onnx(model, tmp_path / "c.onnx")
    x = images(model, 2)
    assert relative_error(model.forward(x), run_onnx(path, x)) <= TOLERANCE
    back = import_onnx(path)
    assert back[0].padding_mode == padding_mode and back[0].sides == conv.sides


def test_circular_padding_needs_opset_19(tmp_path):
    model = cnnkit.from_spec("INPUT(1x6x6) - CONV(D=2, F=3, P=1, padding_mode=circular)")
    with pytest.raises(
        ConfigError, match=r"^layer 0 \(Conv2d\): circular padding is ONNX's Pad mode 'wrap'"
    ):
        export_onnx(model, tmp_path / "c.onnx", opset=17)


class Scale(cnnkit.Layer):
    """A user's layer with its own ONNX exporter (a Mul by a per-channel weight it creates
    once it knows its input)."""

    def __init__(self, init=2.0):
        self.init = init

    def build(self, input_shape):
        self.weight = cnnkit.Parameter(np.full(input_shape[1], self.init, self.dtype), "weight")

    def forward(self, x):
        return x * self.weight.data[:, None, None]

    def backward(self, dy):
        return dy * self.weight.data[:, None, None]

    def onnx_nodes(self, graph, x):
        factor = graph.add_initializer(self.weight.data.reshape(-1, 1, 1), "weight")
        return graph.add_node("Mul", [x, factor])


class Plain(cnnkit.Layer):
    """A user's layer without one."""

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy


class Broken(Plain):
    """A user's exporter that writes a node ONNX does not know."""

    def onnx_nodes(self, graph, x):
        return graph.add_node("NoSuchOp", [x])


class DoubledReLU(cnnkit.ReLU):
    """A subclass that computes differently from the class whose exporter it inherits."""

    def forward(self, x):
        return 2 * super().forward(x)


def test_a_users_layer_with_the_hook_exports(tmp_path):
    model = cnnkit.Sequential(cnnkit.ReLU(), Scale(3.0), input_shape=(2, 4, 4))
    path = export_onnx(model, tmp_path / "s.onnx")  # builds the model first
    assert "1.weight" in {t.name for t in onnx.load(os.fspath(path)).graph.initializer}
    x = images(model, 2)
    assert relative_error(model.forward(x), run_onnx(path, x)) <= TOLERANCE


def test_layers_without_an_exporter_are_refused_by_name_and_path(tmp_path):
    rng = np.random.default_rng(0)
    flat = cnnkit.Sequential(
        cnnkit.Conv2d(1, 2, 3, padding=1, rng=rng),
        cnnkit.ReLU(),
        cnnkit.ReLU(),
        Plain(),
        input_shape=(1, 4, 4),
    )
    with pytest.raises(
        ConfigError,
        match=r"^layer 3 \(Plain\): no ONNX exporter; give the class an onnx_nodes\(\) method$",
    ):
        export_onnx(flat, tmp_path / "x.onnx")
    nested = cnnkit.Sequential(
        cnnkit.ReLU(),
        cnnkit.Residual(cnnkit.Sequential(cnnkit.ReLU(), Plain())),
        input_shape=(1, 4, 4),
    )
    with pytest.raises(ConfigError, match=r"^layer 1\.body\.1 \(Plain\): no ONNX exporter"):
        export_onnx(nested, tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match=r"^the model \(Plain\): no ONNX exporter"):
        export_onnx(Plain(), tmp_path / "x.onnx", input_shape=(1, 4, 4))
    inherited = cnnkit.Sequential(DoubledReLU(), input_shape=(1, 4, 4))
    with pytest.raises(
        ConfigError, match=r"^layer 0 \(DoubledReLU\): its forward differs from ReLU's"
    ):
        export_onnx(inherited, tmp_path / "x.onnx")
    broken = cnnkit.Sequential(cnnkit.ReLU(), Broken(), input_shape=(1, 4, 4))
    with pytest.raises(
        ConfigError, match=r"^export_onnx: the graph the layers wrote fails ONNX's checker \("
    ):
        export_onnx(broken, tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())  # nothing written, no temporary file left


def test_refusals(tmp_path):
    rng = np.random.default_rng(0)
    plain = cnnkit.Sequential(cnnkit.Conv2d(1, 2, 3, rng=rng))
    with pytest.raises(ConfigError, match=r"^export_onnx: Sequential does not know its input"):
        export_onnx(plain, tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match=r"^export_onnx: input_shape must be \(C, H, W\)"):
        export_onnx(plain, tmp_path / "x.onnx", input_shape=(1, 8))
    with pytest.raises(ConfigError, match=r"^export_onnx: opset must be an int from 13 to"):
        export_onnx(plain, tmp_path / "x.onnx", input_shape=(1, 8, 8), opset=7)
    double = copy.deepcopy(trained("lecture")).to(np.float64)
    with pytest.raises(DTypeError, match=r"^export_onnx: Sequential is float64, and the ONNX"):
        export_onnx(double, tmp_path / "x.onnx")
    batch_only = cnnkit.from_spec("INPUT(2x4x4) - BN(track_running_stats=false) - FC(2)", rng=rng)
    with pytest.raises(ConfigError, match=r"^layer 0 \(BatchNorm2d\): without running statistics"):
        export_onnx(batch_only, tmp_path / "x.onnx")
    with pytest.raises(
        CnnkitError, match=r"^layer 0 Conv2d\(1, 2, kernel_size=3\): the 3-wide filter is larger"
    ):
        export_onnx(plain, tmp_path / "x.onnx", input_shape=(1, 2, 2))
    assert not list(tmp_path.iterdir())


def test_written_atomically_over_an_existing_file(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    assert export_onnx(trained("lecture"), target) == target
    assert onnx.load(os.fspath(target)).producer_name == "cnnkit"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_without_the_onnx_package(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with pytest.raises(ConfigError, match=r"need the onnx package.*pip install cnnkit\[onnx\]$"):
        export_onnx(trained("lecture"), tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match=r"pip install cnnkit\[onnx\]$"):
        import_onnx(tmp_path / "x.onnx")
