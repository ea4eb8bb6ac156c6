"""A trained model as the explorer page computes it: plain data, driven by the registry.

Every layer becomes a node ``{"path", "kind", "label", "config", "tensors", "shape"}``: its
registry keyword (``CONV``, ``POOL``, ...), its ``spec_config()`` (the arguments that rebuild
it, with layers inside it, such as a residual block's body and shortcut, as lists of nodes),
the arrays of its own ``state_dict()`` (PyTorch's keys: ``weight``, ``bias``,
``running_mean``, ...) and its output shape per example. A container of layers in order (a
``Sequential``) contributes its layers, with their ``state_dict`` paths (``"5.body.0"``).

A layer the page has no code for (a user's own registered layer, or an unregistered class)
becomes a node with ``"unsupported"`` set to the sentence the page shows, and its arrays are
left out; the page then computes up to that layer and says which layer stopped it.

>>> import numpy as np
>>> import cnnkit
>>> model = cnnkit.from_spec("INPUT(1x4x4) - CONV(D=2, F=3, P=1) - RELU - FC(3)",
...                          rng=np.random.default_rng(0))
>>> nodes, arrays, problems = describe_network(model, (1, 4, 4))
>>> [node["kind"] for node in nodes], sorted(nodes[0]["tensors"]), problems
(['CONV', 'RELU', 'FLATTEN', 'FC'], ['bias', 'weight'], [])
"""

from __future__ import annotations

import numpy as np

from cnnkit.arch.convert import describe
from cnnkit.display import short_decimals
from cnnkit.nn import registry
from cnnkit.nn.layer import Layer

# The layer kinds the page's JavaScript computes (explore/assets/layers.js defines one kernel
# per kind; a test checks that both lists agree).
SUPPORTED = (
    "NORMALIZE",
    "CONV",
    "POOL",
    "GAP",
    "BN",
    "BN1D",
    "DROPOUT",
    "DROPOUT2D",
    "RELU",
    "LEAKYRELU",
    "SIGMOID",
    "TANH",
    "FLATTEN",
    "FC",
    "RES",
)
CANNOT = "the page cannot run this layer"


def describe_network(model, input_shape) -> tuple[list[dict], list[np.ndarray], list[str]]:
    """(nodes of ``model``'s layers in order, the arrays they refer to by index, one sentence
    per layer the page cannot run). ``input_shape`` is (C, H, W)."""
    arrays: list[np.ndarray] = []
    problems: list[str] = []
    nodes, _ = _sequence(model, "", tuple(input_shape), arrays, problems)
    return nodes, arrays, problems


def _is_container(layer) -> bool:
    """A container of layers in order that is no layer kind of its own (a Sequential)."""
    inner = layer.sequence()
    return registry.keyword_of(layer) is None and not (len(inner) == 1 and inner[0] is layer)


def _sequence(layer, path: str, shape, arrays, problems) -> tuple[list[dict], tuple]:
    """The nodes of ``layer`` (itself, or a container's layers with their paths) for inputs of
    ``shape`` (per example), and the shape that comes out."""
    if not _is_container(layer):
        node = _node(layer, path, shape, arrays, problems)
        return [node], tuple(node["shape"])
    nodes = []
    for name, child in layer.named_children():
        inner, shape = _sequence(child, f"{path}.{name}" if path else name, shape, arrays, problems)
        nodes += inner
    return nodes, shape


def _node(layer, path: str, shape, arrays, problems) -> dict:
    keyword = registry.keyword_of(layer)
    kind = keyword or type(layer).__name__
    out = tuple(int(size) for size in layer.output_shape((1, *shape))[1:])
    node = {
        "path": path,
        "kind": kind,
        "label": _label(layer, shape),
        "shape": list(out),
        "input": list(shape),
        "config": {},
        "tensors": {},
    }
    config = layer.spec_config() if keyword is not None else {}
    for key, value in config.items():
        if isinstance(value, Layer):
            child_path = f"{path}.{key}" if path else key
            node["config"][key] = _sequence(value, child_path, shape, arrays, problems)[0]
        else:
            node["config"][key] = _plain(value)
    problem = _problem(kind, layer)
    if problem is None and kind not in SUPPORTED:  # the layer's own kernel (explorer_js)
        node["own_kernel"] = True
        node["pointwise"] = bool(getattr(type(layer), "explorer_pointwise", False))
    if problem is not None:
        node["unsupported"] = f"layer {path} {kind}: {problem}"
        problems.append(node["unsupported"])
        return node
    for key, value in layer.state_dict().items():
        array = np.asarray(value)
        if "." in key or array.dtype.kind != "f":
            continue  # a child's array (named by the child), or a counter
        node["tensors"][key] = {"index": len(arrays), "shape": list(array.shape)}
        arrays.append(array)
    return node


def _problem(kind: str, layer) -> str | None:
    """Why the page cannot compute ``layer``, or None."""
    if kind not in SUPPORTED:
        return None if own_kernel(layer) is not None else CANNOT
    if kind in ("BN", "BN1D") and getattr(layer, "running_mean", None) is None:
        return f"{CANNOT} (it normalises with each batch's statistics: track_running_stats=False)"
    return None


def own_kernel(layer) -> str | None:
    """The JavaScript a registered layer class brings for the page (``explorer_js``), or None.

    ``explorer_js`` is the source of a function ``(node, x) => y`` over one example: ``x`` and
    ``y`` are ``{shape, data}`` (``data`` a Float64Array in (C, H, W) order); ``node.config``
    holds the layer's ``spec_config()`` and ``param(node, "weight")`` its ``state_dict``
    arrays; the page's helpers ``tensor(shape)``, ``mapUnits(x, v => ...)`` and
    ``perChannel(x, (v, c) => ...)`` are in scope. ``explorer_pointwise = True`` says each
    output unit reads only the input unit at its place (its receptive field; otherwise the
    page marks the whole input as read).
    """
    source = getattr(type(layer), "explorer_js", None)
    return source if isinstance(source, str) and source.strip() else None


def user_kernels(model) -> dict[str, str]:
    """{keyword: explorer_js source} of the layers in ``model`` that bring their own kernel."""
    found = {}
    for layer in model.modules():
        keyword = registry.keyword_of(layer)
        if keyword is not None and keyword not in SUPPORTED and own_kernel(layer) is not None:
            found[keyword] = own_kernel(layer)
    return found


def _label(layer, shape) -> str:
    try:
        return short_decimals(describe(layer, (1, *shape)))
    except Exception:  # a label must not stop the page: the class name says enough
        return type(layer).__name__


def _plain(value):
    """A config value as JSON holds it: tuples as lists, NumPy numbers as numbers."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)
