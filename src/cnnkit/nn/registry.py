"""Layer keywords: what makes a class usable in architecture strings (``CONV(D=16, F=3)``).

``@register_layer("KEYWORD")`` puts a layer class here; parsing looks keywords up, rendering
asks a layer for its keyword, and nothing else needs to know which layers exist. Every
built-in layer registers itself the same way a user's layer does.

>>> {"CONV", "FC", "FLATTEN"} <= set(keywords())
True
"""

from __future__ import annotations

import difflib
import re

from cnnkit.errors import ConfigError

RESERVED = ("INPUT",)  # the grammar's own word: the input volume, not a layer

_classes: dict[str, type] = {}  # KEYWORD -> class
_aliases: dict[str, tuple[str, dict]] = {}  # ALIAS -> (KEYWORD, preset arguments)


def _label(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _same_definition(a, b) -> bool:
    """Redefining a class (a notebook cell run twice) keeps its keyword."""
    return _label(a) == _label(b)


def register_layer(keyword: str, *, aliases: dict[str, dict] | None = None):
    """Class decorator: make a :class:`~cnnkit.Layer` subclass usable as ``KEYWORD(k=v, ...)``
    in architecture strings, summaries, ``to_spec()`` and checkpoints.

    ``aliases`` maps further keywords to preset arguments (``{"MAXPOOL": {"kind": "max"}}``).
    A keyword already taken by another class is refused naming both.
    """
    canonical = _check_keyword(keyword)
    extra = {_check_keyword(alias): dict(preset) for alias, preset in (aliases or {}).items()}

    def decorate(cls):
        if not (isinstance(cls, type) and callable(getattr(cls, "spec_class", None))):
            raise ConfigError(
                f"register_layer({keyword!r}): {cls!r} is not a cnnkit.Layer subclass; "
                "decorate a class that subclasses cnnkit.Layer"
            )
        for name in (canonical, *extra):
            taken = _classes.get(name)
            if taken is None and name in _aliases:
                taken = _classes.get(_aliases[name][0])
            if taken is not None and taken is not cls and not _same_definition(taken, cls):
                raise ConfigError(
                    f"register_layer: keyword {name!r} is already registered to "
                    f"{_label(taken)}; {_label(cls)} cannot take it too; choose another keyword"
                )
        _classes[canonical] = cls
        for alias, preset in extra.items():
            _aliases[alias] = (canonical, preset)
        cls._keyword = canonical
        return cls

    return decorate


def _check_keyword(keyword) -> str:
    if not isinstance(keyword, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", keyword):
        raise ConfigError(
            f"register_layer: a keyword is a name of letters, digits and '_' starting with a "
            f"letter, such as 'SCALE', got {keyword!r}"
        )
    upper = keyword.upper()
    if upper in RESERVED:
        raise ConfigError(f"register_layer: {upper} is reserved for the input volume")
    return upper


def unregister(keyword: str) -> None:
    """Forget a keyword and its aliases (tests, or a notebook starting over)."""
    upper = keyword.upper()
    _classes.pop(upper, None)
    for alias in [a for a, (target, _) in _aliases.items() if target == upper or a == upper]:
        del _aliases[alias]


def lookup(keyword: str) -> tuple[str, type, dict] | None:
    """(canonical keyword, class, preset arguments) for a keyword or alias, or None."""
    upper = keyword.upper()
    if upper in _classes:
        return upper, _classes[upper], {}
    if upper in _aliases:
        canonical, preset = _aliases[upper]
        if canonical in _classes:
            return canonical, _classes[canonical], dict(preset)
    return None


def keywords() -> list[str]:
    """The registered keywords (aliases left out), sorted."""
    return sorted(_classes)


def closest(keyword: str) -> str | None:
    """The registered keyword or alias nearest to a misspelt one, if any is near."""
    names = [*_classes, *_aliases]
    found = difflib.get_close_matches(keyword.upper(), names, n=1, cutoff=0.6)
    return found[0] if found else None


def keyword_of(layer) -> str | None:
    """The keyword that rebuilds ``layer`` exactly, or None (an unregistered class, or a
    subclass of a registered one that would come back as its parent)."""
    for klass in type(layer).__mro__:
        keyword = klass.__dict__.get("_keyword")
        if keyword is not None:
            built = klass.spec_class(layer.spec_config())
            return keyword if built is type(layer) else None
    return None
