"""The modern layers' cases for bench.py: BatchNorm2d, grouped and dilated convolution, a
residual block and a ResNet-20 training step, each cnnkit next to PyTorch.

Same method as bench.py (float32, 2 threads, one library per process, PyTorch's better layout):
"forward" is a training-mode forward, "fwd+bwd" adds the backward with the gradients of the
input and of every parameter. BatchNorm2d is in training mode (batch statistics, running
statistics updated every call), as is every BN in the residual block and in ResNet-20. The
ResNet-20 step is forward, cross-entropy, backward (no input gradient) and an SGD update with
momentum 0.9 at batch 64 on 3x32x32, like the LeNet-5 step. The target for each of these
cases is <= 1.5x PyTorch. A CIFAR VGG-style step (64-128-256 channels, two 3x3 CONV-RELU per
stage, batch 64) is a speed case like bench.py's own: it counts in the geometric mean.

A case here carries its own calls (``cnnkit_calls``, ``torch_calls``), its modes, the input
layouts cnnkit is timed with, and its FLOPs per mode (``flops_of``), so bench.py needs no
branch per kind of case. These cases alone::

    python benchmarks/bench.py --cases BatchNorm depthwise dilated "residual block" ResNet-20 \\
        --rounds 3 --no-memory
"""

from __future__ import annotations

from dataclasses import dataclass

BATCH = 64
LAYOUTS = ("NCHW", "channels_last")
TARGET = 1.5
RES_BODY = "CONV(D=16, F=3, P=1, bias=false) - BN - RELU - CONV(D=16, F=3, P=1, bias=false) - BN"


def conv_flops(n: int, c_in: int, c_out: int, k: int, out_hw: int, groups: int = 1) -> float:
    """Forward multiply-adds times two of a square convolution: each output value takes
    (C / groups) * F * F products."""
    return 2.0 * n * c_out * out_hw**2 * (c_in // groups) * k * k


def channels_last(array):
    """The same (N, C, H, W)-indexed values, stored (N, H, W, C) in memory."""
    import numpy as np

    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@dataclass(frozen=True)
class LayerCase:
    """One layer or block on an (N, C, H, W) input, timed forward and forward+backward."""

    name: str
    shape: tuple[int, int, int, int]

    modes = ("forward", "fwd+bwd")
    cnnkit_layouts = LAYOUTS
    target = TARGET

    def forward_flops(self) -> float:
        return 0.0

    def flops_of(self, mode: str) -> float:
        """The backward of a product layer does two more products of the forward's size."""
        return self.forward_flops() * (3 if mode == "fwd+bwd" else 1)

    def cnnkit_layer(self, rng):
        raise NotImplementedError

    def torch_module(self, torch):
        raise NotImplementedError

    def cnnkit_calls(self, layout: str, rng) -> dict:
        """The input stored ``layout``; the upstream gradient stored like the layer's output,
        as the next layer would hand it back."""
        import numpy as np

        layer = self.cnnkit_layer(rng)
        x = rng.standard_normal(self.shape, dtype=np.float32)
        if layout == "channels_last":
            x = channels_last(x)
        dy = np.empty_like(layer.forward(x))  # keeps the output's memory order
        dy[...] = rng.standard_normal(dy.shape, dtype=np.float32)

        def forward_backward():
            layer.forward(x)
            layer.backward(dy)

        return {"forward": lambda: layer.forward(x), "fwd+bwd": forward_backward}

    def torch_calls(self, memory_format, generator) -> dict:
        import torch

        module = self.torch_module(torch).to(memory_format=memory_format)
        x = torch.randn(self.shape, generator=generator)
        x = x.contiguous(memory_format=memory_format).requires_grad_()
        dy = torch.randn(module(x).shape, generator=generator)
        dy = dy.contiguous(memory_format=memory_format)

        def forward_backward():
            x.grad = None
            module.zero_grad(set_to_none=True)
            module(x).backward(dy)

        return {"forward": lambda: module(x), "fwd+bwd": forward_backward}


@dataclass(frozen=True)
class BatchNormCase(LayerCase):
    """BatchNorm2d in training mode; memory-bound, so no GFLOP/s."""

    def cnnkit_layer(self, rng):
        import cnnkit

        return cnnkit.BatchNorm2d(self.shape[1])

    def torch_module(self, torch):
        return torch.nn.BatchNorm2d(self.shape[1]).train()


@dataclass(frozen=True)
class ConvCase(LayerCase):
    """Conv2d(C, D, F, padding=P, dilation, groups), stride 1, with bias."""

    d: int = 0
    k: int = 3
    p: int = 0
    dilation: int = 1
    groups: int = 1

    @property
    def n(self) -> int:
        return self.shape[0]

    @property
    def c(self) -> int:
        return self.shape[1]

    @property
    def im2col(self) -> bool:
        """Whether bench.py's products floor applies: one (M, C*F*F) @ (C*F*F, D) product,
        which dilation keeps and groups do not."""
        return self.groups == 1

    def out_hw(self) -> int:
        return self.shape[2] + 2 * self.p - self.dilation * (self.k - 1)

    def forward_flops(self) -> float:
        return conv_flops(self.n, self.c, self.d, self.k, self.out_hw(), self.groups)

    def _args(self) -> tuple:
        return (self.c, self.d, self.k), {
            "padding": self.p,
            "dilation": self.dilation,
            "groups": self.groups,
        }

    def cnnkit_layer(self, rng):
        import cnnkit

        args, options = self._args()
        return cnnkit.Conv2d(*args, **options, rng=rng)

    def torch_module(self, torch):
        args, options = self._args()
        return torch.nn.Conv2d(*args, **options)


def torch_block(torch, body, shortcut=None):
    """A residual block as PyTorch users write it: ``body(x) + shortcut(x)``."""

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.shortcut = body, shortcut

        def forward(self, x):
            return self.body(x) + (x if self.shortcut is None else self.shortcut(x))

    return Block()


def torch_conv_bn(torch, c_in: int, c_out: int, k: int, stride: int = 1) -> list:
    nn = torch.nn
    return [nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out)]


