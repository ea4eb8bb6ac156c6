"""BatchNorm2d (``BN``) and BatchNorm1d (``BN1D``): PyTorch's batch normalisation.

Each channel is normalised with the mean and BIASED variance of its M values in the batch
(M = N*H*W, or N*L, or N), then scaled and shifted by the trainable ``weight`` (ones) and
``bias`` (zeros). Training also moves the buffers ``running_mean`` and ``running_var`` towards
the batch's statistics (the variance as its UNBIASED estimate, M/(M - 1) times the biased one):
running = (1 - momentum) * running + momentum * batch, or with ``momentum=None`` the
cumulative average (factor 1/num_batches_tracked). Evaluation normalises with the running
statistics; ``track_running_stats=False`` keeps none (the buffers are None, as PyTorch's) and
always uses the batch's. The buffers are state (``state_dict()``, checkpoints), not
parameters; ``num_batches_tracked`` is a 0-d int64 array, as in PyTorch.

>>> bn = BatchNorm2d(3)
>>> list(bn.state_dict())
['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
>>> x = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
>>> y = bn.forward(x)
>>> y.mean(axis=(0, 2, 3)).round(6).tolist(), int(bn.num_batches_tracked)
([0.0, 0.0, 0.0], 1)
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from cnnkit import init
from cnnkit.backend import is_array
from cnnkit.errors import ConfigError, ShapeError
from cnnkit.functional.engine import current
from cnnkit.nn.checks import check_array, check_dtype_matches, positive_int
from cnnkit.nn.context import keep
from cnnkit.nn.layer import Layer
from cnnkit.nn.parameter import new_parameter
from cnnkit.nn.registry import register_layer
from cnnkit.nn.spec_args import Arg, ArgError, Flag, Kind, Number, Whole, literal_text


class Positive(Kind):
    """A finite number > 0 (``eps``)."""

    def read(self, value, raw: str, what: str) -> float:
        number = Number().read(value, raw, what)
        if number <= 0:
            raise ArgError(f"{what} must be a number > 0, got {raw}")
        return number


class Momentum(Kind):
    """A number in [0, 1], or ``none`` (the cumulative average)."""

    def read(self, value, raw: str, what: str):
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        number = Number().read(value, raw, what)
        if not 0 <= number <= 1:
            raise ArgError(f"{what} must be a number in [0, 1] or none, got {raw}")
        return number

    def text(self, value) -> str:
        return literal_text(value)


class _BatchNorm(Layer):
    """What both share; subclasses say which inputs they take (``_layouts``)."""

    _layouts: ClassVar[dict[int, str]] = {}  # ndim -> the input's axes, for messages
    spec_args = (
        Arg("num_features", None, Whole(), infer=lambda shape: shape[1]),
        Arg("eps", "eps", Positive(), 1e-5),
        Arg("momentum", "momentum", Momentum(), 0.1),
        Arg("affine", "affine", Flag(), True),
        Arg("track_running_stats", "track_running_stats", Flag(), True),
    )

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dtype=np.float32,
    ) -> None:
        owner = type(self).__name__
        self.num_features = positive_int(owner, "num_features", num_features)
        self.eps, self.momentum = _checked_eps(owner, eps), _checked_momentum(owner, momentum)
        self.affine = _checked_flag(owner, "affine", affine)
        self.track_running_stats = _checked_flag(owner, "track_running_stats", track_running_stats)
        self.dtype = init.resolve_dtype(dtype, owner)
        shape, label = (self.num_features,), f"{owner}({self.num_features})"
        self.weight = self.bias = None  # weight before bias: the order parameters() lists them
        if self.affine:
            ones, zeros = (
                (lambda: np.ones(shape, self.dtype)),
                (lambda: np.zeros(shape, self.dtype)),
            )
            self.weight = new_parameter(shape, self.dtype, ones, "weight", label)
            self.bias = new_parameter(shape, self.dtype, zeros, "bias", label)
        self.running_mean = self.running_var = self.num_batches_tracked = None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(shape, self.dtype))
            self.register_buffer("running_var", np.ones(shape, self.dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))

    def torch_module(self, convert):
        return convert.torch_layer(self)

    @classmethod
    def from_torch_module(cls, module, convert):
        return cls(**convert.arguments(cls, module))

    def reset_running_stats(self) -> None:
        """Running mean 0, variance 1, no batches seen (in place)."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    # -- configuration -------------------------------------------------------------------------
    def buffer_problem(self, name: str, value) -> str | None:
        """A variance is never negative (sqrt(var + eps) would be NaN)."""
        if name == "running_var" and value.dtype.kind == "f" and (value < 0).any():
            return (
                f"holds {int((value < 0).sum())} negative variances (smallest "
                f"{float(value.min()):g}); a variance is at least 0"
            )
        return None

    def get_config(self) -> dict:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
        }

    def extra_repr(self) -> str:
        """``16``, ``16, momentum=None``: the non-default arguments, as PyTorch names them."""
        parts = [str(self.num_features)]
        defaults = {"eps": 1e-5, "momentum": 0.1, "affine": True, "track_running_stats": True}
        for name, default in defaults.items():
            value = getattr(self, name)
            if value != default or type(value) is not type(default):
                parts.append(f"{name}={value!r}")
        return ", ".join(parts)

    # -- shapes and the computation ------------------------------------------------------------
    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The input's shape, once it is one this layer takes with num_features channels."""
        shape = tuple(int(size) for size in input_shape)
        if len(shape) not in self._layouts:
            raise ShapeError(self._wrong_rank(shape))
        if shape[1] != self.num_features:
            raise ShapeError(
                f"{self!r}: expected {self.num_features} channels "
                f"{self._layout(len(shape), self.num_features)}, got {shape[1]} in shape {shape}; "
                f"use {type(self).__name__}({shape[1]}) or feed {self.num_features} channels"
            )
        return shape

    def _layout(self, ndim: int, channels="C") -> str:
        return self._layouts[ndim].replace("C", str(channels))

    def _wrong_rank(self, shape) -> str:
        return f"{self!r}: expected an input {' or '.join(self._layouts.values())}, got {shape}"

    def forward(self, x):
        """x -> y of the same shape and dtype (see the module docstring)."""
        check_array(self, x, x.ndim if is_array(x) else 0, self._layout_text())  # type, dtype
        check_dtype_matches(self, x, self.dtype)
        self.output_shape(x.shape)
        batch_statistics = self.training or self.running_mean is None
        if batch_statistics and x.size // max(x.shape[1], 1) <= 1:
            raise ShapeError(self._single_value(tuple(x.shape)))
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1  # a 0-d array, changed in place (probes put it back)
            factor = 1 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        update = self.training and self.track_running_stats
        engine = current()
        y, saved = engine.batch_norm_forward(
            x,
            None if self.weight is None else self.weight.data,
            None if self.bias is None else self.bias.data,
            self.running_mean,
            self.running_var,
            training=batch_statistics,
            momentum=factor if update else None,
            eps=self.eps,
            workspace=self._local.workspace,
        )
        keep(self._local.call, engine, saved)
        return y

    def onnx_nodes(self, graph, x):  # ONNX (cnnkit.interop): BatchNormalization, inference
        if self.running_mean is None:
            raise graph.refusal(self, _NO_RUNNING_STATS)
        ones = np.ones(self.num_features, self.dtype)
        inputs = [x, *graph.add_arrays(self, "weight", "bias")]
        if self.weight is None:  # affine=False: scale 1, shift 0
            inputs += [
                graph.add_initializer(ones, "weight"),
                graph.add_initializer(0 * ones, "bias"),
            ]
        inputs += graph.add_arrays(self, "running_mean", "running_var")
        momentum = 1 - (0.1 if self.momentum is None else self.momentum)  # ONNX keeps 1 - m
        return graph.add_node("BatchNormalization", inputs, epsilon=self.eps, momentum=momentum)

    def _layout_text(self) -> str:
        return " or ".join(self._layouts.values())

    def _single_value(self, shape) -> str:
        if self.running_mean is None:
            fix = "use batches of 2 or more (without running statistics it always normalises "
            fix += "with the batch's)"
        else:
            fix = "train with batches of 2 or more, or call model.eval()"
        return (
            f"{self!r}: a batch of shape {shape} has {math.prod(shape) // max(shape[1], 1)} value "
            "per channel, too few for a variance, so batch statistics are undefined (PyTorch "
            f"refuses it too); {fix}"
        )

    def backward(self, dy):
        """dy -> dx; adds dweight and dbias into the parameters' grads. Through the batch's
        statistics in training, the affine map's gradient only with the running ones."""
        call = self._local.call
        engine, saved = call.saved
        dx, dweight, dbias = engine.batch_norm_backward(
            dy, saved, workspace=self._local.workspace, input_grad=call.needs_input_grad
        )
        if self.weight is not None:
            self.weight.grad += dweight
            self.bias.grad += dbias
        return dx

    # -- what the summary and the explanations ask ---------------------------------------------
    def macs(self, input_shape) -> int:
        """One multiply-add per value (C*H*W per example): the map y = x*scale + shift that
        evaluation reduces to (scale = weight/sqrt(var + eps), shift = bias - mean*scale).
        Computing the batch's statistics in training (about two more per value) is not
        counted, as pooling's additions are not."""
        return math.prod(self.output_shape(input_shape)[1:])

    def memory(self, input_shape, dtype_bytes: int, layout):
        """Output bytes, kept bytes, layout per example: the output is new, stored as the input
        is; backward keeps the input x on the fast engine (x_hat on the reference one: as many
        values) and a few (C,) arrays per batch (not counted per example)."""
        elements = math.prod(self.output_shape(input_shape)[1:])
        return elements * dtype_bytes, elements * dtype_bytes, layout

    def explain(self, input_shape) -> str:
        shape = self.output_shape(tuple(input_shape))
        c, per = shape[1], "x".join(map(str, shape[2:]))
        values = f"N*{per.replace('x', '*')}" if per else "N"
        affine = (
            f"then y = weight*x_hat + bias per channel: {2 * c} trainable parameters"
            if self.affine
            else "no affine map (affine=False): no trainable parameters"
        )
        running = (
            f"it keeps {2 * c} running statistics (not trained; momentum "
            f"{'cumulative' if self.momentum is None else f'{self.momentum:g}'}) that "
            "evaluation uses instead of the batch's"
            if self.track_running_stats
            else "it keeps no running statistics: evaluation uses the batch's too"
        )
        return (
            f"{self._keyword or type(self).__name__}: each of the {c} "
            f"{'features' if len(shape) == 2 else 'channels'} is normalised "
            f"over its {values} values in the batch, x_hat = (x - mean)/sqrt(var + "
            f"{self.eps:g}) with the biased variance; {affine}; {running}. The shape does not "
            "change."
        )


