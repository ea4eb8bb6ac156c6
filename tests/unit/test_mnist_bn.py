"""The built-in mnist-bn (the default network of ``cnnkit train`` for 28x28 one-channel images):
PyTorch's layers, parameter count and numbers, in training and in evaluation mode."""

import numpy as np
import pytest

import cnnkit
from cnnkit.arch import ARCHITECTURES

torch = pytest.importorskip("torch")

TRAINABLE = 468_522  # the catalog's comment
RUNNING = 2 * (32 + 32 + 64 + 64)  # BN's running mean and variance


def torch_mnist_bn(p: float = 0.3):
    """mnist-bn as PyTorch users write it."""
    nn = torch.nn

    def block(c_in, c_out, kernel, stride=1):
        conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
        return [conv, nn.BatchNorm2d(c_out), nn.ReLU()]

    return nn.Sequential(
        *block(1, 32, 5, stride=2),
        *block(32, 32, 3),
        nn.MaxPool2d(2),
        *block(32, 64, 3),
        *block(64, 64, 3),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        nn.Dropout(p),
        nn.Linear(128, 10),
    )


def copied(model, theirs, dtype):
    """Their weights and running statistics into our model, key by key."""
    state = {key: value.detach().numpy() for key, value in theirs.state_dict().items()}
    assert list(model.state_dict()) == list(state)
    model.load_state_dict(state)
    return model.to(dtype)


def test_the_parameter_count_in_the_catalog_is_the_summarys_and_pytorchs():
    totals = cnnkit.summarize("mnist-bn").totals
    assert (
        totals.trainable_params
        == TRAINABLE
        == sum(p.numel() for p in torch_mnist_bn().parameters())
    )
    assert totals.non_trainable_params == RUNNING
    model = cnnkit.from_spec("mnist-bn", rng=np.random.default_rng(0))
    assert sum(p.size for p in model.parameters()) == TRAINABLE
    assert f"{TRAINABLE:,}" in open(cnnkit.arch.catalog.__file__).read()
    assert cnnkit.summarize("mnist-bn").rows[-1].output == "10"


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_mode_matches_pytorch(engine, dtype):
    """Batch statistics in BN; DROPOUT(0) here, as the masks are drawn by each library."""
    torch.manual_seed(0)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    theirs = torch_mnist_bn(p=0.0).to(tdtype).train()
    spec = ARCHITECTURES["mnist-bn"].replace("DROPOUT(0.3)", "DROPOUT(0)")
    assert spec != ARCHITECTURES["mnist-bn"]
    ours = copied(cnnkit.from_spec(spec, rng=np.random.default_rng(0)), theirs, dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 1, 28, 28)).astype(dtype)
    dy = rng.standard_normal((3, 10)).astype(dtype)
    with cnnkit.use_engine(engine):
        y = ours.forward(x)
        dx = ours.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(dy))
    tolerance = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=tolerance, atol=tolerance)
    grads = dict(ours.named_parameters())
    for name, parameter in theirs.named_parameters():
        np.testing.assert_allclose(
            grads[name].grad, parameter.grad.numpy(), rtol=tolerance, atol=tolerance, err_msg=name
        )
    for key, value in theirs.state_dict().items():
        if "running" in key:  # the batch statistics went into the running ones alike
            np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_evaluation_mode_matches_pytorch_with_running_statistics_and_no_dropout(engine):
    torch.manual_seed(2)
    theirs = torch_mnist_bn()
    with torch.no_grad():  # running statistics unlike the initial 0 and 1
        theirs.train()(torch.randn(16, 1, 28, 28) * 2 + 0.5)
    theirs.eval()
    ours = copied(cnnkit.from_spec("mnist-bn", rng=np.random.default_rng(0)), theirs, np.float64)
    ours.eval()
    theirs = theirs.double()
    x = np.random.default_rng(4).standard_normal((2, 1, 28, 28))
    with cnnkit.use_engine(engine), cnnkit.enable_grad():  # evaluation mode, with a backward
        y = ours.forward(x)
        dx = ours.backward(np.ones_like(y))
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-9)
    assert y.dtype == np.float64


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_central_differences_agree_with_backward_in_training_mode(engine):
    """Float64, BN on batch statistics: a loss's change along random directions of the input
    and of every parameter against backward's gradients (DROPOUT(0): the same net each call)."""
    spec = ARCHITECTURES["mnist-bn"].replace("DROPOUT(0.3)", "DROPOUT(0)")
    model = cnnkit.from_spec(spec, rng=np.random.default_rng(0), dtype=np.float64)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 1, 28, 28))
    weights = rng.standard_normal((2, 10))

    def loss(images):
        with cnnkit.use_engine(engine):
            return float((model.forward(images) * weights).sum())

    with cnnkit.use_engine(engine):
        model.forward(x)
        model.zero_grad()
        dx = model.backward(weights)
    eps = 1e-6  # small: a larger step moves some units across a ReLU kink
    direction = rng.standard_normal(x.shape)
    numeric = (loss(x + eps * direction) - loss(x - eps * direction)) / (2 * eps)
    assert numeric == pytest.approx(float((dx * direction).sum()), rel=1e-5)
    for name, parameter in model.named_parameters():
        direction = rng.standard_normal(parameter.data.shape)
        analytic = float((parameter.grad * direction).sum())
        start = parameter.data.copy()
        parameter.data[...] = start + eps * direction
        plus = loss(x)
        parameter.data[...] = start - eps * direction
        minus = loss(x)
        parameter.data[...] = start
        assert (plus - minus) / (2 * eps) == pytest.approx(analytic, rel=1e-5, abs=1e-8), name
