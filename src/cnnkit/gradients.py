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
>>> from cnnkit.nn import Conv2d
>>> conv = Conv2d(2, 3, 3, stride=2, padding=1, dtype=np.float64, rng=np.random.default_rng(0))
>>> x = np.random.default_rng(1).standard_normal((2, 2, 5, 5))
>>> report = gradcheck(conv, x, rng=np.random.default_rng(2))  # a layer, a model or a loss
>>> report.ok
True
>>> [check.name for check in report.checks]
['dx', 'weight', 'bias']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cnnkit.errors import ConfigError, DTypeError, StateError
from cnnkit.nn.modes import enable_grad, no_grad


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

    def __bool__(self) -> bool:
        return self.ok

    def __getitem__(self, name: str) -> QuantityCheck:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no gradient named {name!r}; have {[c.name for c in self.checks]}")

    def __str__(self) -> str:
        return "\n".join(str(check) for check in self.checks)


def gradcheck(
    target,
    x: np.ndarray,
    targets=None,
    *,
    rng: np.random.Generator | None = None,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> GradcheckReport:
    """Check a backward against central differences of its forward.

    ``target`` is a layer or a model (any :class:`~cnnkit.Layer`, the user's own included):
    with g = ``rng.standard_normal`` of the output's shape and L = sum(forward(x) * g), compares
    ``backward(g)`` (shape of ``x``) and each parameter's grad (after ``zero_grad()``) with the
    numerical gradients of L; checks are named ``dx`` and by ``named_parameters()``. With
    ``targets`` it is a loss (``forward(logits, targets)``, ``backward()``): the check is then
    of the gradient with respect to the logits, ``dlogits``.

    ``x`` and every parameter must be float64 (``model.to(np.float64)``). ``x`` itself is never
    modified; the parameters are perturbed in place and restored exactly. The analytic pass
    runs with ``enable_grad()`` (so a model in evaluation mode is checked as it is), the
    numerical ones with ``no_grad()``.
    """
    _require_float64("gradcheck", "x", x)
    _check_tolerances(eps, rtol, atol)
    rng = np.random.default_rng(0) if rng is None else rng
    x = x.copy()
    if targets is not None:
        _require_loss(target)
        return _loss_check(target, x, targets, eps, rtol, atol)
    if not hasattr(target, "named_parameters"):
        raise DTypeError(
            f"gradcheck: expected a cnnkit layer or model (or a loss with targets=...), got "
            f"{type(target).__name__}"
        )
    _require_float64_parameters(target)  # before forward: its message would be less clear
    with enable_grad():
        y = target.forward(x)
        g = rng.standard_normal(y.shape)
        named = _require_float64_parameters(target)  # lazily built layers exist now
        target.zero_grad()
        analytic = {"dx": np.array(_backward(target, g))}
    analytic.update((name, parameter.grad.copy()) for name, parameter in named)

    def loss(_: np.ndarray) -> float:
        with no_grad():
            return float(np.sum(target.forward(x) * g))

    numerical = {"dx": numerical_gradient(loss, x, eps)}
    numerical.update((name, numerical_gradient(loss, p.data, eps)) for name, p in named)
    return GradcheckReport(
        tuple(_compare(name, analytic[name], numerical[name], rtol, atol) for name in analytic)
    )


def _require_float64_parameters(target) -> list:
    """The named parameters of every built layer, each float64 (or a DTypeError naming it)."""
    if not all(layer.built for layer in target.modules()):
        return []
    named = list(target.named_parameters())
    for name, parameter in named:
        _require_float64("gradcheck", f"parameter {name!r}", parameter.data)
    return named


def _backward(target, g):
    try:
        return target.backward(g)
    except NotImplementedError as error:
        raise StateError(f"gradcheck: {error}; nothing to check") from None


def _loss_check(loss_fn, logits, targets, eps, rtol, atol) -> GradcheckReport:
    """dlogits of a loss (``forward(logits, targets) -> float``, ``backward() -> dlogits``)."""
    with enable_grad():
        loss_fn.forward(logits, targets)
        analytic = np.array(loss_fn.backward())

    def loss(z: np.ndarray) -> float:
        with no_grad():
            return float(loss_fn.forward(z, targets))

    numerical = numerical_gradient(loss, logits, eps)
    return GradcheckReport((_compare("dlogits", analytic, numerical, rtol, atol),))


def _require_loss(target) -> None:
    """With ``targets``, the target must be a loss: ``forward(logits, targets)``."""
    forward = getattr(target, "forward", None)
    try:
        parameters = inspect.signature(forward).parameters.values() if forward else ()
    except (TypeError, ValueError):
        return
    kinds = [p.kind for p in parameters]
    positional = sum(kind in _POSITIONAL for kind in kinds)
    if forward is None or (positional < 2 and inspect.Parameter.VAR_POSITIONAL not in kinds):
        raise ConfigError(
            f"gradcheck: targets=... is for a loss, forward(logits, targets); {target!r} "
            "takes one input: leave targets out to check it as a layer"
        )


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _check_tolerances(eps, rtol, atol) -> None:
    for name, value, positive in (("eps", eps, True), ("rtol", rtol, False), ("atol", atol, False)):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not np.isfinite(value) or value < 0 or (positive and value == 0):
            bound = "a finite number > 0" if positive else "a finite number >= 0"
            raise ConfigError(f"gradcheck: {name} must be {bound}, got {value!r}; e.g. eps=1e-6")


def _require_float64(owner: str, what: str, array) -> None:
    if not isinstance(array, np.ndarray) or array.ndim == 0:
        got = "a NumPy scalar" if isinstance(array, np.generic | np.ndarray) else None
        raise DTypeError(
            f"{owner}: {what} must be a float64 NumPy array such as (N, C, H, W), got "
            f"{got or type(array).__name__}; pass np.asarray(x, dtype=np.float64) with a batch "
            "axis (x[None] for one example)"
        )
    if array.dtype != np.float64:
        got = array.dtype
        raise DTypeError(
            f"{owner}: {what} is {got}, but gradient checks need float64 (float32's 7 digits "
            "vanish in central differences); convert the model with model.to(np.float64) (or "
            "build it with dtype=np.float64) and pass x.astype(np.float64)"
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
