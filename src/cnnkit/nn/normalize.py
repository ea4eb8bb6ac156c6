"""Normalize: (x - mean) / std per channel, the first layer of a trained run's model.

A run's network is trained on images normalised with its training split's statistics;
``cnnkit.load_run`` puts this layer in front of it, so the loaded model takes images exactly as
cnnkit's loaders return them (values in [0, 1]).
"""

from __future__ import annotations

import numpy as np

from cnnkit.errors import ConfigError, ShapeError
from cnnkit.nn.checks import check_array
from cnnkit.nn.layer import Layer
from cnnkit.nn.registry import register_layer
from cnnkit.nn.spec_args import Arg, Numbers


@register_layer("NORMALIZE")
class Normalize(Layer):
    """y = (x - mean[c]) / std[c] for every channel c; ``mean`` and ``std`` are buffers.

    >>> layer = Normalize([0.5], [0.25])
    >>> layer.forward(np.ones((1, 1, 2, 2), np.float32))[0, 0].tolist()
    [[2.0, 2.0], [2.0, 2.0]]
    """

    spec_args = (
        Arg("mean", "mean", Numbers(), meaning="per-channel mean"),
        Arg("std", "std", Numbers(), meaning="per-channel standard deviation"),
    )
    spec_example = "NORMALIZE(mean=0.5, std=0.25)"
    onnx_ops = ("Sub",)

    def onnx_nodes(self, graph, x):  # ONNX (cnnkit.interop): Sub and Div by (C, 1, 1)
        mean = graph.add_initializer(self.mean.reshape(-1, 1, 1), "mean")
        std = graph.add_initializer(self.std.reshape(-1, 1, 1), "std")
        return graph.add_node("Div", [graph.add_node("Sub", [x, mean]), std])

    @classmethod
    def from_onnx(cls, node):  # a Sub, and the Div after it when there is one
        mean = node.channel_constant(1)
        return node.build(cls, mean, np.ones_like(mean) if node.divisor is None else node.divisor)

    torch_classes = ("cnnkit.interop.torch_modules.Normalize",)

    def torch_module(self, convert):
        """A module with buffers ``mean`` and ``std`` of shape (C,), as here."""
        return convert.torch_class(self)(self.mean, self.std)

    @classmethod
    def from_torch_module(cls, module, convert):
        return cls(**convert.arguments(cls, module))

    def __init__(self, mean, std, *, dtype=np.float32) -> None:
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        std = np.asarray(std, dtype=np.float64).reshape(-1)
        if mean.size == 0 or mean.shape != std.shape:
            raise ConfigError(
                f"Normalize: give one mean and one std per channel, got {mean.size} and {std.size}"
            )
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ConfigError("Normalize: mean must be finite and std finite and > 0")
        self.dtype = np.dtype(dtype)
        self.register_buffer("mean", mean.astype(self.dtype))
        self.register_buffer("std", std.astype(self.dtype))

    def get_config(self) -> dict:
        return {
            "mean": tuple(float(v) for v in self.mean),
            "std": tuple(float(v) for v in self.std),
        }

    def extra_repr(self) -> str:
        return f"mean={[round(float(v), 4) for v in self.mean]}, std=" + str(
            [round(float(v), 4) for v in self.std]
        )

    def output_shape(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] != self.mean.size:
            raise ShapeError(
                f"{self!r}: expected (N, {self.mean.size}, H, W) images, got shape "
                f"{tuple(input_shape)}"
            )
        return tuple(input_shape)

    def forward(self, x):
        check_array(self, x, 4, f"(N, {self.mean.size}, H, W)")
        self.output_shape(x.shape)
        mean = self.mean.astype(x.dtype, copy=False).reshape(-1, 1, 1)
        std = self.std.astype(x.dtype, copy=False).reshape(-1, 1, 1)
        y = x - mean
        y /= std
        self.save_for_backward(std)
        return y

    def backward(self, dy):
        (std,) = self.saved_tensors
        return dy / std

    def memory(self, input_shape, dtype_bytes: int, layout):
        return int(np.prod(input_shape[1:])) * dtype_bytes, 0, layout

    def explain(self, input_shape) -> str:
        return (
            "NORMALIZE: (x - mean) / std for each channel, with the training split's statistics, "
            "so the network sees images as it saw them in training; no trainable parameters."
        )
