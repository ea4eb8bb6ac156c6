"""SGD follows PyTorch's update rule."""

import numpy as np
import pytest

from cnnkit import SGD, Parameter


@pytest.mark.parametrize(
    ("momentum", "weight_decay", "nesterov"), [(0, 0, False), (0.9, 0, False), (0.9, 1e-2, True)]
)
def test_sgd_matches_torch(momentum, weight_decay, nesterov):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    start = rng.standard_normal((3, 4))
    ours = Parameter(start.copy())
    theirs = torch.nn.Parameter(torch.tensor(start.copy()))
    sgd = SGD([ours], lr=0.1, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    reference = torch.optim.SGD(
        [theirs], lr=0.1, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
    )
    for _ in range(4):
        grad = rng.standard_normal((3, 4))
        ours.grad[...] = grad
        theirs.grad = torch.tensor(grad)
        sgd.step()
        reference.step()
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12)
