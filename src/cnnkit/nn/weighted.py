"""What Conv2d and Linear share: a ``weight`` and an optional ``bias``, initialised as PyTorch
initialises them, re-initialised on request, and gradients that accumulate."""

from __future__ import annotations

from cnnkit import init
from cnnkit.nn.layer import Layer
from cnnkit.nn.parameter import new_parameter


class WeightedLayer(Layer):
    """A layer with ``weight`` (out, in, ...) and an optional ``bias`` (out,)."""

    def _init_parameters(self, owner, weight_shape, fan_in: int, bias: bool, dtype, rng) -> None:
        """Uniform in +-1/sqrt(fan_in) for both, drawn from ``rng`` (weight first, then bias).
        Shape-only inside ``meta_parameters()``: nothing is allocated or drawn."""
        self.dtype = init.resolve_dtype(dtype, owner)
        bound = init.default_bound(fan_in)
        generator = init.resolve_rng(rng, owner)

        def draw(shape):
            return init.uniform(generator, bound, shape, self.dtype)

        self.weight = None  # weight before bias: the order parameters() lists them
        self.bias = True if bias else None  # what extra_repr reads, until the real bias below
        label = f"{owner}({self.extra_repr()})"
        self.weight = new_parameter(
            weight_shape, self.dtype, lambda: draw(weight_shape), "weight", label
        )
        self.bias = None
        if bias:
            shape = weight_shape[:1]
            self.bias = new_parameter(shape, self.dtype, lambda: draw(shape), "bias", label)

    def reset_parameters(self, rng, scheme: str = "default") -> None:
        """Draw the weight (and bias) again from ``rng``, in place (see ``cnnkit.init``)."""
        bias = None if self.bias is None else self.bias.data
        init.reset_weight_and_bias(self.weight.data, bias, rng, scheme)

    def _accumulate(self, dw, db) -> None:
        """Backward adds (never assigns) so gradients of several backward calls, and of several
        uses of one layer, sum."""
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
