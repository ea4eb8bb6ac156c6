"""Gradient checks: compare a layer's backward with numerical derivatives of its forward.

Central differences, ``(f(x + eps) - f(x - eps)) / (2 eps)``, have an error of order eps**2
where the one-sided ``(f(x + eps) - f(x)) / eps`` has an error of order eps, so with eps = 1e-6
in float64 they agree with a correct backward to about 1e-9. float32 keeps only about 7 digits,
which the subtraction of two nearly equal values eats entirely: checks need float64.

A layer has a vector output, so the check needs a scalar: L = sum(forward(x) * g) with a random
upstream gradient g, whose exact gradient is ``backward(g)``. Checking L = sum(forward(x)) (that
is, g = 1) would miss errors that cancel in the sum, such as a backward that sends each output's
gradient to the wrong input: every input gradient is then wrong, but the total is right.

>>> import numpy as np
>>> from cnnkit import Conv2d
>>> conv = Conv2d(2, 3, 3, stride=2, padding=1, dtype=np.float64, rng=np.random.default_rng(0))
>>> x = np.random.default_rng(1).standard_normal((2, 2, 5, 5))
>>> report = gradcheck(conv, x, rng=np.random.default_rng(2))
>>> report.ok
True
>>> [check.name for check in report.checks]
['dx', 'weight', 'bias']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cnnkit.errors import DTypeError
from cnnkit.layers.base import Layer


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6):
    """Central-difference gradient of the scalar function ``f`` at ``x``, same shape as ``x``.

    Each element of ``x`` is perturbed in place (``f`` sees ``x`` itself, so ``x`` may be an array
    that ``f`` reads indirectly, such as a layer's ``weight.data``) and restored exactly.

    >>> x = np.array([1.0, -2.0])
    >>> np.round(numerical_gradient(lambda a: float((a**2).sum()), x), 6)
    array([ 2., -4.])
    """
    _require_float64("numerical_gradient", "x", x)
    grad = np.zeros(x.shape, dtype=np.float64)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + eps
        plus = float(f(x))
        x[index] = original - eps
        minus = float(f(x))
        x[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


@dataclass(frozen=True)
class QuantityCheck:
    """One gradient (``dx`` or a parameter) compared with its numerical estimate.

    ``ok`` when every element satisfies |analytic - numerical| <= atol + rtol * max(|a|, |n|);
    ``max_rel_err`` is max |a - n| / max(|a|, |n|) over the elements (0 where both are 0).
    """

    name: str
    max_abs_err: float
    max_rel_err: float
    ok: bool
    detail: str = ""

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAIL"
        if self.detail:
            return f"{self.name}: {self.detail} {verdict}"
        return (
            f"{self.name}: max abs err {_sci(self.max_abs_err)}, "
            f"max rel err {_sci(self.max_rel_err)} {verdict}"
        )


@dataclass(frozen=True)
class GradcheckReport:
    """The result of :func:`gradcheck`: one :class:`QuantityCheck` per gradient, ``dx`` first."""

    checks: tuple[QuantityCheck, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def __getitem__(self, name: str) -> QuantityCheck:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no gradient named {name!r}; have {[c.name for c in self.checks]}")

    def __str__(self) -> str:
        return "\n".join(str(check) for check in self.checks)


def gradcheck(
    layer: Layer,
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> GradcheckReport:
    """Check ``layer.backward`` (dx and every parameter's grad) against central differences.

    ``x`` is a float64 array of any shape the layer accepts, and every parameter is float64.
    With g = ``rng.standard_normal`` of the output's shape and L = sum(layer.forward(x) * g),
    compares ``layer.backward(g)`` (shape of ``x``) and each ``parameter.grad`` (after
    ``zero_grad()``) with the numerical gradients of L. ``x`` itself is never modified; the
    parameters are perturbed in place and restored exactly.
    """
    _require_float64("gradcheck", "x", x)
    named = list(layer.named_parameters())
    for name, parameter in named:
        _require_float64("gradcheck", f"parameter {name!r}", parameter.data)
    x = x.copy()
    y = layer.forward(x)
    g = rng.standard_normal(y.shape)
    layer.zero_grad()
    analytic = {"dx": np.array(layer.backward(g))}
    analytic.update((name, parameter.grad.copy()) for name, parameter in named)

    def loss(_: np.ndarray) -> float:
        return float(np.sum(layer.forward(x) * g))

    numerical = {"dx": numerical_gradient(loss, x, eps)}
    numerical.update((name, numerical_gradient(loss, p.data, eps)) for name, p in named)
    return GradcheckReport(
        tuple(_compare(name, analytic[name], numerical[name], rtol, atol) for name in analytic)
    )


def _require_float64(owner: str, what: str, array) -> None:
    if not isinstance(array, np.ndarray) or array.dtype != np.float64:
        got = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
        raise DTypeError(
            f"{owner}: {what} is {got}, but gradient checks need float64 (float32's 7 digits "
            "vanish in central differences); build layers with dtype=np.float64 and pass "
            "x.astype(np.float64)"
        )


def _compare(name: str, analytic, numerical, rtol: float, atol: float) -> QuantityCheck:
    if analytic.shape != numerical.shape:
        detail = f"shape {analytic.shape}, expected {numerical.shape}"
        return QuantityCheck(name, np.inf, np.inf, False, detail)
    error = np.abs(analytic - numerical)
    scale = np.maximum(np.abs(analytic), np.abs(numerical))
    relative = np.divide(error, scale, out=np.zeros_like(error), where=scale > 0)
    ok = bool(np.all(error <= atol + rtol * scale))
    return QuantityCheck(name, float(error.max(initial=0.0)), float(relative.max(initial=0.0)), ok)


def _sci(value: float) -> str:
    """``3.1e-11``, ``2.0e-9``: one decimal, no zero-padded exponent."""
    if not np.isfinite(value):
        return str(value)
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


__all__ = ["GradcheckReport", "QuantityCheck", "gradcheck", "numerical_gradient"]
