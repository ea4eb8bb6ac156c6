"""torch -> cnnkit: modules written in PyTorch the way its users write them, converted and
compared in evaluation and in one training step; what cannot be converted is refused in one
line naming the module and its path."""

import numpy as np
import pytest

import cnnkit
from cnnkit.errors import ConfigError, ShapeError

torch = pytest.importorskip("torch")
nn = torch.nn
from torch_models import block_class, resnet20  # noqa: E402
from torch_parity import eval_errors, step_errors  # noqa: E402

Block = block_class()


def modern():
    """test_modern_network's network in plain PyTorch (torch's own Dropout modules)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        Block(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())),
        Block(
            nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16)),
            nn.Sequential(nn.Conv2d(8, 16, 1, stride=2), nn.BatchNorm2d(16)),
        ),
        nn.LeakyReLU(0.2),
        nn.Conv2d(16, 16, 3, padding=1, groups=16, padding_mode="reflect"),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Dropout2d(0.1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(16, 10),
    )


def _trained(module, shape, steps=3):
    """A few SGD steps in torch, so the running statistics are not the initial ones."""
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.05, momentum=0.9)
    module.train()
    for _ in range(steps):
        x = torch.randn(8, *shape)
        loss = nn.functional.cross_entropy(module(x), torch.randint(0, 10, (8,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return module


CASES = {"resnet20": (resnet20, (3, 16, 16)), "modern": (modern, (3, 16, 16))}


@pytest.mark.parametrize("case", list(CASES))
def test_a_torch_network_converts_with_equal_outputs_and_gradients(case):
    make, shape = CASES[case]
    module = _trained(make(), shape)
    model = cnnkit.from_torch(module, shape)
    assert model.input_shape == shape
    assert list(model.state_dict()) == list(module.state_dict())
    x = np.random.default_rng(3).standard_normal((4, *shape)).astype(np.float32)
    error = eval_errors(model, module, x)
    print(f"from_torch {case}: eval output max relative error {error:.2e}")
    assert error <= 1e-5
    labels = np.random.default_rng(4).integers(0, 10, 4)
    errors = step_errors(model, module, x, labels)
    worst = max(errors, key=errors.get)
    print(f"from_torch {case}: training-step gradient/state max relative error {errors[worst]:.2e}")
    assert errors[worst] <= 1e-4, worst  # float32 sums that cancel: see test_torch_roundtrip


def test_floor_rounding_where_pytorch_floors():
    module = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    model = cnnkit.from_torch(module, (1, 10, 10))  # (10 - 3)/2 + 1 = 4.5: torch floors to 4
    assert model[0].rounding == "floor" and model[2].rounding == "strict"
    x = np.random.default_rng(0).standard_normal((2, 1, 10, 10)).astype(np.float32)
    assert eval_errors(model, module, x) <= 1e-6
    assert cnnkit.from_torch(module, (1, 11, 11))[0].rounding == "strict"  # 11 divides


def test_a_single_module_becomes_layer_0():
    block = Block(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.ReLU()))
    model = cnnkit.from_torch(block.eval(), (2, 5, 5))
    assert list(model.state_dict()) == ["0.body.0.weight", "0.body.0.bias"]
    assert not model.training and model.to_spec().startswith("INPUT(2x5x5) - RES[")
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
    assert eval_errors(model, block, x) <= 1e-6


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (
            nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.Hardswish())),
            r"^Hardswish at 1\.1: no cnnkit layer takes Hardswish; cnnkit converts "
            r"AdaptiveAvgPool2d, .*Conv2d.* and residual blocks",
        ),
        (nn.Hardswish(), r"^Hardswish \(the model itself\): no cnnkit layer takes Hardswish"),
        (
            nn.Sequential(nn.Flatten(2)),
            r"^Flatten at 0: start_dim=2 is not supported: cnnkit's FC, BN1D and DROPOUT after a "
            r"FLATTEN take \(N, features\), the batch kept; use start_dim=1$",
        ),
        (
            nn.Sequential(nn.MaxPool2d(2, return_indices=True)),
            r"^MaxPool2d at 0: return_indices=True is not supported: cnnkit's MaxPool2d returns "
            r"the pooled values only; use return_indices=False$",
        ),
        (
            nn.Sequential(nn.AvgPool2d(2, divisor_override=3)),
            r"^AvgPool2d at 0: divisor_override=3 is not supported",
        ),
    ],
)
def test_what_cannot_be_converted_is_refused_naming_it(module, message):
    with pytest.raises(ConfigError, match=message):
        cnnkit.from_torch(module, (1, 8, 8))


def test_a_module_that_does_not_fit_the_input_is_refused_naming_it():
    module = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(10, 2))
    with pytest.raises(ShapeError, match=r"^Linear at 2: Linear\(10, 2\): expected 10 input"):
        cnnkit.from_torch(module, (1, 8, 8))
    with pytest.raises(ShapeError, match=r"^Conv2d at 0: .*expected 1 input channels?"):
        cnnkit.from_torch(module, (3, 8, 8))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: cnnkit.from_torch("resnet20", (3, 32, 32)),
            r"expected a torch\.nn\.Module, got str",
        ),
        (lambda: cnnkit.from_torch(nn.ReLU(), (8, 8)), r"input_shape must be \(C, H, W\)"),
        (
            lambda: cnnkit.from_torch(nn.Linear(2, 2).half(), (1, 1, 2)),
            r"holds float16 parameters or buffers; .*module\.float\(\)",
        ),
        (lambda: cnnkit.to_torch(nn.ReLU()), r"expected a cnnkit model .*, got ReLU; for a torch"),
    ],
)
def test_wrong_arguments_are_one_line(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
