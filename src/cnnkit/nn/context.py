"""Per-call state: what one forward saves for its backward, kept per call and per thread.

Every call of a layer's ``forward`` gets its own :class:`Context`; ``save_for_backward`` puts
arrays there and ``saved_tensors`` reads them back in the matching ``backward``. Nothing is kept
on the layer itself, so one layer instance can be used several times in a network (tied
weights, a ReLU reused), and several threads can run one model at once.

Contexts nest as calls do. A forward called inside a container's forward is recorded in the
container's context, and the container's backward finds it there: the last unmatched forward of
that layer in that call is the one its backward uses (calls are undone in reverse order). A
forward called at the top level (by the user) is kept on the layer, per thread, until its
backward: at most :data:`MAX_PENDING` of them, the oldest dropped first.

A forward in a loop that never calls backward (scoring in training mode) keeps nothing for
long: a waiting forward whose output nobody holds any more is forgotten when the same layer runs
its next top-level forward.

Recording is decided at the top-level call: a layer in training mode records, one in
evaluation mode does not (predictions keep nothing), ``with no_grad():`` records nothing and
``with enable_grad():`` records in either mode (a gradient check in evaluation mode, a saliency
map). Nested calls follow the top-level decision.
"""

from __future__ import annotations

import contextlib
import threading
import weakref

from cnnkit.backend import is_array
from cnnkit.errors import DTypeError, ShapeError, StateError

MAX_PENDING = 4  # top-level forwards kept per layer and thread while waiting for backward

_state = threading.local()


def state():
    """This thread's call state (frames of the calls in flight, grad mode, edge input)."""
    try:
        return _state.value
    except AttributeError:
        value = _CallState()
        _state.value = value
        return value


class _CallState:
    __slots__ = ("edge", "frames", "grad")

    def __init__(self) -> None:
        self.frames: list[Context] = []
        self.grad: bool | None = None  # None: record in training mode only
        self.edge = None  # the owner of the memory of the array the top-level forward was given


class Context:
    """One forward call: what it saved, the calls it made, and how backward should run."""

    __slots__ = (
        "children",
        "edge",
        "layer",
        "needs_input_grad",
        "output",
        "record",
        "result",
        "saved",
    )

    def __init__(self, layer, record: bool) -> None:
        self.layer = layer
        self.record = record
        self.saved: tuple = ()
        self.children: dict[int, list[Context]] | None = None
        self.needs_input_grad = True
        self.output = None  # (shape, dtype) of what forward returned
        self.edge = False  # the forward's input is (a view of) the caller's array
        self.result = None  # a weak reference to what a top-level forward returned


@contextlib.contextmanager
def no_grad():
    """Forwards in this block (this thread) save nothing for backward, in any mode."""
    current = state()
    previous, current.grad = current.grad, False
    try:
        yield
    finally:
        current.grad = previous


@contextlib.contextmanager
def enable_grad():
    """Forwards in this block (this thread) save what backward needs, in evaluation mode too."""
    current = state()
    previous, current.grad = current.grad, True
    try:
        yield
    finally:
        current.grad = previous


def is_recording() -> bool:
    """Whether a ``forward`` running now (in this thread) saves for backward."""
    frames = state().frames
    return bool(frames) and frames[-1].record


def current_context(layer) -> Context | None:
    """The context of ``layer``'s call in flight, or None outside its forward/backward."""
    try:
        frames = _state.value.frames
    except AttributeError:
        return None
    if frames and frames[-1].layer is layer:
        return frames[-1]
    return None


def run_forward(layer, function, x, args, kwargs):
    """Call ``function`` (a layer's own forward) in a fresh context and file that context
    where the matching backward will look for it. (Every layer call runs this: kept lean.)"""
    try:
        current = _state.value
    except AttributeError:
        current = state()
    frames = current.frames
    if frames:
        parent = frames[-1]
        if parent.layer is layer:  # super().forward(x) inside forward
            return function(layer, x, *args, **kwargs)
        record = parent.record
    else:
        parent = None
        grad = current.grad
        record = grad is True or (grad is None and layer.training)
        current.edge = owner(x) if record else None
        if record:
            _prune(layer)
    if not layer.built:
        layer._build_for(x)
    if record:
        context = Context(layer, True)
        context.edge = owner(x) is current.edge
    else:  # nothing is kept: one shared, never-changed context will do
        context = layer.__dict__.get("_unrecorded") or _unrecorded(layer)
    frames.append(context)
    try:
        y = function(layer, x, *args, **kwargs)
    finally:
        frames.pop()
        if parent is None:
            current.edge = None
    if record:
        shape = getattr(y, "shape", None)
        context.output = None if shape is None else (shape, getattr(y, "dtype", None))
        if parent is None:
            _keep(layer, context, y)
        else:
            children = parent.children
            if children is None:
                children = parent.children = {}
            children.setdefault(id(layer), []).append(context)
    elif parent is None:
        layer._local.last = "unrecorded"
    return y


def _unrecorded(layer) -> Context:
    context = layer.__dict__["_unrecorded"] = Context(layer, False)
    return context


def _prune(layer) -> None:
    """Forget waiting forwards whose output nobody holds any more (a forward in a loop that
    never calls backward): a later forward of the same layer replaces them."""
    local = layer._local
    pending = getattr(local, "pending", None)
    if pending and any(c.result is not None and c.result() is None for c in pending):
        pending[:] = [c for c in pending if c.result is None or c.result() is not None]
        local.pruned = True


