"""The caller's array: what a top-level forward is given stays the caller's.

A layer may save its input for backward (a ReLU's mask source, a Linear's x). When that input
is the very array the user passed in (or a view of it) and the user changes it in place before
calling backward, the gradients would change with it; so what is saved is copied, but only for
a call whose input is the caller's array, and only the saved arrays that are (views of) it.
"""

from __future__ import annotations

from cnnkit.backend import is_array


def owner(array):
    """The object that owns ``array``'s memory (the array itself unless it is a view)."""
    base = getattr(array, "base", None)
    while base is not None and getattr(base, "base", None) is not None:
        base = base.base
    return array if base is None else base


def detached(items: tuple, edge_owner) -> tuple:
    """Copies of the saved arrays that are (views of) the top-level input, so a caller who
    changes that array in place before backward cannot change the gradients. Saved tuples
    (an engine's cache) are looked into one level deep. Only a call whose own input is the
    caller's array (or a view of it) can save one, so only those calls look."""
    if edge_owner is None:
        return items
    if not any(_touches(item, edge_owner) for item in items):
        return items  # the usual case: nothing saved refers to the caller's array
    return tuple(_detached(item, edge_owner) for item in items)


def _touches(item, edge_owner) -> bool:
    if isinstance(item, tuple):
        return any(_is_view_of(part, edge_owner) for part in item)
    return _is_view_of(item, edge_owner)


def _is_view_of(item, edge_owner) -> bool:
    return is_array(item) and owner(item) is edge_owner


def _detached(item, edge_owner):
    if _is_view_of(item, edge_owner):
        return item.copy()
    if isinstance(item, tuple) and _touches(item, edge_owner):
        parts = [part.copy() if _is_view_of(part, edge_owner) else part for part in item]
        return type(item)(*parts) if hasattr(item, "_fields") else tuple(parts)
    return item
