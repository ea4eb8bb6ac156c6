"""Every Python block of the pages in docs/ runs, top to bottom, as a reader would run them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnnkit.nn import registry

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted(DOCS.glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_layer_page_is_there_and_has_code():
    assert DOCS / "write-your-own-layer.md" in PAGES
    assert len(blocks(DOCS / "write-your-own-layer.md")) >= 8


CODE_PAGES = [page for page in PAGES if blocks(page)]
EXTRAS = re.compile(r"^\s*(?:import|from) (torch|onnx|onnxruntime)\b", re.M)


def skip_without_extras(page: Path) -> None:
    """A page about interop needs its extras (the test extras install them, so CI runs it)."""
    code = "\n".join(blocks(page))
    needed = set(EXTRAS.findall(code))
    needed |= {"onnx"} if re.search(r"\b(export|import)_onnx\b", code) else set()
    needed |= {"torch"} if re.search(r"\b(to|from)_torch\b", code) else set()
    for name in sorted(needed):
        pytest.importorskip(name, reason=f"{page.name} needs {name}: pip install cnnkit[test]")


@pytest.mark.parametrize("page", CODE_PAGES, ids=[page.stem for page in CODE_PAGES])
def test_page_runs(page, tmp_path, monkeypatch, capsys):
    skip_without_extras(page)
    monkeypatch.chdir(tmp_path)
    before = set(registry.keywords())
    namespace = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    try:
        for number, code in enumerate(blocks(page), start=1):
            try:
                exec(compile(code, f"{page.name} block {number}", "exec"), namespace)
            except Exception as error:
                raise AssertionError(f"{page.name}, block {number} failed: {error!r}") from error
    finally:
        for keyword in set(registry.keywords()) - before:
            registry.unregister(keyword)
    assert capsys.readouterr().out  # the page prints what it shows
