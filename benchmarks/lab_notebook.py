"""A JupyterLab 4 server, headless Chromium and an open notebook with its kernel ready, for the
browser benchmarks (the same harness as the end-to-end tests in tests/browser)."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "browser"))
from harness import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, Notebook, start_server, write_notebook


@contextmanager
def lab_notebook(before_open: Callable[[Page], None] | None = None) -> Iterator[Notebook]:
    """An empty notebook in JupyterLab, open in Chromium with its kernel idle; all stopped after.

    `before_open(page)` runs before the page loads (to listen to its websockets, say).
    """
    with tempfile.TemporaryDirectory() as workdir, sync_playwright() as playwright:
        server = start_server("lab", Path(workdir))
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            write_notebook(server.root / "bench.ipynb")
            page = browser.new_page(viewport=VIEWPORT)
            if before_open is not None:
                before_open(page)
            page.goto(server.notebook_url("bench.ipynb"))
            notebook = Notebook(page, "bench.ipynb")
            notebook.wait_for_kernel_idle()
            yield notebook
        finally:
            browser.close()
            server.stop()
