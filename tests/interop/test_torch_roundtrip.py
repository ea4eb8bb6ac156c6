"""cnnkit -> torch -> cnnkit on the built-in networks and one using every layer and option:
evaluation outputs, one training step's gradients parameter by parameter, the running
statistics after it, and the model that comes back. Each network is trained a few steps first,
so BatchNorm's statistics are not the initial ones."""

import io

import numpy as np
import pytest

import cnnkit

torch = pytest.importorskip("torch")
from torch_parity import _dropouts, eval_errors, relative, step_errors, train_a_little  # noqa: E402

EVERY_LAYER = (
    "INPUT(3x21x21) - CONV(D=8, F=3, P=same, padding_mode=reflect) - BN(momentum=none)"
    " - LEAKYRELU(0.1) - CONV(D=8, F=3, P=2, dilation=2, padding_mode=replicate, bias=false)"
    " - BN(affine=false) - TANH - CONV(D=8, F=4, P=same, padding_mode=circular)"
    " - BN(track_running_stats=false) - SIGMOID - CONV(D=8, F=3, P=valid)"
    " - CONV(D=8, F=3x1, P=1x0, groups=2) - POOL(max, F=3, S=1, P=1)"
    " - POOL(avg, F=3, S=2, P=1, ceil=true, count_include_pad=false) - BN"
    " - RES[CONV(D=8, F=3, P=1) - BN - RELU - CONV(D=8, F=3, P=1) - BN] - RELU"
    " - RES[CONV(D=16, F=3, S=2, P=1) - BN - RELU - CONV(D=16, F=3, P=1) - BN"
    " | CONV(D=16, F=1, S=2) - BN] - RELU - CONV(D=16, F=3, P=1, groups=16)"
    " - POOL(max, F=2, S=1, dilation=2) - POOL(avg, F=2, S=1, P=1)"
    " - POOL(max, F=3, S=2, ceil=true) - DROPOUT2D(p=0.1) - GAP(out=2) - FC(32) - BN1D - RELU"
    " - DROPOUT(p=0.2) - FC(10)"
)

NETWORKS = {
    "lecture": lambda: cnnkit.lecture_network((1, 8, 8), 10, rng=np.random.default_rng(0)),
    "lenet5": lambda: cnnkit.from_spec("lenet5", rng=np.random.default_rng(0)),
    "resnet20": lambda: cnnkit.from_spec("resnet20", rng=np.random.default_rng(0)),
    "every layer": lambda: cnnkit.from_spec(EVERY_LAYER, rng=np.random.default_rng(0)),
}
MEASURED = {}  # network -> the largest errors seen, printed at the end (pytest -s)


def _input_shape(model):
    return tuple(model.input_shape)


@pytest.fixture(scope="module", params=list(NETWORKS))
def trained(request):
    model = NETWORKS[request.param]()
    shape = _input_shape(model)
    train_a_little(model, shape, steps=2 if request.param == "resnet20" else 3)
    return request.param, model, shape


def _record(name, kind, value):
    MEASURED.setdefault(name, {})[kind] = max(value, MEASURED.get(name, {}).get(kind, 0.0))
    print(f"{name}: {kind} max relative error {value:.2e}")


def test_the_torch_module_has_cnnkit_structure_names_and_state(trained):
    name, model, _ = trained
    module = cnnkit.to_torch(model)
    assert isinstance(module, torch.nn.Sequential)
    ours, theirs = model.state_dict(), module.state_dict()
    assert list(ours) == list(theirs)
    for key, value in ours.items():
        assert theirs[key].numpy().dtype == value.dtype, key
        np.testing.assert_array_equal(theirs[key].numpy(), value, err_msg=key)
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in module.named_parameters()]
    if name == "resnet20":
        assert sum(p.numel() for p in module.parameters()) == 272_474


def test_evaluation_outputs_are_equal(trained):
    name, model, shape = trained
    module = cnnkit.to_torch(model)
    x = np.random.default_rng(5).standard_normal((6, *shape)).astype(np.float32)
    error = eval_errors(model, module, x)
    _record(name, "eval output", error)
    assert error <= 1e-5


