"""ONNX -> cnnkit: :func:`import_onnx` reads an ONNX file of the ops cnnkit's layers compute,
as cnnkit writes them or as other exporters (PyTorch's) do, into a ``cnnkit.Sequential``.

One node becomes one layer through the layer classes themselves: a class names the ops it
reads in ``onnx_ops`` and builds itself in ``from_onnx`` (see :mod:`cnnkit.interop.onnx_node`),
so a registered layer of the user's reads its op too. What spans several nodes is read here:

* a ``Pad`` before a ``Conv`` is its padding and padding mode (constant zeros, reflect, edge ->
  replicate, wrap -> circular), a zero ``Pad`` before an ``AveragePool`` padding it counts;
* ``MatMul`` then ``Add`` of a constant is a Linear with a bias;
* ``Sub`` then ``Div`` by per-channel constants is a Normalize;
* a value read by two paths that meet at an ``Add`` is a Residual: the path into the Add's
  first input is the body, the other the shortcut (the identity when it is the value itself),
  blocks nested inside blocks;
* ``Identity`` and ``Dropout`` compute nothing in inference (``Dropout`` comes back as a cnnkit
  Dropout, for training); a ``Softmax`` as the last node is dropped, because cnnkit models
  output logits (``CrossEntropyLoss`` applies the softmax).

Any other node is refused naming it and its op:
``ONNX node 'n7' (HardSwish) is not supported; cnnkit reads: AveragePool, BatchNormalization, ...``
"""

from __future__ import annotations

from cnnkit.arch.grammar import MAX_DEPTH
from cnnkit.errors import CnnkitError, DataError
from cnnkit.interop.onnx_file import GraphView, read_model
from cnnkit.interop.onnx_node import OnnxNode
from cnnkit.interop.onnx_support import MAX_BYTES, require_onnx
from cnnkit.nn import registry
from cnnkit.nn.containers import Sequential
from cnnkit.nn.residual import Residual

