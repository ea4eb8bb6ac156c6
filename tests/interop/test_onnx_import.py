"""ONNX -> cnnkit: graphs written by hand with onnx.helper in the forms other exporters write
(Conv with pads, MatMul + Add, Reshape to (N, -1), residual Adds, Softmax at the end, Constant
weights, Gemm with alpha/beta, Pad before a Conv or an AveragePool, auto_pad, Sub + Div), and a
model exported by PyTorch's own exporter, run in cnnkit as ONNX Runtime runs them; the imported
model takes part in summaries, explanations and training; bad files and graphs are refused in
one line, pinned here."""

import os

import numpy as np
import pytest

import cnnkit
from cnnkit.errors import DataError
from cnnkit.explain import explain_layers
from cnnkit.nn import registry

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cnnkit.interop.onnx_export import export_onnx  # noqa: E402
from cnnkit.interop.onnx_import import import_onnx  # noqa: E402

TOLERANCE = 1e-5  # max |cnnkit - ONNX Runtime| / max |cnnkit|, float32
RNG = np.random.default_rng(0)


def tensor(name, *shape, scale=0.3):
    return numpy_helper.from_array((scale * RNG.standard_normal(shape)).astype(np.float32), name)


def constant_node(name, array):
    """A Constant node holding ``array`` (weights given as nodes, not initializers)."""
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


def save(tmp_path, nodes, initializers, input_shape, output_shape=None, opset=17):
    """The graph x -> y written to a file (y's shape: the input's unless given)."""
    graph = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape or input_shape)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / f"g{len(list(tmp_path.iterdir()))}.onnx"
    onnx.save(model, os.fspath(path))
    return path


def run_onnx(path, x):
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def relative_error(ours, theirs) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(ours).max())


def hand_graph(tmp_path):
    """Conv with pads (weights a Constant node), Relu, an identity residual written x + f(x),
    a projection residual, MaxPool, Reshape(N, -1) by a Constant shape, MatMul + Add, Softmax."""
    nodes = [
        constant_node("w0", (0.3 * RNG.standard_normal((4, 3, 3, 3))).astype(np.float32)),
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], name="n0", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"], name="n1"),
        helper.make_node("Conv", ["r0", "w1"], ["c1"], name="n2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="n3"),
        helper.make_node("Add", ["r0", "r1"], ["a0"], name="n4"),  # x + body(x)
        helper.make_node(
            "Conv", ["a0", "w2", "b2"], ["c2"], name="n5", pads=[1, 1, 1, 1], strides=[2, 2]
        ),
        helper.make_node("Conv", ["a0", "w3"], ["c3"], name="n6", strides=[2, 2]),
        helper.make_node("Add", ["c2", "c3"], ["a1"], name="n7"),  # body + shortcut
        helper.make_node("MaxPool", ["a1"], ["p0"], name="n8", kernel_shape=[2, 2], strides=[2, 2]),
        constant_node("shape", np.array([0, -1], np.int64)),
        helper.make_node("Reshape", ["p0", "shape"], ["f0"], name="n9"),
        helper.make_node("MatMul", ["f0", "w4"], ["m0"], name="n10"),
        helper.make_node("Add", ["m0", "b4"], ["logits"], name="n11"),
        helper.make_node("Softmax", ["logits"], ["y"], name="n12", axis=1),
    ]
    initializers = [
        tensor("b0", 4),
        tensor("w1", 4, 4, 3, 3),
        tensor("w2", 6, 4, 3, 3),
        tensor("b2", 6),
        tensor("w3", 6, 4, 1, 1),
        tensor("w4", 6 * 2 * 2, 5),
        tensor("b4", 5),
    ]
    return save(tmp_path, nodes, initializers, ["N", 3, 8, 8], ["N", 5])


def test_a_graph_written_by_hand_runs_as_onnx_runtime_runs_it(tmp_path):
    path = hand_graph(tmp_path)
    model = import_onnx(path)
    assert model.input_shape == (3, 8, 8)
    assert cnnkit.to_spec(model) == (
        "INPUT(3x8x8) - CONV(D=4, F=3, S=1, P=1) - RELU - RES[CONV(D=4, F=3, S=1, P=1, "
        "bias=false) - RELU] - RES[CONV(D=6, F=3, S=2, P=1) | CONV(D=6, F=1, S=2, P=0, "
        "bias=false)] - POOL(max, F=2, S=2) - FC(5)"
    )
    for batch in (1, 5):
        x = RNG.standard_normal((batch, 3, 8, 8)).astype(np.float32)
        theirs = run_onnx(path, x)  # with the Softmax, which cnnkit drops
        assert relative_error(theirs, softmax(model.forward(x))) <= TOLERANCE


