"""attnwidget in a Voila app: a notebook served as a page (Voila runs its cells, then the page connects
to the still-running kernel), in Chromium with no network beyond the Voila server.

The app shows a grid run on `image` and, below it, a button that runs a second grid slowly once the
page is up. Voila's "lab" template links Font Awesome's stylesheets from a CDN (icons for ipywidgets'
buttons); those requests are refused like any other outside the server, and nothing else is asked.
The dark theme is held to WCAG AA contrast like JupyterLab's (see contrast.py).
"""

from __future__ import annotations

import json
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from contrast import canvas_texts, dom_texts, expect_aa
from harness import (
    KERNEL_TIMEOUT_MS,
    SETUP,
    VIEWPORT,
    Service,
    free_port,
    isolated_environment,
    launch,
    slow_run,
    write_notebook,
)
from playwright.sync_api import Browser, Page, Request, Route, expect
from test_widget_e2e import save_png
from widget_dom import COLS, DRAW_TIMEOUT_MS, TILES, Widget, expect_full_grid, expect_overlay_drawn

pytestmark = pytest.mark.browser

#: Seconds each layer sleeps when the button runs the second grid: slow enough to see rows arrive.
LAYER_DELAY_S = 0.4

RUN_BUTTON = f"""\
import time
import ipywidgets
later = attnwidget.AttentionGrid(None)
button = ipywidgets.Button(description="Run the model")
def run_slowly(_):
{textwrap.indent(slow_run("later", LAYER_DELAY_S), "    ")}
button.on_click(run_slowly)
ipywidgets.VBox([button, later])"""
CELLS = [SETUP, "grid = attnwidget.explore(image)", RUN_BUTTON]

#: Every value each grid canvas's `data-tiles-drawn` takes, from the page's first script on.
RECORD_TILES = """
window.tilesSeen = [];
new MutationObserver(() => {
  document.querySelectorAll("[data-testid=attnwidget-grid]").forEach((canvas, i) => {
    const seen = (window.tilesSeen[i] ??= []);
    const drawn = Number(canvas.dataset.tilesDrawn);
    if (seen[seen.length - 1] !== drawn) seen.push(drawn);
  });
}).observe(document, {
  subtree: true, childList: true, attributes: true, attributeFilter: ["data-tiles-drawn"],
});
"""


@dataclass
class VoilaPage:
    page: Page
    refused: list[str]  # requests outside the Voila server
    errors: list[str]  # console errors

    def widget(self, index: int) -> Widget:
        """The `index`-th attnwidget on the page (its output area)."""
        outputs = self.page.locator(".jp-OutputArea-output").filter(
            has=self.page.locator("[data-testid=attnwidget-root]")
        )
        return Widget(outputs.nth(index))


@pytest.fixture(scope="module")
def voila_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`voila app.ipynb` on 127.0.0.1 (no browser); its URL."""
    workdir = tmp_path_factory.mktemp("voila")
    root = workdir / "root"
    root.mkdir()
    write_notebook(root / "app.ipynb", CELLS)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "voila", "app.ipynb", "--no-browser", "--show_tracebacks=True",
        "--Voila.ip=127.0.0.1", f"--Voila.port={port}", "--Voila.port_retries=0",
    ]  # fmt: skip
    service: Service = launch(
        command,
        cwd=root,
        env=isolated_environment(workdir / "home"),
        log=workdir / "voila.log",
        # A static file: asking for the page itself would start a kernel.
        ready=lambda: urllib.request.urlopen(f"{base}/voila/static/voila.js", timeout=10).close(),
        name="voila",
    )
    yield base
    service.stop()


def open_app(browser: Browser, url: str, origin: str) -> VoilaPage:
    """Load the app at `url` (Voila runs every cell as the page arrives); requests outside `origin`
    are refused and listed."""
    page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    page.set_default_timeout(30_000)
    page.add_init_script(RECORD_TILES)
    app = VoilaPage(page, [], [])

    def route(route: Route, request: Request) -> None:
        if request.url.startswith((origin, "blob:", "data:")):
            route.continue_()
        else:
            app.refused.append(request.url)
            route.abort()

    page.route("**/*", route)
    page.on("console", lambda message: app.errors.append(message.text) if message.type == "error" else None)
    page.goto(url, timeout=KERNEL_TIMEOUT_MS)
    return app


@pytest.fixture(scope="module")
def voila_page(browser: Browser, voila_app: str) -> Iterator[VoilaPage]:
    """The app's page, loaded and connected to its kernel."""
    app = open_app(browser, f"{voila_app}/", voila_app)
    yield app
    app.page.close()


