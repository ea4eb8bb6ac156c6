"""A layer's configuration by default: the arguments of its ``__init__``, read back from the
attributes of the same names (what ``get_config`` returns and ``extra_repr`` shows)."""

from __future__ import annotations

import inspect

from cnnkit.errors import ConfigError

SKIPPED = ("self", "rng", "dtype")  # how to build, not what is built


def init_parameters(cls) -> list[tuple[str, inspect.Parameter]]:
    """The ``__init__`` arguments that make up a layer's config (not rng, dtype, *args)."""
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return []
    return [
        (name, parameter)
        for name, parameter in signature.parameters.items()
        if name not in SKIPPED
        and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def default_config(layer) -> dict:
    config = {}
    for name, _ in init_parameters(type(layer)):
        if name not in layer.__dict__:
            raise ConfigError(
                f"{type(layer).__name__}: get_config() reads the __init__ argument {name!r} "
                f"from self.{name}; store it there in __init__, or define get_config()"
            )
        config[name] = layer.__dict__[name]
    return config


def default_extra_repr(layer) -> str:
    """The non-default config values; an ``__init__`` argument the layer did not store under
    its own name is left out (a repr never raises: it is in every error message)."""
    defaults = dict(init_parameters(type(layer)))
    try:
        config = layer.get_config()
    except ConfigError:
        config = {name: layer.__dict__[name] for name in defaults if name in layer.__dict__}
    shown = []
    for name, value in config.items():
        default = defaults.get(name)
        if (
            default is None
            or default.default is inspect.Parameter.empty
            or not _equal(default.default, value)
        ):
            shown.append(f"{name}={value!r}")
    return ", ".join(shown)


def _equal(a, b) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False
