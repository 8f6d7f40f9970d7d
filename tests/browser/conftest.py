"""Fixtures of the browser tests: real Jupyter servers, Chromium, and a notebook with a live kernel.

Run with `python -m pytest tests/browser -m browser -x -v`. Screenshots land in `test-artifacts/`.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    SETUP,
    JupyterServer,
    Notebook,
    open_notebook,
    start_server,
    write_notebook,
)
from playwright.sync_api import Browser, sync_playwright


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not CHROMIUM.exists():
        skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """`test-artifacts/` at the repo root, emptied at the start of the session."""
    folder = REPO / "test-artifacts"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session", params=["lab", "notebook"])
def jupyter_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterServer]:
    """A running `jupyter lab` or `jupyter notebook` (Notebook 7); lab-only tests narrow the params."""
    server = start_server(request.param, tmp_path_factory.mktemp(f"jupyter-{request.param}"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_notebook(browser: Browser, jupyter_server: JupyterServer) -> Iterator[Notebook]:
    """A notebook page with a live kernel that has imported attnwidget and made `image` (256 x 192)."""
    write_notebook(jupyter_server.root / "live.ipynb")
    notebook = open_notebook(browser, jupyter_server, "live.ipynb")
    assert "ready" in notebook.output_text(notebook.run_cell(SETUP))
    yield notebook
    notebook.page.close()


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Remember whether the test itself failed, for `screenshot_on_failure`."""
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


@pytest.fixture(autouse=True)
def screenshot_on_failure(
    request: pytest.FixtureRequest, artifacts: Path, browser: Browser
) -> Iterator[None]:
    """After a failed test, a screenshot of each open page: `test-artifacts/FAILED-<test>-<n>.png`."""
    yield
    if request.node.stash.get(_FAILED, False):
        pages = [page for context in browser.contexts for page in context.pages]
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        for number, page in enumerate(pages):
            page.screenshot(path=artifacts / f"FAILED-{name}-{number}.png", full_page=True)
