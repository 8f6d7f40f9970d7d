"""Every notebook in notebooks/ runs top to bottom without an error and shows what it is about."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs(path):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": path.parent}}
    ).execute()
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]
    assert not errors
    shown = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if {"application/vnd.jupyter.widget-view+json", "image/png"} & set(output.get("data", {}))
    ]
    assert shown, "the notebook should show at least one widget or picture"