def test_other_forms_of_the_same_layers(tmp_path):
    """Sub + Div, Pad(edge) + Conv, auto_pad SAME_UPPER, a zero Pad + AveragePool, Dropout,
    Identity, Flatten, Gemm with transB=0, alpha and beta, BatchNormalization after it."""
    mean, std = np.array([0.5, -0.2], np.float32), np.array([2.0, 0.5], np.float32)
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["s0"], name="sub"),
        helper.make_node("Div", ["s0", "std"], ["s1"], name="div"),
        helper.make_node("Pad", ["s1", "pads"], ["d0"], name="pad", mode="edge"),
        helper.make_node("Conv", ["d0", "w0"], ["c0"], name="conv0"),
        helper.make_node("Tanh", ["c0"], ["t0"], name="tanh"),
        helper.make_node("Conv", ["t0", "w1", "b1"], ["c1"], name="conv1", auto_pad="SAME_UPPER"),
        helper.make_node("Pad", ["c1", "zero_pads"], ["d1"], name="pad1"),
        helper.make_node(
            "AveragePool", ["d1"], ["a0"], name="avg", kernel_shape=[3, 3], strides=[2, 2]
        ),
        helper.make_node("Dropout", ["a0", "ratio"], ["o0"], name="drop"),
        helper.make_node("Identity", ["o0"], ["i0"], name="same"),
        helper.make_node("Flatten", ["i0"], ["f0"], name="flat", axis=1),
        helper.make_node("Gemm", ["f0", "w2", "b2"], ["g0"], name="gemm", alpha=0.5, beta=2.0),
        helper.make_node(
            "BatchNormalization",
            ["g0", "scale", "shift", "mu", "var"],
            ["y"],
            name="bn",
            epsilon=1e-3,
        ),
    ]
    initializers = [
        numpy_helper.from_array(mean.reshape(1, 2, 1, 1), "mean"),
        numpy_helper.from_array(std.reshape(2, 1, 1), "std"),
        numpy_helper.from_array(np.array([0, 0, 2, 1, 0, 0, 2, 1], np.int64), "pads"),
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "zero_pads"),
        numpy_helper.from_array(np.array(0.3, np.float32), "ratio"),
        tensor("w0", 3, 2, 5, 3),
        tensor("w1", 3, 3, 4, 4),
        tensor("b1", 3),
        tensor("w2", 3 * 4 * 5, 7),
        tensor("b2", 7),
        tensor("scale", 7),
        tensor("shift", 7),
        tensor("mu", 7),
        numpy_helper.from_array(np.full(7, 0.7, np.float32), "var"),
    ]
    path = save(tmp_path, nodes, initializers, [2, 2, 8, 10], [2, 7])
    model = import_onnx(path)
    assert [type(layer).__name__ for layer in model] == [
        "Normalize",
        "Conv2d",
        "Tanh",
        "Conv2d",
        "AvgPool2d",
        "Dropout",
        "Flatten",
        "Linear",
        "BatchNorm1d",
    ]
    assert model[1].padding_mode == "replicate" and model[3].padding == (1, 1)
    assert model[3].sides == ((1, 2), (1, 2)) and model[5].p == pytest.approx(0.3)
    assert model[4].count_include_pad and not model.training
    x = RNG.standard_normal((2, 2, 8, 10)).astype(np.float32)
    assert relative_error(model.forward(x), run_onnx(path, x)) <= TOLERANCE


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_a_pytorch_export_imports(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    from torch_models import block_class

    block = block_class()
    torch.manual_seed(0)
    theirs = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        block(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.AvgPool2d(2, 1, padding=1),
        nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(8, 10),
        nn.Softmax(dim=1),
    )
    with torch.no_grad():  # running statistics that are not the initial ones
        for _ in range(3):
            theirs(torch.randn(8, 3, 12, 12))
    theirs.eval()
    path = tmp_path / "torch.onnx"
    try:
        torch.onnx.export(
            theirs,
            (torch.randn(2, 3, 12, 12),),
            os.fspath(path),
            dynamo=False,
            input_names=["input"],
            dynamic_axes={"input": {0: "N"}},
        )
    except ImportError as error:  # the legacy exporter needs nothing more in 2.13; if it does
        pytest.skip(f"torch.onnx.export needs a package that is not installed: {error}")
    model = import_onnx(path)
    x = torch.randn(5, 3, 12, 12)
    with torch.no_grad():
        logits = theirs[:-1](x).numpy()
    assert relative_error(logits, model.forward(x.numpy())) <= TOLERANCE
    assert model[0].padding_mode == "reflect"


def test_the_imported_model_is_summarised_explained_and_trained(tmp_path):
    model = import_onnx(hand_graph(tmp_path))
    summary = cnnkit.summarize(model)
    assert summary.totals.trainable_params == sum(p.size for p in model.parameters())
    assert len(explain_layers(model).layers) == len(model)
    rng = np.random.default_rng(0)
    images = rng.random((40, 3, 8, 8), dtype=np.float32)
    labels = rng.integers(0, 5, 40)
    data = cnnkit.Dataset(
        "hand",
        [str(i) for i in range(5)],
        (3, 8, 8),
        images[:24],
        labels[:24],
        images[24:32],
        labels[24:32],
        images[32:],
        labels[32:],
        np.zeros(3, np.float32),
        np.ones(3, np.float32),
        "0" * 16,
    )
    before = model.state_dict()["0.weight"].copy()
    history = cnnkit.fit(model, data, epochs=1, batch_size=8, augment_shift=0)
    assert len(history) == 1 and np.isfinite(history[0].train_loss)
    assert not np.array_equal(model.state_dict()["0.weight"], before)


def test_a_users_registered_layer_reads_its_op(tmp_path):
    @cnnkit.register_layer("HARDSWISH")
    class HardSwish(cnnkit.Layer):
        onnx_ops = ("HardSwish",)

        def forward(self, x):
            return x * np.clip(x + 3, 0, 6) / 6

        def backward(self, dy):
            raise NotImplementedError

        @classmethod
        def from_onnx(cls, node):
            return node.build(cls)

    try:
        nodes = [helper.make_node("HardSwish", ["x"], ["y"], name="hs")]
        path = save(tmp_path, nodes, [], [1, 2, 4, 4], opset=14)
        model = import_onnx(path)
        x = RNG.standard_normal((1, 2, 4, 4)).astype(np.float32) * 4
        assert relative_error(model.forward(x), run_onnx(path, x)) <= TOLERANCE
    finally:
        registry.unregister("HARDSWISH")


def test_an_unsupported_op_is_refused_naming_the_node(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="n6"),
        helper.make_node("HardSwish", ["r"], ["y"], name="n7"),
    ]
    path = save(tmp_path, nodes, [], [1, 2, 4, 4], opset=14)
    with pytest.raises(
        DataError,
        match=r"^ONNX node 'n7' \(HardSwish\) is not supported; cnnkit reads: Add, AveragePool, "
        r"BatchNormalization, Constant, Conv, Div, Dropout, Flatten, Gemm, GlobalAveragePool, "
        r"Identity, LeakyRelu, MatMul, MaxPool, Pad, Relu, Reshape, Sigmoid, Softmax, Sub, "
        r"Tanh$",
    ):
        import_onnx(path)