@dataclass(frozen=True)
class ResidualCase(LayerCase):
    """RES[CONV(D=C, F=3, P=1, bias=false) - BN - RELU - CONV(...) - BN]: body(x) + x."""

    def cnnkit_layer(self, rng):
        import cnnkit

        _, c, h, w = self.shape
        return cnnkit.from_spec(f"INPUT({c}x{h}x{w}) - RES[{RES_BODY}]", rng=rng)

    def torch_module(self, torch):
        c = self.shape[1]
        body = [*torch_conv_bn(torch, c, c, 3), torch.nn.ReLU(), *torch_conv_bn(torch, c, c, 3)]
        return torch_block(torch, torch.nn.Sequential(*body))

    def forward_flops(self) -> float:
        n, c, h, _ = self.shape
        return 2 * conv_flops(n, c, c, 3, h)


def resnet20_products() -> list[tuple[int, int, int, int]]:
    """(C in, D, F, output size) of ResNet-20's convolutions in order, the stem first."""
    convs = [(3, 16, 3, 32)]
    for c_in, c_out, size in ((16, 16, 32), (16, 32, 16), (32, 64, 8)):
        convs += [(c_in, c_out, 3, size), (c_out, c_out, 3, size)]
        if c_in != c_out:
            convs.append((c_in, c_out, 1, size))  # the projection shortcut, S=2
        convs += [(c_out, c_out, 3, size)] * 4
    return convs


