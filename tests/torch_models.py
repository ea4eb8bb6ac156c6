"""Networks written in PyTorch the way its users write them, for differential tests: a
residual block with ``body`` and ``shortcut`` attributes, and ResNet-20 (torch is imported
only by the tests that use these)."""

from __future__ import annotations

import functools


@functools.cache
def block_class():
    """A ``torch.nn.Module``: body(x) + x, or body(x) + shortcut(x)."""
    import torch

    class Block(torch.nn.Module):
        def __init__(self, body, shortcut=None):
            super().__init__()
            self.body = body
            self.shortcut = shortcut

        def forward(self, x):
            return self.body(x) + (x if self.shortcut is None else self.shortcut(x))

    return Block


def resnet20():
    """ResNet-20 for CIFAR-10 (He et al. 2016) with projection shortcuts where a stage halves
    the size: what cnnkit's ``resnet20`` builds."""
    from torch import nn

    block = block_class()

    def stage_block(c_in, c_out, stride):
        body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        shortcut = None
        if stride != 1:
            shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )
        return [block(body, shortcut), nn.ReLU()]

    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    for c_in, c_out in ((16, 16), (16, 32), (32, 64)):
        for index in range(3):
            first = index == 0
            layers += stage_block(
                c_in if first else c_out, c_out, 2 if first and c_in != c_out else 1
            )
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)
