"""The modern layers together: the issue's example network as a string and the same network
written in PyTorch, weights copied by state_dict key, equal in training and evaluation mode
(outputs, input gradients, every parameter gradient, the running statistics)."""

import copy

import numpy as np
import pytest

import cnnkit
from cnnkit.functional.dropout import dropout_forward

torch = pytest.importorskip("torch")
nn = torch.nn
from torch_models import block_class  # noqa: E402

TEXT = (
    "INPUT(3x16x16) - CONV(D=8, F=3, P=1) - BN - RELU - RES[CONV(D=8, F=3, P=1) - BN - RELU - "
    "CONV(D=8, F=3, P=1) - BN] - RELU - RES[CONV(D=16, F=3, S=2, P=1) - BN - RELU - "
    "CONV(D=16, F=3, P=1) - BN | CONV(D=16, F=1, S=2) - BN] - RELU - "
    "CONV(D=16, F=3, P=1, groups=16) - POOL(max, F=3, S=2, ceil=true) - DROPOUT2D(p=0.1) - "
    "GAP - DROPOUT(p=0.2) - FC(10)"
)


Block = block_class()


class Masked(nn.Module):
    """Dropout with masks given from outside (cnnkit's), PyTorch's formula x * mask / (1 - p)."""

    def __init__(self, p):
        super().__init__()
        self.p = p
        self.masks = []

    def forward(self, x):
        if not self.training:
            return x
        mask = torch.tensor(self.masks.pop(0), dtype=x.dtype)
        return x * mask / (1 - self.p)


def torch_network():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        Block(
            nn.Sequential(
                nn.Conv2d(8, 8, 3, padding=1),
                nn.BatchNorm2d(8),
                nn.ReLU(),
                nn.Conv2d(8, 8, 3, padding=1),
                nn.BatchNorm2d(8),
            )
        ),
        nn.ReLU(),
        Block(
            nn.Sequential(
                nn.Conv2d(8, 16, 3, stride=2, padding=1),
                nn.BatchNorm2d(16),
                nn.ReLU(),
                nn.Conv2d(16, 16, 3, padding=1),
                nn.BatchNorm2d(16),
            ),
            nn.Sequential(nn.Conv2d(8, 16, 1, stride=2), nn.BatchNorm2d(16)),
        ),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        Masked(0.1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        Masked(0.2),
        nn.Linear(16, 10),
    )


def test_the_example_parses_builds_summarises_and_round_trips():
    model = cnnkit.from_spec(TEXT, rng=np.random.default_rng(0))
    spec = cnnkit.to_spec(model)
    assert cnnkit.to_spec(cnnkit.from_spec(spec)) == spec
    assert cnnkit.parse(spec).text() == spec
    summary = cnnkit.summarize(TEXT)
    theirs = torch_network()
    assert summary.totals.trainable_params == sum(p.numel() for p in theirs.parameters())
    buffers = sum(b.numel() for k, b in theirs.state_dict().items() if "running" in k)
    assert summary.totals.non_trainable_params == buffers
    assert summary.totals.params == summary.totals.trainable_params + buffers
    assert summary.rows[-1].output == "10"


def _masks_of(model, shapes):
    """The masks each Dropout layer of ``model`` will draw next, from copies of its generator
    (the layer's own function, so they are the masks the forward uses); ``shapes`` gives each
    layer's input shape and whether it drops whole channels."""
    masks = []
    for layer, (shape, channels) in zip(_dropouts(model), shapes, strict=True):
        rng = copy.deepcopy(layer.rng)
        _, mask = dropout_forward(np.ones(shape), layer.p, rng, channels=channels)
        masks.append(np.broadcast_to(mask, shape).astype(np.float64))
    return masks


def _dropouts(model):
    return [layer for layer in model.modules() if hasattr(layer, "p") and hasattr(layer, "rng")]


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_train_and_eval_match_pytorch(engine):
    torch.manual_seed(0)
    theirs = torch_network().double()
    model = cnnkit.from_spec(TEXT, rng=np.random.default_rng(0), dtype=np.float64)
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert list(model.state_dict()) == list(state)
    model.load_state_dict(state)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 16, 16))
    dy = rng.standard_normal((4, 10))
    masked = [m for m in theirs.modules() if isinstance(m, Masked)]
    for _ in range(2):  # two training steps: the running statistics move twice
        masks = _masks_of(model, [((4, 16, 4, 4), True), ((4, 16), False)])
        for module, mask in zip(masked, masks, strict=True):
            module.masks = [mask]
        model.zero_grad()
        theirs.zero_grad()
        with cnnkit.use_engine(engine):
            y = model.forward(x)
            dx = model.backward(dy)
        tx = torch.tensor(x, requires_grad=True)
        ty = theirs(tx)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-10)
        for (name, p), (their_name, q) in zip(
            model.named_parameters(), theirs.named_parameters(), strict=True
        ):
            assert name == their_name
            np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)
    ours_state = model.state_dict()
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours_state[key], value.numpy(), rtol=1e-10, err_msg=key)
    model.eval()
    theirs.eval()
    with cnnkit.use_engine(engine):
        y = model.forward(x)
    np.testing.assert_allclose(y, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-9, atol=1e-10)
