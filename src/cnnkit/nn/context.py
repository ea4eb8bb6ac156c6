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
its next top-level forward, and a backward goes with the newest forward whose output is held.

Recording is decided at the top-level call: a layer in training mode records, one in
evaluation mode does not (predictions keep nothing), ``with no_grad():`` records nothing and
``with enable_grad():`` records in either mode (a gradient check in evaluation mode, a saliency
map); those blocks, and each thread's call state, are :mod:`cnnkit.nn.modes`'. Nested calls
follow the top-level decision.
"""

from __future__ import annotations

import functools
import inspect
import threading
import weakref

from cnnkit.errors import StateError
from cnnkit.functional.fast.layout import Workspace
from cnnkit.nn import call_errors, edge, hooks
from cnnkit.nn.modes import _state, state

MAX_PENDING = call_errors.MAX_PENDING  # top-level forwards kept per layer and thread


class LayerLocal(threading.local):
    """What one layer keeps per thread: its scratch memory, the call of it in flight, and its
    top-level forwards still waiting for their backward."""

    def __init__(self) -> None:
        self.workspace = Workspace()
        self.call: Context | None = None  # the forward or backward of this layer running now
        self.pending: list[Context] = []
        self.last: str | None = None  # "recorded" / "unrecorded": what its last forward did
        self.dropped = False  # more than MAX_PENDING forwards waited: the oldest went
        self.pruned = False  # a forward whose output was gone was forgotten


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
        self.children: list[Context] | None = None  # the calls it made, in order
        self.needs_input_grad = True
        self.output = None  # (shape, dtype) of what forward returned
        self.edge = False  # the forward's input is (a view of) the caller's array
        self.result = None  # a weak reference to what a top-level forward returned


def keep(context: Context, *items) -> None:
    """``save_for_backward`` for a call whose context is at hand (the built-in layers)."""
    if context.record:
        context.saved = edge.detached(items, state().edge) if context.edge else items


def is_recording() -> bool:
    """Whether a ``forward`` running now (in this thread) saves for backward."""
    frames = state().frames
    return bool(frames) and frames[-1].record


def current_context(layer) -> Context | None:
    """The context of ``layer``'s call in flight (in this thread), or None outside its forward
    and backward."""
    return layer._local.call


def forward_call(function):
    """A layer's ``forward``, run in a fresh context filed where the matching backward will
    look for it. (Every layer call runs this: it is written for speed.)"""

    @functools.wraps(function)
    def forward(layer, x, *args, **kwargs):
        if args or kwargs:  # a forward with more than x (rare): the extra arguments ride along
            return forward_call(lambda self, v: function(self, v, *args, **kwargs))(layer, x)
        try:
            current = _state.value
        except AttributeError:
            current = state()
        frames = current.frames
        if frames:
            parent = frames[-1]
            if parent.layer is layer:  # super().forward(x) inside forward
                return function(layer, x)
            record = parent.record
        else:
            parent = None
            grad = current.grad
            record = grad is True or (grad is None and layer.training)
            current.edge = edge.owner(x) if record else None
            if record:
                _prune(layer)
        if not layer.built:
            layer._build_for(x)
        if record:
            context = Context(layer, True)
            caller = current.edge  # the owner of the caller's array; a view's base is its owner
            context.edge = x is caller or getattr(x, "base", None) is caller
        else:  # nothing is kept: one shared, never-changed context will do
            context = layer.__dict__.get("_unrecorded") or _unrecorded(layer)
        local = layer._local
        frames.append(context)
        local.call = context
        try:
            y = function(layer, x)
        finally:
            local.call = None
            frames.pop()
            if parent is None:
                current.edge = None
        if layer._forward_hooks:
            y = hooks.run(layer, layer._forward_hooks, x, y)
        if record:
            _file(layer, parent, context, y)
        elif parent is None:
            local.last = "unrecorded"
        return y

    forward._cnnkit_call = True
    return forward


def _file(layer, parent: Context | None, context: Context, y) -> None:
    """File a recorded call where its backward looks: with its parent's calls, or (a top-level
    call) with the layer's waiting forwards."""
    try:
        context.output = (y.shape, y.dtype)
    except AttributeError:
        pass  # not an array: backward's dy is not checked
    if parent is None:
        _keep(layer, context, y)
        return
    layer._local.last = "nested"
    if parent.children is None:
        parent.children = [context]
    else:
        parent.children.append(context)


def _unrecorded(layer) -> Context:
    context = layer.__dict__["_unrecorded"] = Context(layer, False)
    return context


def _prune(layer) -> None:
    """Forget waiting forwards whose output nobody holds any more (a forward in a loop that
    never calls backward): a later forward of the same layer replaces them."""
    local = layer._local
    pending = local.pending
    if pending and any(c.result is not None and c.result() is None for c in pending):
        pending[:] = [c for c in pending if c.result is None or c.result() is not None]
        local.pruned = True


