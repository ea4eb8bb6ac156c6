"""Every notebook in docs/notebooks runs top to bottom in a fresh kernel, as a reader runs it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "docs" / "notebooks"
PAGES = sorted(NOTEBOOKS.glob("*.ipynb"))
EXTRAS = re.compile(r"^\s*(?:import|from) (torch|onnx|onnxruntime)\b", re.M)
TIMEOUT = 120  # seconds per cell; each notebook takes well under a minute on 2 quiet cores


def test_the_notebooks_are_there():
    names = {page.stem for page in PAGES}
    assert {"getting-started", "write-your-own-layer", "export-and-come-back", "explore"} <= names


@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_notebook_runs(page, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="pip install cnnkit[test] for nbformat")
    nbclient = pytest.importorskip("nbclient", reason="pip install cnnkit[test] for nbclient")
    pytest.importorskip("ipykernel", reason="pip install cnnkit[test] for ipykernel")
    notebook = nbformat.read(page, as_version=4)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    for name in sorted(set(EXTRAS.findall(code))):
        pytest.importorskip(name, reason=f"{page.name} needs {name}: pip install cnnkit[test]")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))
    client = nbclient.NotebookClient(
        notebook, timeout=TIMEOUT, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # raises CellExecutionError naming the cell and its traceback
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    shown = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") in ("display_data", "execute_result")
    ]
    assert shown, f"{page.name} displays nothing"
    kinds = {kind for output in shown for kind in output.get("data", {})}
    assert "text/html" in kinds, f"{page.name} shows no HTML (summary, explanation)"