def _keep(layer, context: Context, y) -> None:
    try:
        context.result = weakref.ref(y)
    except TypeError:  # an output that cannot be referred to weakly is simply kept
        pass
    local = layer._local
    pending = getattr(local, "pending", None)
    if pending is None:
        pending = local.pending = []
    pending.append(context)
    if len(pending) > MAX_PENDING:
        del pending[0]
        local.dropped = True
    local.last = "recorded"


def run_backward(layer, function, dy, input_grad: bool, retain_graph: bool = False):
    """Call ``function`` (a layer's own backward) in the context its forward left.

    ``retain_graph`` (top-level calls only, as PyTorch's): the forward's context stays for
    another backward (a second upstream gradient for the same forward); this one runs on a
    copy of its tree of contexts.
    """
    try:
        frames = _state.value.frames
    except AttributeError:
        frames = state().frames
    parent = frames[-1] if frames else None
    if parent is not None and parent.layer is layer:  # super().backward(dy) inside backward
        return function(layer, dy)
    if parent is None:
        pending = getattr(layer._local, "pending", None)
    else:
        pending = parent.children.get(id(layer)) if parent.children else None
    if not pending:
        raise StateError(_no_forward(layer, parent))
    context = _copy(pending[-1]) if retain_graph and parent is None else pending.pop()
    if context.output is not None:
        _check_gradient(layer, dy, context.output)
    context.needs_input_grad = input_grad
    frames.append(context)
    try:
        dx = function(layer, dy)
    finally:
        frames.pop()
        context.saved = ()
        context.children = None
    return dx if input_grad else None


def _copy(context: Context) -> Context:
    """The context and its children's, with the same saved arrays (backward only reads them)."""
    clone = Context(context.layer, context.record)
    clone.saved, clone.output = context.saved, context.output
    if context.children is not None:
        clone.children = {key: [_copy(c) for c in value] for key, value in context.children.items()}
    return clone


def _name(layer) -> str:
    """The layer's repr, or its class name when the repr runs over several lines (a model)."""
    text = repr(layer)
    return text if "\n" not in text else f"{type(layer).__name__}(...)"


def _no_forward(layer, parent) -> str:
    name = _name(layer)
    if parent is not None:
        return (
            f"{name}: backward() found no forward of this layer in this call to go with it; "
            "a container's backward must call each layer's backward once per forward, in "
            "reverse order"
        )
    local = layer._local
    last = getattr(local, "last", None)
    if last == "unrecorded":
        return (
            f"{name}: backward() after a forward that saved nothing (evaluation mode or "
            "no_grad()); call model.train() before forward, or run the forward inside "
            "`with cnnkit.enable_grad():`"
        )
    if getattr(local, "pruned", False):
        return (
            f"{name}: backward() has no forward left to go with: a later forward replaced one "
            "whose output was no longer held; keep each output (y = layer.forward(x)) until its "
            "backward, or call backward before the next forward"
        )
    if getattr(local, "dropped", False):
        return (
            f"{name}: backward() has no forward left to go with: only the last "
            f"{MAX_PENDING} forwards wait for a backward; call backward after each forward, "
            "or run forwards that need no gradient inside `with cnnkit.no_grad():`"
        )
    if last == "recorded":
        return (
            f"{name}: a second backward() after one forward(); each forward is matched by "
            "exactly one backward: call forward(x) again first"
        )
    return (
        f"{name}: backward() was called before forward(); call forward(x) first, then "
        "backward(dy) with dy shaped like its output"
    )


class _Named:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _check_gradient(layer, dy, output) -> None:
    """``dy`` is shaped and typed like what forward returned: checked once, for every layer."""
    shape, dtype = output
    got_shape = getattr(dy, "shape", None)
    if got_shape != shape:
        layer = _Named(_name(layer))
        got = tuple(got_shape) if got_shape is not None else type(dy).__name__
        raise ShapeError(
            f"{layer!r}: backward expected dy of shape {tuple(shape)} (the forward output), "
            f"got {got}"
        )
    got_dtype = getattr(dy, "dtype", None)
    if dtype is not None and got_dtype != dtype:
        layer = _Named(_name(layer))
        raise DTypeError(
            f"{layer!r}: backward got dy of dtype {got_dtype} but the forward returned "
            f"{dtype}; pass dy.astype(np.{dtype}) (cnnkit never converts silently)"
        )


def owner(array):
    """The object that owns ``array``'s memory (the array itself unless it is a view)."""
    base = getattr(array, "base", None)
    while base is not None and getattr(base, "base", None) is not None:
        base = base.base
    return array if base is None else base


def detach_edge(items: tuple) -> tuple:
    """Copies of the saved arrays that are (views of) the top-level input, so a caller who
    changes that array in place before backward cannot change the gradients. Saved tuples
    (an engine's cache) are looked into one level deep. Only a call whose own input is the
    caller's array (or a view of it) can save one, so only those calls look."""
    edge_owner = state().edge
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


def saved_by(layer) -> tuple:
    """What ``layer``'s latest top-level forward (in this thread) saved for the backward still
    to come: for looking inside, as a learner or a test would. Empty when none is waiting."""
    pending = getattr(layer._local, "pending", None)
    return pending[-1].saved if pending else ()