def test_bad_files_are_refused_in_one_line(tmp_path):
    good = export_onnx(cnnkit.lecture_network((1, 8, 8), 10, rng=RNG).eval(), tmp_path / "m.onnx")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(1).bytes(4096))
    for path in (truncated, garbage):
        with pytest.raises(DataError, match=rf"^{path}: not (an|a valid) ONNX model \(") as info:
            import_onnx(path)
        assert "\n" not in str(info.value)
    with pytest.raises(DataError, match=r"bytes, more than the 1,000 import_onnx reads; pass"):
        import_onnx(good, max_bytes=1000)
    with pytest.raises(DataError, match=r"missing.onnx: cannot be read \(No such file"):
        import_onnx(tmp_path / "missing.onnx")


def test_graphs_cnnkit_cannot_read_are_refused_in_one_line(tmp_path):
    relu = [helper.make_node("Relu", ["x"], ["y"], name="r")]
    path = save(tmp_path, relu, [], ["N", 3, "H", 8])
    with pytest.raises(
        DataError,
        match=r"input 'x' has shape \(N, 3, H, 8\); cnnkit needs images \(N, C, H, W\)"
        r" with static C, H and W",
    ):
        import_onnx(path)
    with pytest.raises(DataError, match=r"opset 9; cnnkit reads opset 11 and later"):
        import_onnx(save(tmp_path, relu, [], [1, 3, 4, 4], opset=9))
    middle = [
        helper.make_node("Softmax", ["x"], ["s"], name="soft", axis=1),
        helper.make_node("Relu", ["s"], ["y"], name="r"),
    ]
    with pytest.raises(DataError, match=r"^ONNX node 'soft' \(Softmax\): a Softmax is read only"):
        import_onnx(save(tmp_path, middle, [], [1, 3, 4, 4]))
    three = [
        helper.make_node("Relu", ["x"], ["a"], name="a"),
        helper.make_node("Relu", ["x"], ["b"], name="b"),
        helper.make_node("Sum", ["x", "a", "b"], ["y"], name="sum"),
    ]
    with pytest.raises(DataError, match=r"ONNX value 'x' is read by 3 nodes; cnnkit reads forks"):
        import_onnx(save(tmp_path, three, [], [1, 3, 4, 4]))
    undefined = [helper.make_node("Relu", ["nowhere"], ["y"], name="r")]
    with pytest.raises(DataError, match=r"not a valid ONNX model \("):
        import_onnx(save(tmp_path, undefined, [], [1, 3, 4, 4]))
    unequal = [
        helper.make_node("Conv", ["x", "w"], ["y"], name="c", pads=[2, 0, 0, 0], strides=[1, 1])
    ]
    with pytest.raises(
        DataError, match=r"^ONNX node 'c' \(Conv\): gives 9x4 in ONNX but 11x4 as cnnkit's"
    ):
        import_onnx(save(tmp_path, unequal, [tensor("w", 2, 3, 1, 1)], [1, 3, 7, 4], [1, 2, 9, 4]))
    bomb = [
        helper.make_node("ConstantOfShape", ["huge"], ["pads"], name="bomb"),
        helper.make_node("Pad", ["x", "pads"], ["y"], name="pad"),
    ]
    huge = numpy_helper.from_array(np.array([1 << 20, 1 << 20], np.int64), "huge")
    with pytest.raises(
        DataError,
        match=r"^ONNX node 'bomb' \(ConstantOfShape\) would compute a constant of "
        r"1,099,511,627,776 values from constants, more than the 16,777,216",
    ):
        import_onnx(save(tmp_path, bomb, [huge], [1, 3, 4, 4]))


