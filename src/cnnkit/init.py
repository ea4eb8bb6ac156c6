"""Weight initialisation, always from an explicit ``numpy.random.Generator``."""

from __future__ import annotations

import math

import numpy as np

from cnnkit.errors import ConfigError, DTypeError, ShapeError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def resolve_rng(rng, owner: str) -> np.random.Generator:
    """``None`` -> a fresh generator seeded from the OS; a Generator is used as it is."""
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    raise DTypeError(
        f"{owner}: rng must be a numpy.random.Generator or None, got {type(rng).__name__}; "
        f"use rng=np.random.default_rng({rng if isinstance(rng, int) else 0})"
    )


def resolve_dtype(dtype, owner: str) -> np.dtype:
    """float32 or float64; anything else is refused (no silent conversion later)."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in FLOAT_DTYPES:
        raise DTypeError(
            f"{owner}: dtype must be float32 or float64, got {dtype!r}; "
            "use dtype=np.float32 (default) or np.float64 for gradient checks"
        )
    return resolved


def uniform(rng: np.random.Generator, bound: float, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Values drawn uniformly from [-bound, bound)."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def default_bound(fan_in: int) -> float:
    """PyTorch's default for Conv2d and Linear: kaiming_uniform(a=sqrt(5)) on the weight gives
    bound sqrt(6 / ((1 + 5) * fan_in)) = 1/sqrt(fan_in), and the bias uses the same bound."""
    return 1.0 / math.sqrt(fan_in)


def require_rng(rng, owner: str) -> np.random.Generator:
    """A ``numpy.random.Generator``; unlike :func:`resolve_rng`, ``None`` is refused, so every
    re-initialisation is reproducible from a seed the caller chose."""
    if not isinstance(rng, np.random.Generator):
        raise DTypeError(
            f"{owner}: rng must be a numpy.random.Generator, got {type(rng).__name__}; "
            f"use rng=np.random.default_rng({rng if isinstance(rng, int) else 0})"
        )
    return rng


def _fan(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise DTypeError(f"{owner}: {name} must be an int, got {value!r}")
    if value < 1:
        raise ConfigError(f"{owner}: {name} must be >= 1, got {value}")
    return int(value)


def _gain(owner: str, gain) -> float:
    if isinstance(gain, bool) or not isinstance(gain, int | float | np.floating | np.integer):
        raise DTypeError(f"{owner}: gain must be a number, got {gain!r}")
    if not (math.isfinite(gain) and gain > 0):
        raise ConfigError(f"{owner}: gain must be a finite number > 0, got {gain}")
    return float(gain)


def _shape(owner: str, shape) -> tuple[int, ...]:
    if not isinstance(shape, tuple | list) or not all(
        isinstance(size, int | np.integer) and not isinstance(size, bool) for size in shape
    ):
        raise DTypeError(f"{owner}: shape must be a tuple of ints, got {shape!r}")
    if any(size < 0 for size in shape):
        raise ConfigError(f"{owner}: shape must have sizes >= 0, got {tuple(shape)}")
    return tuple(int(size) for size in shape)


def fan_in_and_fan_out(shape) -> tuple[int, int]:
    """PyTorch's fans: a weight (D, C, KH, KW) has fan_in = C·KH·KW, fan_out = D·KH·KW; a
    Linear weight (out_features, in_features) has fan_in = in_features, fan_out = out_features.

    >>> fan_in_and_fan_out((16, 3, 5, 5))
    (75, 400)
    """
    shape = _shape("fan_in_and_fan_out", shape)
    if len(shape) < 2:
        raise ShapeError(
            f"fan_in_and_fan_out: needs a weight with at least 2 axes (out, in, ...), got shape "
            f"{shape}; fans are undefined for a bias"
        )
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def kaiming_uniform(shape, fan_in: int, rng, dtype, *, gain: float = math.sqrt(2.0)) -> np.ndarray:
    """He initialisation, uniform in ±gain·sqrt(3 / fan_in) (std gain / sqrt(fan_in)), as
    ``torch.nn.init.kaiming_uniform_(w, nonlinearity="relu")`` with the default gain."""
    owner = "kaiming_uniform"
    bound = _gain(owner, gain) * math.sqrt(3.0 / _fan(owner, "fan_in", fan_in))
    return _draw(owner, "uniform", bound, shape, rng, dtype)


def kaiming_normal(shape, fan_in: int, rng, dtype, *, gain: float = math.sqrt(2.0)) -> np.ndarray:
    """He initialisation, normal with mean 0 and std gain / sqrt(fan_in), as
    ``torch.nn.init.kaiming_normal_(w, nonlinearity="relu")`` with the default gain."""
    owner = "kaiming_normal"
    std = _gain(owner, gain) / math.sqrt(_fan(owner, "fan_in", fan_in))
    return _draw(owner, "normal", std, shape, rng, dtype)


def xavier_uniform(
    shape, fan_in: int, fan_out: int, rng, dtype, *, gain: float = 1.0
) -> np.ndarray:
    """Glorot initialisation, uniform in ±gain·sqrt(6 / (fan_in + fan_out)), as
    ``torch.nn.init.xavier_uniform_``."""
    owner = "xavier_uniform"
    fans = _fan(owner, "fan_in", fan_in) + _fan(owner, "fan_out", fan_out)
    return _draw(owner, "uniform", _gain(owner, gain) * math.sqrt(6.0 / fans), shape, rng, dtype)


def xavier_normal(shape, fan_in: int, fan_out: int, rng, dtype, *, gain: float = 1.0) -> np.ndarray:
    """Glorot initialisation, normal with std gain·sqrt(2 / (fan_in + fan_out)), as
    ``torch.nn.init.xavier_normal_``."""
    owner = "xavier_normal"
    fans = _fan(owner, "fan_in", fan_in) + _fan(owner, "fan_out", fan_out)
    return _draw(owner, "normal", _gain(owner, gain) * math.sqrt(2.0 / fans), shape, rng, dtype)


def _draw(owner: str, kind: str, scale: float, shape, rng, dtype) -> np.ndarray:
    """Uniform in ±scale or normal with std scale, drawn in float64 and then cast."""
    shape = _shape(owner, shape)
    generator = require_rng(rng, owner)
    resolved = resolve_dtype(dtype, owner)
    if kind == "uniform":
        return uniform(generator, scale, shape, resolved)
    return generator.normal(0.0, scale, size=shape).astype(resolved)


INIT_SCHEMES = ("default", "he", "xavier")


def init_model(model, scheme: str, rng):
    """Re-initialise every layer of ``model`` that has weights (layer by layer, in order,
    drawing only from ``rng``) and return the model. Each layer does its own
    (``reset_parameters(rng, scheme)``); layers without one keep their parameters.

    ``"default"``: PyTorch's, weight and bias uniform in ±1/sqrt(fan_in); ``"he"``:
    :func:`kaiming_normal` weights (He et al. used a Gaussian), zero biases; ``"xavier"``:
    :func:`xavier_uniform` weights (Glorot & Bengio used a uniform), zero biases. Arrays are
    overwritten in place, keeping their dtype.
    """
    if scheme not in INIT_SCHEMES:
        raise ConfigError(
            f"init_model: unknown scheme {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}"
        )
    generator = require_rng(rng, "init_model")
    for layer in model.modules():
        reset = getattr(layer, "reset_parameters", None)
        if reset is not None:
            reset(generator, scheme)
    return model


def reset_weight_and_bias(weight: np.ndarray, bias, rng, scheme: str) -> None:
    """Draw ``weight`` (and ``bias``, unless None) again in place with ``scheme``."""
    if scheme not in INIT_SCHEMES:
        raise ConfigError(
            f"reset_parameters: unknown scheme {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}"
        )
    generator = require_rng(rng, "reset_parameters")
    fan_in, fan_out = fan_in_and_fan_out(weight.shape)
    if scheme == "default":
        bound = default_bound(fan_in)
        weight[...] = uniform(generator, bound, weight.shape, weight.dtype)
        if bias is not None:
            bias[...] = uniform(generator, bound, bias.shape, bias.dtype)
        return
    if scheme == "he":
        weight[...] = kaiming_normal(weight.shape, fan_in, generator, weight.dtype)
    else:
        weight[...] = xavier_uniform(weight.shape, fan_in, fan_out, generator, weight.dtype)
    if bias is not None:
        bias[...] = 0