def open_overlay(widget: Widget, row: int, col: int) -> None:
    """Wait for the whole grid, open tile (`row`, `col`) and wait for the kernel's exact values."""
    expect(widget.grid).to_be_visible(timeout=DRAW_TIMEOUT_MS)
    expect_full_grid(widget)
    widget.click_tile(row, col)
    expect(widget.overlay).to_be_visible()
    expect(widget.grid).to_have_attribute("data-selected", f"{row + 1},{col + 1}")
    expect_overlay_drawn(widget)
    # The overlay asked the kernel for the head's values (a custom message) and they came back.
    expect(widget.overlay).to_contain_text("(exact values)", timeout=DRAW_TIMEOUT_MS)


def expect_only_font_awesome_refused(app: VoilaPage) -> None:
    """Nothing but the template's Font Awesome stylesheets was asked of the network; no widget errors."""
    assert all("@fortawesome/fontawesome-free" in url for url in app.refused), app.refused
    widget_errors = [e for e in app.errors if "attnwidget" in e or "anywidget" in e]
    assert not widget_errors, widget_errors


def test_grid_overlay_and_exact_values_in_voila(voila_page: VoilaPage, artifacts: Path):
    widget = voila_page.widget(0)
    open_overlay(widget, 7, 2)  # layer 8, head 3
    expect(widget.status).to_have_attribute("data-status", "done")
    expect(widget.predictions).to_contain_text("Predicted: square")
    expect(widget.overlay_title).to_contain_text("l=8 h=3")
    voila_page.page.screenshot(path=artifacts / "voila-1-grid-and-overlay.png", full_page=True)
    expect_only_font_awesome_refused(voila_page)


def test_save_png_downloads_in_voila(voila_page: VoilaPage, artifacts: Path):
    widget = voila_page.widget(0)
    open_overlay(widget, 3, 5)  # layer 4, head 6
    name, pixels = save_png(widget, artifacts / "voila-2-saved.png")
    assert name == "attnwidget-attnwidget-vit-8x8-shapes-l4-h6.png"
    # Grid and overlay side by side, at the canvases' resolution.
    grid = json.loads(widget.grid.evaluate("(canvas) => JSON.stringify([canvas.width, canvas.height])"))
    overlay_width = widget.overlay_canvas.evaluate("(canvas) => canvas.width")
    assert pixels.shape[1] >= grid[0] + overlay_width and pixels.shape[0] >= grid[1]
    assert pixels.std() > 20  # a picture, not a blank page


def test_rows_stream_in_when_the_page_runs_the_model(voila_page: VoilaPage, artifacts: Path):
    page = voila_page.page
    # While Voila ran the cells the page showed no output: the first grid was complete when it appeared.
    assert page.evaluate("window.tilesSeen[0][0]") == TILES
    later = voila_page.widget(1)
    expect(later.grid).to_have_attribute("data-tiles-drawn", "0")
    page.get_by_role("button", name="Run the model").click()

    # Some rows but not all: the kernel streams them to the page while the model runs.
    page.wait_for_function(
        f"(canvas) => {{ const n = Number(canvas.dataset.tilesDrawn); return n > 0 && n < {TILES}; }}",
        arg=later.grid.element_handle(),
        timeout=DRAW_TIMEOUT_MS,
    )
    later.grid.screenshot(path=artifacts / "voila-3-streaming.png")
    partial = later.tile_pixels()
    assert 0 < partial.tiles_drawn < TILES and partial.tiles_drawn % COLS == 0
    assert partial.painted == [True] * partial.tiles_drawn + [False] * (TILES - partial.tiles_drawn)

    expect_full_grid(later)
    seen = page.evaluate("window.tilesSeen[1]")
    assert len({n for n in seen if 0 < n < TILES}) >= 2, f"expected several partial grids: {seen}"
    assert seen == sorted(seen), f"the tile count went backwards: {seen}"


def test_dark_theme_is_readable(browser: Browser, voila_app: str, artifacts: Path):
    # `?theme=dark` is the per-page form of `voila --theme=dark`; this page gets a kernel of its own.
    app = open_app(browser, f"{voila_app}/?theme=dark", voila_app)
    try:
        expect(app.page.locator("body")).to_have_attribute("data-jp-theme-name", "JupyterLab Dark")
        widget = app.widget(0)
        open_overlay(widget, 7, 2)
        app.page.screenshot(path=artifacts / "voila-4-dark.png")
        texts, _ = dom_texts(widget.root)
        readings = texts + canvas_texts(widget)
        print("\n".join(map(str, sorted(readings, key=lambda m: m.ratio))))
        expect_aa(readings, "voila --theme=dark")
        expect_only_font_awesome_refused(app)
    finally:
        app.page.close()
