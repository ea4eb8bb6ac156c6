"""The structure the project keeps: no import cycle (function-level imports included), no library
module importing the command line, modules <= 400 lines, functions <= 60 lines, and no module
testing a layer's class outside that layer's own module."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC / "cnnkit"
MAX_MODULE, MAX_FUNCTION = 400, 60
LAYER_CLASSES = {
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "Linear",
    "ReLU",
    "Flatten",
    "Normalize",
    "Sequential",
}


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(path): path for path in sorted(ROOT.rglob("*.py"))}
PACKAGES = {_name(path) for path in ROOT.rglob("__init__.py")}


def _imports(name: str, tree: ast.AST) -> set[str]:
    """Every cnnkit module ``name`` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if name in PACKAGES else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    edges = set()
    for target in found:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target not in ("cnnkit", name):
            edges.add(target)
    return edges


def _graph() -> dict[str, set[str]]:
    return {name: _imports(name, ast.parse(path.read_text())) for name, path in MODULES.items()}


def _is_cli(name: str) -> bool:
    return any(part.startswith("cli") or part == "__main__" for part in name.split(".")[1:])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_a_cycle_would_be_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_library_module_imports_the_command_line():
    graph = _graph()
    offenders = [
        f"{name} -> {target}"
        for name, targets in graph.items()
        if not _is_cli(name)
        for target in targets
        if _is_cli(target)
    ]
    assert offenders == []
    assert _is_cli("cnnkit.cli.train") and not _is_cli("cnnkit.explain.conv")


def test_modules_and_functions_stay_short():
    long_modules = []
    long_functions = []
    for name, path in MODULES.items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE:
            long_modules.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION:
                    long_functions.append(f"{name}:{node.name} {length} lines")
    assert long_modules == []
    assert long_functions == []


def test_only_a_layer_tests_its_own_class():
    """isinstance against a built-in layer class happens nowhere but in that class's module."""
    offenders = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                tested = (names & LAYER_CLASSES) - defined
                if tested - {"Sequential"} or (tested and not name.startswith("cnnkit.nn")):
                    offenders.append(f"{name}: isinstance(..., {', '.join(sorted(tested))})")
    assert offenders == []