def _conv(**attributes):
    return [helper.make_node("Conv", ["x", "W"], ["y"], name="c", **attributes)], [
        tensor("W", 4, 2, 3, 3)
    ]


MALFORMED = {
    "pads of two values": (_conv(pads=[1, 1]), r"'c' \(Conv\): pads \[1, 1\]: give four values"),
    "one stride": (_conv(strides=[2]), r"'c' \(Conv\): strides \[2\]: give two integers >= 1"),
    "three dilations": (_conv(dilations=[1, 1, 1]), r"dilations \[1, 1, 1\]: give two integers"),
    "a zero stride": (_conv(strides=[0, 1]), r"strides \[0, 1\]: give two integers >= 1"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_window_attributes_are_one_line_naming_the_node(tmp_path, case):
    (nodes, initializers), message = MALFORMED[case]
    path = save(tmp_path, nodes, initializers, ["N", 2, 8, 8], ["N", 4, 6, 6])
    with pytest.raises(DataError, match=message):
        import_onnx(path)


def test_a_constant_without_its_value_and_a_vector_ratio_are_one_line(tmp_path):
    empty = helper.make_node("Constant", [], ["c"], name="c")
    nodes = [empty, helper.make_node("Sub", ["x", "c"], ["y"], name="s")]
    with pytest.raises(DataError, match=r"'c' \(Constant\) has 0 attributes"):
        import_onnx(save(tmp_path, nodes, [], ["N", 2, 8, 8]))
    ratio = numpy_helper.from_array(np.array([0.3, 0.2], np.float32), "r")
    nodes = [helper.make_node("Dropout", ["x", "r"], ["y"], name="d")]
    with pytest.raises(DataError, match=r"'d' \(Dropout\): is malformed \(TypeError"):
        import_onnx(save(tmp_path, nodes, [ratio], ["N", 2, 8, 8]))


@pytest.mark.parametrize("target", [[3, -1], [1, 128]])
def test_a_reshape_that_fixes_the_batch_is_refused(tmp_path, target):
    shape = numpy_helper.from_array(np.array(target, np.int64), "s")
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"], name="r")]
    with pytest.raises(DataError, match=r"'r' \(Reshape\): reshapes to .* \(N, -1\) only"):
        import_onnx(save(tmp_path, nodes, [shape], ["N", 2, 8, 8], ["N", 128]))


def test_residual_blocks_nested_past_the_grammars_depth_are_refused(tmp_path):
    nodes, names, value = [], [], "x"
    for i in range(12):  # Relu(Relu(...) + ...) + x, twelve blocks deep
        nodes.append(helper.make_node("Relu", [value], [f"r{i}"]))
        names.append(value)
        value = f"r{i}"
    for i in reversed(range(12)):
        nodes.append(helper.make_node("Add", [value, names[i]], [f"a{i}" if i else "y"]))
        value = f"a{i}"
    with pytest.raises(DataError, match="residual blocks nest more than 8 deep"):
        import_onnx(save(tmp_path, nodes, [], ["N", 2, 8, 8]))