@register_layer("BN")
class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) volumes (``torch.nn.BatchNorm2d``): statistics per
    channel over N, H and W. ``BN`` in architecture strings (C inferred): ``CONV(D=16, F=3) -
    BN - RELU``."""

    _layouts: ClassVar[dict[int, str]] = {4: "(N, C, H, W)"}
    spec_example = "BN"
    onnx_ops = ("BatchNormalization",)

    @classmethod
    def from_onnx(cls, node):  # BatchNorm2d on volumes, BatchNorm1d on (N, C) and (N, C, L)
        if node.attr("training_mode", 0):
            raise node.refuse("training_mode=1 normalises with batch statistics; export in eval")
        scale, bias, mean, var = (node.constant(index) for index in range(1, 5))
        kind = cls if len(node.input_shape) == 4 else BatchNorm1d
        momentum = round(1 - node.attr("momentum", 0.9), 6)
        layer = node.build(kind, scale.size, eps=node.attr("epsilon", 1e-5), momentum=momentum)
        return node.load(layer, weight=scale, bias=bias, running_mean=mean, running_var=var)

    torch_classes = ("BatchNorm2d",)

    def _wrong_rank(self, shape) -> str:
        if len(shape) == 2:
            return (
                f"{self!r}: expected (N, C, H, W) volumes, got the flat input {shape}; use "
                f"BN1D (BatchNorm1d({shape[1]})) there, after an FC"
            )
        return super()._wrong_rank(shape)


@register_layer("BN1D")
class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs (``torch.nn.BatchNorm1d``):
    statistics per feature over N (and L). ``BN1D`` in architecture strings, after an FC."""

    _layouts: ClassVar[dict[int, str]] = {2: "(N, C)", 3: "(N, C, L)"}
    spec_example = "BN1D"
    torch_classes = ("BatchNorm1d",)

    def _wrong_rank(self, shape) -> str:
        if len(shape) == 4:
            return (
                f"{self!r}: expected (N, C) or (N, C, L), got the volume {shape}; use BN "
                f"(BatchNorm2d({shape[1]})) for (N, C, H, W) volumes"
            )
        return super()._wrong_rank(shape)


_NO_RUNNING_STATS = (
    "without running statistics (track_running_stats=False) it normalises every batch with its "
    "own, which ONNX's BatchNormalization in inference form cannot; build it with "
    "track_running_stats=True and train it"
)


def _checked_eps(owner: str, eps) -> float:
    if (
        isinstance(eps, bool)
        or not isinstance(eps, int | float | np.number)
        or not 0 < eps < math.inf
    ):
        raise ConfigError(f"{owner}: eps must be a finite number > 0, got {eps!r}; e.g. eps=1e-5")
    return float(eps)


def _checked_momentum(owner: str, momentum) -> float | None:
    if momentum is None:
        return None
    if (
        isinstance(momentum, bool)
        or not isinstance(momentum, int | float | np.number)
        or not 0 <= momentum <= 1
    ):
        raise ConfigError(
            f"{owner}: momentum must be a number in [0, 1] or None (a cumulative average), got "
            f"{momentum!r}; e.g. momentum=0.1"
        )
    return float(momentum)


def _checked_flag(owner: str, name: str, value) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)