def torch_resnet20(torch):
    """He et al.'s CIFAR ResNet-20 with projection shortcuts, as cnnkit's "resnet20"."""
    nn = torch.nn
    layers = [*torch_conv_bn(torch, 3, 16, 3), nn.ReLU()]
    for c_in, c_out in ((16, 16), (16, 32), (32, 64)):
        for index in range(3):
            first_in = c_in if index == 0 else c_out
            stride = 2 if index == 0 and c_in != c_out else 1
            body = [*torch_conv_bn(torch, first_in, c_out, 3, stride), nn.ReLU()]
            body += torch_conv_bn(torch, c_out, c_out, 3)
            shortcut = None
            if stride != 1:
                shortcut = nn.Sequential(*torch_conv_bn(torch, first_in, c_out, 1, stride))
            layers += [torch_block(torch, nn.Sequential(*body), shortcut), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class TrainingStep:
    """A training step at batch 64 on 3x32x32 (CIFAR-10's size): forward, cross-entropy,
    backward (no input gradient, as for images) and SGD with momentum 0.9."""

    name: str

    modes = ("step",)
    cnnkit_layouts = ("NCHW",)  # the images a user hands in
    target = TARGET

    spec = ""  # the network as cnnkit builds it
    head = 64  # the classifier's input features

    def convs(self) -> list[tuple[int, int, int, int]]:
        """(C in, D, F, output size) of every convolution, the first layer first."""
        raise NotImplementedError

    def torch_model(self, torch):
        raise NotImplementedError

    def flops_of(self, mode: str) -> float:
        """Forward products, then backward: weight gradients everywhere, input gradients
        everywhere but the first layer (the images need none)."""
        convs = [conv_flops(BATCH, c, d, k, size) for c, d, k, size in self.convs()]
        forward = sum(convs) + 2.0 * BATCH * self.head * 10
        return 3 * forward - convs[0]

    def cnnkit_calls(self, layout: str, rng) -> dict:
        import numpy as np

        import cnnkit

        model = cnnkit.from_spec(self.spec, rng=rng)
        loss_fn = cnnkit.CrossEntropyLoss()
        optimizer = cnnkit.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = rng.random((BATCH, 3, 32, 32), dtype=np.float32)
        labels = rng.integers(0, 10, BATCH)

        def step():
            loss_fn.forward(model.forward(x), labels)
            optimizer.zero_grad()
            model.backward(loss_fn.backward(), input_grad=False)
            optimizer.step()

        return {"step": step}

    def torch_calls(self, memory_format, generator) -> dict:
        import torch

        model = self.torch_model(torch).to(memory_format=memory_format).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.rand(BATCH, 3, 32, 32, generator=generator)
        x = x.contiguous(memory_format=memory_format)
        labels = torch.randint(0, 10, (BATCH,), generator=generator)

        def step():
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), labels).backward()
            optimizer.step()

        return {"step": step}


@dataclass(frozen=True)
class ResNetStep(TrainingStep):
    """He et al.'s ResNet-20 (cnnkit's "resnet20")."""

    spec = "resnet20"

    def convs(self):
        return resnet20_products()

    def torch_model(self, torch):
        return torch_resnet20(torch)


VGG_STAGES = (64, 128, 256)  # two 3x3 CONV-RELU per stage, then a 2x2 max pool
VGG_SPEC = (
    "INPUT(3x32x32) - "
    + " - ".join(f"[CONV(D={d}, F=3, P=1) - RELU] x 2 - POOL(F=2)" for d in VGG_STAGES)
    + " - FC(10)"
)


@dataclass(frozen=True)
class VggStep(TrainingStep):
    """A CIFAR VGG-style network: 64-128-256 channels, two 3x3 convolutions per stage."""

    target = None  # a speed case: held to the geometric mean and the worst-case line
    spec = VGG_SPEC
    head = 256 * 4 * 4

    def convs(self):
        found, c_in, size = [], 3, 32
        for d in VGG_STAGES:
            found += [(c_in, d, 3, size), (d, d, 3, size)]
            c_in, size = d, size // 2
        return found

    def torch_model(self, torch):
        nn, layers, c_in = torch.nn, [], 3
        for d in VGG_STAGES:
            for _ in range(2):
                layers += [nn.Conv2d(c_in, d, 3, padding=1), nn.ReLU()]
                c_in = d
            layers.append(nn.MaxPool2d(2))
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(256 * 4 * 4, 10))


MODERN_CASES = [
    BatchNormCase("BatchNorm2d (training) on 16x32x32", (BATCH, 16, 32, 32)),
    ConvCase("depthwise 32x32x32 -> 32@3x3 P=1 groups=32", (BATCH, 32, 32, 32), 32, 3, 1, 1, 32),
    ConvCase("dilated 16x32x32 -> 32@3x3 P=2 dilation=2", (BATCH, 16, 32, 32), 32, 3, 2, 2),
    ResidualCase("residual block 16x32x32 [CONV-BN-RELU-CONV-BN]", (BATCH, 16, 32, 32)),
    ResNetStep("ResNet-20 training step, batch 64"),
    VggStep("CIFAR VGG-style step (64-128-256), batch 64"),
]
