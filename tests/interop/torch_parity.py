"""One helper for both directions: a cnnkit model and a torch module that should compute the
same thing, compared in evaluation (outputs) and in one training step (cross-entropy loss,
every parameter's gradient by name and order, the running statistics after it).

Dropout draws its masks from cnnkit's generators in cnnkit and from torch's in torch, so for
the training step the torch dropout modules apply the masks cnnkit's layers draw (a forward
hook replacing their output with x * mask / (1 - p), p read from the torch module).

Errors are relative to the largest value compared: max |ours - theirs| / max |theirs|.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import cnnkit
from cnnkit.functional.dropout import dropout_mask, mask_shape

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # two processes' threads on two cores spin against each other


ZERO = 1e-4  # a gradient below ZERO times the model's largest is zero up to rounding


def relative(ours, theirs, scale: float = 0.0) -> float:
    """max |ours - theirs| / max |theirs| (or / ``scale`` when that is larger)."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), scale, 1e-30))


def train_a_little(model, input_shape, classes: int = 10, steps: int = 3, seed: int = 0):
    """A few SGD steps on random data, so BatchNorm's statistics are not the initial ones."""
    rng = np.random.default_rng(seed)
    loss_fn = cnnkit.CrossEntropyLoss()
    optimizer = cnnkit.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(steps):
        x = rng.standard_normal((8, *input_shape)).astype(model_dtype(model))
        labels = rng.integers(0, classes, 8)
        loss_fn.forward(model.forward(x), labels)
        optimizer.zero_grad()
        model.backward(loss_fn.backward())
        optimizer.step()
    return model


def model_dtype(model):
    return next(iter(model.parameters())).data.dtype


def _paths(model):
    paths, stack = {}, [("", model)]
    while stack:
        path, layer = stack.pop()
        paths.setdefault(id(layer), path)
        for name, child in layer.named_children():
            stack.append((f"{path}.{name}" if path else name, child))
    return paths


def _dropouts(model):
    """{path: layer} of the cnnkit layers drawing dropout masks."""
    paths = _paths(model)
    return {
        paths[id(layer)]: layer
        for layer in model.modules()
        if hasattr(layer, "rng") and hasattr(layer, "p")
    }


def eval_errors(model, module, x) -> float:
    """The relative error of the torch module's evaluation output against cnnkit's."""
    model.eval()
    module.eval()
    with torch.no_grad():
        theirs = module(torch.from_numpy(x)).numpy()
    return relative(model.forward(x), theirs)


def step_errors(model, module, x, labels) -> dict[str, float]:
    """One training step in both (train mode, cross-entropy): relative errors of the loss,
    the input gradient, each parameter's gradient (names and order must be equal) and each
    buffer afterwards."""
    model.train()
    module.train()
    dropouts = _dropouts(model)
    generators = {path: copy.deepcopy(layer.rng) for path, layer in dropouts.items()}
    handles = []
    for path, torch_dropout in module.named_modules():
        if path in dropouts:
            layer = dropouts[path]
            handles.append(torch_dropout.register_forward_hook(_masked(layer, generators[path])))
    loss_fn = cnnkit.CrossEntropyLoss()
    model.zero_grad()
    loss = loss_fn.forward(model.forward(x), labels)
    dx = model.backward(loss_fn.backward())
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    module.zero_grad()
    their_loss = torch.nn.functional.cross_entropy(module(tx), torch.from_numpy(labels))
    their_loss.backward()
    for handle in handles:
        handle.remove()
    errors = {"loss": relative(loss, their_loss.item()), "input grad": relative(dx, tx.grad)}
    ours, theirs = list(model.named_parameters()), list(module.named_parameters())
    assert [name for name, _ in ours] == [name for name, _ in theirs]
    largest = max(float(q.grad.abs().max()) for _, q in theirs)
    for (name, p), (_, q) in zip(ours, theirs, strict=True):
        # A bias followed by BatchNorm has gradient 0 up to rounding (~1e-8 in float32):
        # such a gradient is compared relative to the model's largest one.
        zero = float(q.grad.abs().max()) < ZERO * largest
        errors[f"grad {name}"] = relative(p.grad, q.grad.numpy(), largest if zero else 0.0)
    their_state = module.state_dict()
    for name, value in model.state_dict().items():
        if value.dtype.kind == "f":
            errors[name] = relative(value, their_state[name].numpy())
        else:
            assert int(value) == int(their_state[name]), name
    return errors


def _masked(layer, generator):
    """A torch forward hook applying the mask ``layer`` draws from ``generator``."""

    def hook(module, inputs, output):
        (x,) = inputs
        shape = mask_shape(tuple(x.shape), layer.per_channel)
        mask = dropout_mask(generator, shape, layer.p)
        mask = torch.from_numpy(np.broadcast_to(mask, x.shape).copy())
        scale = np.dtype(str(x.dtype).replace("torch.", "")).type(1.0 / (1.0 - module.p))
        return x * mask.to(x.dtype) * float(scale)

    return hook