def _keep(layer, context: Context, y) -> None:
    try:
        context.result = weakref.ref(y)
    except TypeError:  # an output that cannot be referred to weakly is simply kept
        pass
    local = layer._local
    pending = local.pending
    pending.append(context)
    if len(pending) > MAX_PENDING:
        del pending[0]
        local.dropped = True
    local.last = "recorded"


def backward_call(function):
    """A layer's ``backward``, run in the context its forward left.

    ``input_grad=False``: the caller does not need dx (the layer may skip it; None is
    returned). ``retain_graph=True`` (top-level calls only, as PyTorch's): the forward's
    context stays for another backward (a second upstream gradient for the same forward);
    this one runs on a copy of its tree of contexts. A ``backward(self)`` that takes no
    gradient (a loss written as a layer) is called as ``layer.backward()``.

    A top-level backward goes with the newest forward whose output is still held (an output
    thrown away cannot be what the gradient is of), or with the newest one when none is held.
    A gradient of the wrong shape is refused before anything is used up.
    """
    if not _takes_gradient(function):
        return _without_gradient(function)

    @functools.wraps(function)
    def backward(layer, dy, *, input_grad: bool = True, retain_graph: bool = False):
        try:
            frames = _state.value.frames
        except AttributeError:
            frames = state().frames
        parent = frames[-1] if frames else None
        if parent is not None and parent.layer is layer:  # super().backward(dy) inside
            return function(layer, dy)
        local = layer._local
        calls = local.pending if parent is None else parent.children
        index = _waiting(layer, calls, parent)
        context = calls[index]
        output = context.output
        if output is not None and dy is not _NO_GRADIENT:
            try:
                matches = dy.shape == output[0] and dy.dtype == output[1]
            except AttributeError:
                matches = False
            if not matches:
                call_errors.check_gradient(layer, dy, output)
        if parent is not None:
            del calls[index]
        elif retain_graph:
            context = _copy(context)
        else:
            local.pruned = local.pruned or index + 1 < len(calls)  # newer outputs were gone
            del calls[index:]
        context.needs_input_grad = input_grad
        frames.append(context)
        local.call = context
        try:
            dx = function(layer, dy)
        finally:
            local.call = None
            frames.pop()
        return dx if input_grad else None

    backward._cnnkit_call = True
    return backward


def _without_gradient(function):
    """The wrapper of a ``backward(self)`` that takes no gradient."""
    inner = backward_call(lambda layer, dy: function(layer))

    @functools.wraps(function)
    def backward(layer, *, input_grad: bool = True, retain_graph: bool = False):
        return inner(layer, _NO_GRADIENT, input_grad=input_grad, retain_graph=retain_graph)

    backward._cnnkit_call = True
    return backward


def _waiting(layer, calls: list | None, parent: Context | None) -> int:
    """The index in ``calls`` of the forward this backward of ``layer`` goes with."""
    if parent is not None:
        if calls and calls[-1].layer is layer:  # undone in reverse order
            return len(calls) - 1
        return _child(parent, layer)
    if not calls:
        raise StateError(call_errors.no_forward(layer, None))
    index = len(calls) - 1
    result = calls[index].result
    if index and result is not None and result() is None:
        return _newest_held(calls)
    return index


_NO_GRADIENT = object()  # what a backward() that takes no gradient is given


def _takes_gradient(function) -> bool:
    """Whether ``backward(self, dy)`` takes a gradient (a loss's ``backward(self)`` does not)."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    return variadic or len(positional) >= 2


def _newest_held(calls: list) -> int:
    """The index of the newest waiting forward whose output is still held (else the newest)."""
    for index in range(len(calls) - 1, -1, -1):
        result = calls[index].result
        if result is None or result() is not None:
            return index
    return len(calls) - 1


def _child(parent: Context, layer) -> int:
    """The index of the last call of ``layer`` that ``parent``'s forward made and no backward
    has undone (a container undoing its calls in another order than reverse)."""
    children = parent.children
    if children:
        for index in range(len(children) - 1, -1, -1):
            if children[index].layer is layer:
                return index
    raise StateError(call_errors.no_forward(layer, parent))


def _copy(context: Context) -> Context:
    """The context and its children's, with the same saved arrays (backward only reads them)."""
    clone = Context(context.layer, context.record)
    clone.saved, clone.output = context.saved, context.output
    if context.children is not None:
        clone.children = [_copy(child) for child in context.children]
    return clone


def saved_by(layer) -> tuple:
    """What ``layer``'s latest top-level forward (in this thread) saved for the backward still
    to come: for looking inside, as a learner or a test would. Empty when none is waiting."""
    pending = layer._local.pending
    return pending[-1].saved if pending else ()