PATTERN_OPS = ("Add", "Constant", "Div", "Identity", "Pad", "Softmax")
PAD_MODES = {"constant": "zeros", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


def import_onnx(path, *, max_bytes: int = MAX_BYTES) -> Sequential:
    """The model in the ONNX file at ``path`` as a built ``cnnkit.Sequential``, in evaluation
    mode, with ``input_shape`` (C, H, W) from the graph's input (the batch axis may be dynamic,
    C, H and W must be static), float32, ready for ``summarize``, ``explain`` and ``fit``.

    Files larger than ``max_bytes`` (1 GiB by default) are refused before they are read, and a
    file ``onnx.checker`` rejects is refused in one line. A trailing ``Softmax`` is dropped
    (cnnkit models output logits). See the module docstring for the ops and patterns read.
    """
    onnx = require_onnx()
    graph = GraphView(onnx, read_model(onnx, path, max_bytes), path)
    reader = _Reader(graph, layer_ops())
    shape = (1, *graph.input_shape)
    layers, _, _, join = reader.chain(graph.input, shape)
    if join is not None:
        raise reader.unsupported(join, "joins a path that does not fork in this graph")
    model = Sequential(*layers, input_shape=graph.input_shape)
    model.eval()
    return model


def layer_ops() -> dict[str, type]:
    """ONNX op -> the layer class that reads it: the ``onnx_ops`` registered layer classes
    (and their subclasses) declare themselves, the first to claim an op keeping it."""
    table: dict[str, type] = {}
    stack = [found[1] for found in map(registry.lookup, registry.keywords()) if found]
    seen: set[type] = set()
    while stack:
        cls = stack.pop(0)
        if cls in seen:
            continue
        seen.add(cls)
        for op in cls.__dict__.get("onnx_ops", ()):
            table.setdefault(op, cls)
        stack.extend(cls.__subclasses__())
    return table


class _Reader:
    """Walks the graph from its input, turning nodes into layers."""

    def __init__(self, graph: GraphView, ops: dict[str, type]) -> None:
        self.graph, self.ops = graph, ops
        self.depth = 0  # residual blocks open around the node being read

    def unsupported(self, node, why: str | None = None) -> DataError:
        label = f"ONNX node {node.name or node.output[0]!r} ({node.op_type})"
        if why is not None:
            return DataError(f"{label}: {why}")
        known = ", ".join(sorted({*self.ops, *PATTERN_OPS}))
        return DataError(f"{label} is not supported; cnnkit reads: {known}")

    def users(self, value: str) -> list:
        return self.graph.users.get(value, [])

    def is_join(self, node) -> bool:
        """An Add of two computed values: where a residual block's paths meet."""
        constants = self.graph.constants
        return node.op_type == "Add" and all(name not in constants for name in node.input)

    # -- paths ----------------------------------------------------------------------------------
    def chain(self, value: str, shape, first=None):
        """(layers, last value, its shape, the joining Add or None) from ``value`` on, through
        ``first`` when given (one of a fork's paths), to the graph's output or a join."""
        layers, node = [], first
        while True:
            if node is None:
                users = self.users(value)
                if value == self.graph.output and not users:
                    return layers, value, shape, None
                if len(users) == 2:
                    block, value, shape = self.residual(value, shape, users)
                    layers.append(block)
                    continue
                if len(users) != 1:
                    raise self._fork_error(value, users)
                node = users[0]
            if self.is_join(node):
                return layers, value, shape, node
            if node.input[0] != value:
                raise self.unsupported(
                    node,
                    f"reads {value!r} as input {list(node.input).index(value)}; cnnkit reads "
                    "the data as input 0",
                )
            found, value, shape = self.step(node, shape)
            layers += found
            node = None

    def _fork_error(self, value, users) -> DataError:
        if not users:
            return DataError(
                f"{self.graph.path}: ONNX value {value!r} is read by no node and is not the "
                "graph's output"
            )
        return DataError(
            f"{self.graph.path}: ONNX value {value!r} is read by {len(users)} nodes; cnnkit reads "
            "forks of two paths that meet at an Add (residual blocks)"
        )

    def residual(self, value: str, shape, users):
        """The block whose paths start at the fork ``value``: (Residual, output, shape)."""
        self.depth += 1
        try:
            return self._residual(value, shape, users)
        finally:
            self.depth -= 1

    def _residual(self, value: str, shape, users):
        if self.depth > MAX_DEPTH:
            raise DataError(
                f"{self.graph.path}: residual blocks nest more than {MAX_DEPTH} deep at ONNX "
                f"value {value!r}; cnnkit reads up to {MAX_DEPTH} levels, as its architecture "
                "strings do"
            )
        if users[0] is users[1]:
            raise self.unsupported(users[0], f"reads {value!r} twice; cnnkit reads x + f(x)")
        paths = []
        for user in users:
            if self.is_join(user):
                paths.append(([], value, shape, user))
            else:
                paths.append(self.chain(value, shape, first=user))
        join = paths[0][3]
        if join is None or paths[1][3] is not join:
            raise DataError(
                f"{self.graph.path}: the two paths from ONNX value {value!r} do not meet at one "
                "Add; cnnkit reads forks that join by Add (residual blocks)"
            )
        if not paths[0][0] or (paths[1][0] and paths[0][1] != join.input[0]):
            paths.reverse()  # the body is the non-empty path, or the one into input 0
        (body, _, _, _), (short, _, _, _) = paths
        block = Residual(Sequential(*body), Sequential(*short) if short else None)
        try:
            return block, join.output[0], block.output_shape(shape)
        except CnnkitError as error:
            raise self.unsupported(join, f"its two paths do not fit: {error}") from None

    # -- one node, or a pattern of several -------------------------------------------------------
    def step(self, node, shape):
        """The layers ``node`` (with the nodes it pairs with) is, its output and its shape; a
        node whose attributes or inputs do not have the forms ONNX defines is one line."""
        try:
            return self._step(node, shape)
        except CnnkitError:
            raise
        except (ArithmeticError, IndexError, KeyError, TypeError, ValueError) as error:
            raise self.unsupported(
                node, f"is malformed ({type(error).__name__}: {error})"
            ) from None

    def _step(self, node, shape):
        op, output = node.op_type, node.output[0]
        if node.domain not in ("", "ai.onnx"):
            raise self.unsupported(node)
        if op == "Identity":
            return [], output, shape
        if op == "Softmax":
            if output == self.graph.output and not self.users(output):
                return [], output, shape  # dropped: cnnkit models output logits
            raise self.unsupported(node, "a Softmax is read only as the last node (dropped)")
        if op == "Pad":
            after = self._single_user(node, ("Conv", "AveragePool"))
            pad = self._pad(node, after)
            return self.layer(after, OnnxNode(self.graph, after, shape, pad=pad))
        if op == "MatMul":
            after = self._constant_partner(node, "Add")
            bias = None if after is None else self._other_constant(after, output)
            view = OnnxNode(self.graph, node, shape, bias=bias)
            return self.layer(after or node, view)
        if op == "Sub":
            after = self._constant_partner(node, "Div")
            view = OnnxNode(self.graph, node, shape)
            if after is not None:
                divisor = OnnxNode(self.graph, after, shape).channel_constant(1)
                view.divisor = divisor
            return self.layer(after or node, view)
        if op in ("Add", "Div", "Constant"):
            raise self.unsupported(
                node, f"{op} with a constant is read only after a MatMul (Add) or a Sub (Div)"
            )
        return self.layer(node, OnnxNode(self.graph, node, shape))

    def layer(self, last, view: OnnxNode):
        """The layer ``view.proto``'s class builds; its output is ``last``'s."""
        node = view.proto
        cls = self.ops.get(view.op)
        if cls is None or node.domain not in ("", "ai.onnx"):
            raise self.unsupported(node)
        for extra in node.output[1:]:
            if extra and (self.users(extra) or extra == self.graph.output):
                raise self.unsupported(
                    node, f"its output {extra!r} is used; cnnkit reads its first"
                )
        layer = cls.from_onnx(view)
        try:
            shape = layer.output_shape(view.input_shape)
        except CnnkitError as error:
            raise view.refuse(f"cnnkit cannot build it: {error}") from None
        return [layer], last.output[0], shape

    def _single_user(self, node, ops):
        users = self.users(node.output[0])
        if len(users) != 1 or users[0].op_type not in ops:
            found = ", ".join(u.op_type for u in users) or "nothing"
            raise self.unsupported(
                node, f"is followed by {found}; cnnkit reads a Pad before a {' or '.join(ops)}"
            )
        return users[0]

    def _constant_partner(self, node, op):
        """The node after ``node`` when it is its only user, an ``op`` with a constant."""
        users = self.users(node.output[0])
        if len(users) == 1 and users[0].op_type == op and not self.is_join(users[0]):
            if op == "Div" and users[0].input[0] != node.output[0]:
                return None  # c / x is no normalisation
            return users[0]
        return None

    def _other_constant(self, node, value):
        name = next(n for n in node.input if n != value)
        return self.graph.constants[name].astype("float32")

    def _pad(self, node, after):
        """(begins (top, left), ends (bottom, right), cnnkit mode) of a Pad node."""
        view = OnnxNode(self.graph, node, (1, 1, 1, 1))
        mode = view.attr("mode", "constant")
        pads = view.constant(1).astype(int).tolist()
        axes = view.constant(3, optional=True)
        if axes is not None:  # opset 18: pads for the listed axes only
            listed = [int(a) % 4 for a in axes.reshape(-1)]
            if len(set(listed)) != len(listed) or len(pads) != 2 * len(listed):
                raise view.refuse(
                    f"axes {listed} with pads {pads}: give each axis once, two pads each"
                )
            full = [0] * 8
            for i, axis in enumerate(listed):
                full[axis], full[axis + 4] = pads[i], pads[i + len(axes.reshape(-1))]
            pads = full
        value = view.constant(2, optional=True)
        if mode not in PAD_MODES or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
            raise view.refuse(f"mode {mode!r}, pads {pads}: cnnkit reads spatial padding only")
        if min(pads) < 0 or (value is not None and value.size and float(value.reshape(-1)[0])):
            raise view.refuse(f"pads {pads} (value {value}): cnnkit reads padding >= 0 by zeros")
        if after.op_type == "AveragePool" and mode != "constant":
            raise view.refuse(f"mode {mode!r} before an AveragePool: cnnkit pads pools with zeros")
        return pads[2:4], pads[6:8], PAD_MODES[mode]
