"""Write docs/images/grid-and-overlay.png: the widget in JupyterLab with one head opened over the picture.

python scripts/readme_screenshot.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "browser"))
from harness import CHROMIUM, CHROMIUM_ARGS, Notebook, start_server, write_notebook  # noqa: E402

CELL = """\
import attnwidget
from attnwidget.scenes import make_scene
grid = attnwidget.explore(make_scene(1_000_003).image)"""
#: The tile opened in the picture: layer 8, head 3 (row 7, column 2 of the 8 x 8 grid).
TILE = 7 * 8 + 2


def main() -> None:
    out = ROOT / "docs" / "images" / "grid-and-overlay.png"
    with tempfile.TemporaryDirectory() as workdir, sync_playwright() as playwright:
        server = start_server("lab", Path(workdir))
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            write_notebook(server.root / "screenshot.ipynb")
            page = browser.new_page(viewport={"width": 1900, "height": 1500}, device_scale_factor=1)
            page.goto(server.notebook_url("screenshot.ipynb"))
            notebook = Notebook(page, "screenshot.ipynb")
            notebook.wait_for_kernel_idle()
            cell = notebook.run_cell(CELL)
            grid = cell.locator("[data-testid=attnwidget-grid]")
            grid.and_(page.locator("[data-tiles-drawn='64']")).wait_for()
            x, y, w, h = json.loads(grid.get_attribute("data-tile-rects"))[TILE]
            grid.click(position={"x": x + w / 2, "y": y + h / 2})
            overlay = cell.locator("[data-testid=attnwidget-overlay-canvas]")
            overlay.hover(position={"x": 200, "y": 120})
            page.wait_for_timeout(1000)  # the picture decodes and the kernel's exact values arrive
            cell.locator("[data-testid=attnwidget-root]").screenshot(path=out)
        finally:
            browser.close()
            server.stop()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