# float32 sums of many terms that cancel (a bias's gradient) differ in their last bits between
# two libraries; float64 shows the computations are the same
STEP_TOLERANCE = {np.float32: 1e-4, np.float64: 1e-9}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_one_training_step_gives_equal_gradients(trained, dtype):
    name, model, shape = trained
    model = cnnkit.from_spec(model.to_spec(), rng=np.random.default_rng(0))  # a copy to train
    model.load_state_dict(trained[1].state_dict())
    model.to(dtype)
    module = cnnkit.to_torch(model)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((6, *shape)).astype(dtype)
    labels = rng.integers(0, 10, 6)
    errors = step_errors(model, module, x, labels)
    worst = max(errors, key=errors.get)
    _record(name, f"training step ({np.dtype(dtype).name}) gradient/state", errors[worst])
    allowed = dict.fromkeys(errors, STEP_TOLERANCE[dtype])
    if dtype == np.float32 and not _dropouts(model):
        for key, error in _torch_float32_errors(model, x, labels).items():
            allowed[key] = max(allowed[key], 3 * error)
    assert all(errors[key] <= allowed[key] for key in errors), worst


def _torch_float32_errors(model, x, labels) -> dict[str, float]:
    """PyTorch against itself: its float32 gradients relative to its float64 ones, keyed as
    step_errors keys them. A step can be ill-conditioned (BatchNorm over nearly constant
    activations after a little training): then float32 results of any library stray from the
    float64 ones, and cnnkit's float32 is held to 3x PyTorch's own error there, not to 1e-4."""
    grads = {}
    for dtype in (torch.float32, torch.float64):
        module = cnnkit.to_torch(model).to(dtype).train()
        tx = torch.from_numpy(x).to(dtype).requires_grad_(True)
        torch.nn.functional.cross_entropy(module(tx), torch.from_numpy(labels)).backward()
        found = {f"grad {n}": p.grad for n, p in module.named_parameters()}
        grads[dtype] = {"input grad": tx.grad, **found}
    wide, narrow = grads[torch.float64], grads[torch.float32]
    return {key: relative(narrow[key].double().numpy(), wide[key].numpy()) for key in wide}


def test_the_round_trip_keeps_the_model(trained):
    name, model, shape = trained
    back = cnnkit.from_torch(cnnkit.to_torch(model), shape)
    assert back.to_spec() == model.to_spec()
    assert back.input_shape == shape
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value, err_msg=key)
    x = np.random.default_rng(7).standard_normal((5, *shape)).astype(np.float32)
    model.eval()
    back.eval()
    error = relative(back.forward(x), model.forward(x))
    _record(name, "round-trip eval output", error)
    assert error <= 1e-5


def test_modes_and_dtype_carry_over():
    model = NETWORKS["every layer"]().to(np.float64)
    model.train()
    model[2].eval()  # one layer in evaluation mode, the rest training
    module = cnnkit.to_torch(model)
    assert module.training and not module[2].training and module[1].training
    assert {p.dtype for p in module.state_dict().values() if p.is_floating_point()} == {
        torch.float64
    }
    back = cnnkit.from_torch(module, (3, 21, 21))
    assert back.training and not back[2].training and back[1].training
    assert {p.data.dtype for p in back.parameters()} == {np.dtype(np.float64)}
    x = np.random.default_rng(2).standard_normal((4, 3, 21, 21))
    assert eval_errors(back, module, x) <= 1e-12


def test_a_layer_used_twice_stays_one_module():
    relu = cnnkit.ReLU()
    model = cnnkit.Sequential(cnnkit.Conv2d(1, 2, 3, rng=np.random.default_rng(0)), relu, relu)
    module = cnnkit.to_torch(model)
    assert module[1] is module[2]
    back = cnnkit.from_torch(module, (1, 5, 5))
    assert back[1] is back[2]


def test_the_torch_module_pickles_and_loads_back(trained):
    _, model, shape = trained
    buffer = io.BytesIO()
    torch.save(cnnkit.to_torch(model), buffer)
    buffer.seek(0)
    module = torch.load(buffer, weights_only=False)
    x = np.random.default_rng(8).standard_normal((2, *shape)).astype(np.float32)
    assert eval_errors(model, module, x) <= 1e-5
