"""attnwidget in marimo: a real `marimo run` server, its kernel and Chromium.

The app below shows one grid through `mo.ui.anywidget(grid)` and one as a plain cell's last
expression, a dropdown whose dependent cell sets `grid.colormap` from Python, `explore(image)`, and
a grid that a run button fills slowly, to watch rows stream in. marimo renders anywidgets inside a
shadow root; Playwright's CSS locators reach into it, so `Widget(cell)` works as in Jupyter.
Text contrast is measured (contrast.py) in marimo's light theme and, on a second page in the dark
colour scheme, its dark theme; `marimo export html` checks the static page, which has no kernel.
Screenshots land in `test-artifacts/`.
"""

from __future__ import annotations

import mimetypes
import re
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import marimo
import numpy as np
import pytest
from contrast import canvas_texts, dom_texts, expect_aa, saved_texts
from harness import (
    KERNEL_TIMEOUT_MS,
    PICTURE,
    VIEWPORT,
    Service,
    free_port,
    isolated_environment,
    launch,
    slow_run,
)
from playwright.sync_api import Browser, Locator, Page, Route, expect
from test_widget_e2e import canvas_on_white, save_png
from widget_dom import COLS, DRAW_TIMEOUT_MS, TILES, Widget, expect_full_grid, expect_overlay_drawn

pytestmark = pytest.mark.browser

#: Seconds each layer's attention sleeps in the streaming run, so the run is slow enough to watch.
LAYER_DELAY_S = 0.5

#: The test picture's code, indented as a marimo cell's body.
PICTURE_IN_CELL = textwrap.indent(PICTURE, "    ")

APP = f"""\
import marimo

app = marimo.App(width="full")


@app.cell
def setup():
    import time

    import marimo as mo
    import numpy as np

    import attnwidget

{PICTURE_IN_CELL}
    return attnwidget, image, mo, time


@app.cell
def make_grid(attnwidget, image):
    grid = attnwidget.AttentionGrid(None, image)
    return (grid,)


@app.cell
def wrapped_grid(grid, mo):
    wrapped = mo.ui.anywidget(grid)
    wrapped
    return (wrapped,)


@app.cell
def kernel_selection(mo, wrapped):
    mo.md(f"kernel: selected {{wrapped.selected}}, overlay open {{wrapped.overlay_open}}")
    return


@app.cell
def colormap_picker(mo):
    colormap = mo.ui.dropdown(["viridis", "magma", "inferno", "gray"], value="viridis", label="Colormap")
    colormap
    return (colormap,)


@app.cell
def set_colormap(colormap, grid):
    grid.colormap = colormap.value
    return


@app.cell
def plain_grid(attnwidget, image):
    plain = attnwidget.AttentionGrid(None, image)
    plain
    return (plain,)


@app.cell
def explored_grid(attnwidget, image):
    explored = attnwidget.explore(image)
    return (explored,)


@app.cell
def streamed_grid(attnwidget):
    streamed = attnwidget.explore()
    return (streamed,)


@app.cell
def slow_run_button(mo):
    run_slowly = mo.ui.run_button(label="Run slowly")
    run_slowly
    return (run_slowly,)


@app.cell
def slow_run(image, mo, run_slowly, streamed, time):
    mo.stop(not run_slowly.value)
{textwrap.indent(slow_run("streamed", LAYER_DELAY_S), "    ")}
    mo.md(f"slow run: {{streamed.status}}")
    return
"""

#: A one-grid notebook for `marimo export html`: the static page holds the widget's state, no kernel.
EXPORTED_APP = f"""\
import marimo

app = marimo.App(width="full")


@app.cell
def exported_grid():
    import numpy as np

    import attnwidget

{PICTURE_IN_CELL}
    grid = attnwidget.AttentionGrid(None, image)
    grid
    return
"""


@dataclass
class MarimoApp:
    base: str
    folder: Path
    service: Service
    export: subprocess.Popen  # `marimo export html` of EXPORTED_APP, running beside the server
    export_log: Path


@pytest.fixture(scope="module")
def marimo_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarimoApp]:
    """`marimo run app.py` (app mode) with its own home and config; the theme follows the browser.

    `marimo export html` of a one-grid notebook starts beside it, for the static-page test.
    """
    workdir = tmp_path_factory.mktemp("marimo")
    folder, home = workdir / "app", workdir / "home"
    folder.mkdir()
    (folder / "app.py").write_text(APP)
    (folder / "exported.py").write_text(EXPORTED_APP)
    env = {
        **isolated_environment(home),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "xdg-config"),
        "XDG_STATE_HOME": str(home / "xdg-state"),
        "XDG_CACHE_HOME": str(home / "xdg-cache"),
        "HF_HUB_OFFLINE": "1",
    }
    config = home / "xdg-config" / "marimo" / "marimo.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[display]\ntheme = "system"\n')
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    service = launch(
        [sys.executable, "-m", "marimo", "run", "app.py", "--headless",
         "--host", "127.0.0.1", "--port", str(port), "--no-token"],
        cwd=folder,
        env=env,
        log=workdir / "server.log",
        ready=lambda: urllib.request.urlopen(f"{base}/health", timeout=5).read(),
        name="marimo run",
    )  # fmt: skip
    export_log = workdir / "export.log"
    with export_log.open("wb") as log:
        export = subprocess.Popen(
            [sys.executable, "-m", "marimo", "export", "html", "exported.py", "-o", "exported.html"],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    yield MarimoApp(base, folder, service, export, export_log)
    if export.poll() is None:
        export.kill()
        export.wait(timeout=10)
    service.stop()


def open_app(browser: Browser, app: MarimoApp, scheme: str) -> tuple[Page, list[str]]:
    """The app in a new page with the `scheme` colour scheme; also the URLs it asks for elsewhere."""
    context = browser.new_context(viewport=VIEWPORT, color_scheme=scheme, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda request: (
            None if request.url.startswith((app.base, "blob:", "data:")) else elsewhere.append(request.url)
        ),
    )
    page.goto(app.base)
    return page, elsewhere


@pytest.fixture(scope="module")
def app_page(browser: Browser, marimo_app: MarimoApp) -> Iterator[tuple[Page, list[str]]]:
    """The app open in a light page (one kernel session for the tests that share it)."""
    page, elsewhere = open_app(browser, marimo_app, "light")
    yield page, elsewhere
    page.context.close()


def cell(page: Page, name: str) -> Locator:
    """The app's cell `name` (its function's name in app.py)."""
    return page.locator(f".marimo-cell[data-cell-name='{name}']")


def shown_widget(page: Page, name: str) -> Widget:
    """The widget in cell `name`, once its grid is on screen (the first waits for the kernel)."""
    widget = Widget(cell(page, name))
    expect(widget.grid).to_be_visible(timeout=KERNEL_TIMEOUT_MS)
    return widget


def test_grid_shows_through_mo_ui_anywidget_and_as_a_plain_cell(
    app_page: tuple[Page, list[str]], artifacts: Path
):
    page, elsewhere = app_page
    for name in ("wrapped_grid", "plain_grid"):
        widget = shown_widget(page, name)
        expect_full_grid(widget)
        expect(widget.status).to_have_attribute("data-status", "done")
        expect(widget.predictions).to_contain_text("Predicted:")
        expect(widget.overlay).to_be_hidden()
        # marimo mounts the view in a shadow root: the widget put its stylesheet there.
        assert widget.root.evaluate(
            "(root) => root.getRootNode() instanceof ShadowRoot"
            " && !!root.getRootNode().querySelector('#attnwidget-styles')"
        )
        cell(page, name).screenshot(path=artifacts / f"marimo-1-{name.replace('_', '-')}.png")
    assert not elsewhere, f"the page fetched from outside the marimo server: {elsewhere}"


@pytest.mark.parametrize(("name", "tile"), [("wrapped_grid", (2, 3)), ("plain_grid", (5, 1))])
def test_tile_click_opens_the_overlay_with_exact_values_from_the_kernel(
    app_page: tuple[Page, list[str]], artifacts: Path, name: str, tile: tuple[int, int]
):
    page, _ = app_page
    widget = shown_widget(page, name)
    expect_full_grid(widget)
    widget.click_tile(*tile)
    layer, head = tile[0] + 1, tile[1] + 1

    expect(widget.overlay).to_be_visible()
    expect(widget.grid).to_have_attribute("data-selected", f"{layer},{head}")
    expect(widget.overlay_canvas).to_have_attribute("data-layer", str(layer))
    expect(widget.overlay_canvas).to_have_attribute("data-head", str(head))
    expect(widget.overlay_title).to_contain_text(f"l={layer} h={head}")
    # The kernel answers the view's request for the head: its note says so.
    expect(widget.overlay).to_contain_text("(exact values)", timeout=DRAW_TIMEOUT_MS)
    expect_overlay_drawn(widget)
    if name == "wrapped_grid":
        # The click reached Python as the UI element's new value: the cell reading it ran again.
        expect(cell(page, "kernel_selection")).to_contain_text(
            f"kernel: selected [{layer}, {head}], overlay open True", timeout=DRAW_TIMEOUT_MS
        )
    cell(page, name).screenshot(path=artifacts / f"marimo-2-overlay-{name.replace('_', '-')}.png")


def test_a_dropdown_cell_sets_the_colormap_from_python_and_the_grid_redraws(
    app_page: tuple[Page, list[str]], artifacts: Path
):
    page, _ = app_page
    widget = shown_widget(page, "wrapped_grid")
    expect_full_grid(widget)
    colours = widget.root.locator("[data-testid=attnwidget-colormap]")
    expect(colours).to_have_value("viridis")
    viridis = widget.tile_pixels().hashes
    dropdown = cell(page, "colormap_picker").locator("select")

    dropdown.select_option("magma")  # the cell `grid.colormap = colormap.value` runs in the kernel
    assert widget.wait_for_tiles_to_change(viridis, TILES, DRAW_TIMEOUT_MS) == TILES
    expect(colours).to_have_value("magma")
    cell(page, "wrapped_grid").screenshot(path=artifacts / "marimo-3-magma-set-from-python.png")

    magma = widget.tile_pixels().hashes
    dropdown.select_option("viridis")
    widget.wait_for_tiles_to_change(magma, TILES, DRAW_TIMEOUT_MS)
    assert widget.tile_pixels().hashes == viridis, "back to viridis, the tiles are as they were"
    expect(colours).to_have_value("viridis")


def test_explore_displays_the_grid_and_runs_it(app_page: tuple[Page, list[str]], artifacts: Path):
    page, _ = app_page
    widget = shown_widget(page, "explored_grid")
    expect_full_grid(widget)
    expect(widget.status).to_have_attribute("data-status", "done")
    expect(widget.predictions).to_contain_text("square")
    cell(page, "explored_grid").screenshot(path=artifacts / "marimo-4-explore.png")


def test_save_png_downloads_the_grid_as_shown(app_page: tuple[Page, list[str]], artifacts: Path):
    page, _ = app_page
    widget = shown_widget(page, "explored_grid")
    expect_full_grid(widget)
    expect(widget.overlay).to_be_hidden()
    name, pixels = save_png(widget, artifacts / "marimo-5-saved-grid.png")
    assert name == "attnwidget-attnwidget-vit-8x8-shapes.png"
    grid = canvas_on_white(widget.grid)
    assert pixels.shape == grid.shape  # the grid canvas, at its device resolution
    assert np.abs(pixels.astype(int) - grid).mean() < 1.0


def test_rows_stream_in_while_a_cell_runs_the_model(app_page: tuple[Page, list[str]], artifacts: Path):
    page, _ = app_page
    widget = shown_widget(page, "streamed_grid")
    expect(widget.grid).to_have_attribute("data-tiles-drawn", "0")
    widget.record_tile_counts()
    cell(page, "slow_run_button").get_by_role("button", name="Run slowly").click()

    page.wait_for_function(
        f"(canvas) => {{ const n = Number(canvas.dataset.tilesDrawn); return n > 0 && n < {TILES}; }}",
        arg=widget.grid.element_handle(),
        timeout=DRAW_TIMEOUT_MS,
    )
    partial = widget.tile_pixels()
    status = widget.status.get_attribute("data-status")
    cell(page, "streamed_grid").screenshot(path=artifacts / "marimo-6-streaming.png")
    assert 0 < partial.tiles_drawn < TILES
    assert partial.tiles_drawn % COLS == 0, "tiles arrive by whole grid rows (layers)"
    assert partial.painted == [True] * partial.tiles_drawn + [False] * (TILES - partial.tiles_drawn)
    assert status == "running"

    expect(cell(page, "slow_run")).to_contain_text("slow run: done", timeout=DRAW_TIMEOUT_MS)
    expect_full_grid(widget)
    seen = page.evaluate("window.tilesSeen")
    assert len({n for n in seen if 0 < n < TILES}) >= 2, f"expected several partial grids on the way: {seen}"
    assert seen == sorted(seen), f"the tile count went backwards: {seen}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_is_readable_in_marimo_light_and_dark(
    browser: Browser, marimo_app: MarimoApp, app_page: tuple[Page, list[str]], scheme: str, artifacts: Path
):
    """marimo follows the browser's colour scheme here (theme "system"): a dark page is a second session."""
    page = app_page[0] if scheme == "light" else open_app(browser, marimo_app, scheme)[0]
    try:
        expect(page.locator("body")).to_have_class(re.compile(rf"\b{scheme}\b"))
        widget = shown_widget(page, "wrapped_grid")
        expect_full_grid(widget)
        widget.click_tile(4, 6)
        expect(widget.overlay).to_contain_text("(exact values)", timeout=DRAW_TIMEOUT_MS)
        expect_overlay_drawn(widget)
        cell(page, "wrapped_grid").screenshot(path=artifacts / f"marimo-7-{scheme}.png")
        texts, disabled = dom_texts(widget.root)
        canvas = canvas_texts(widget)
        report = "\n".join(map(str, sorted(texts + canvas, key=lambda m: m.ratio)))
        print(f"\nmarimo {scheme}, contrast lowest first:\n{report}\nnot measured (disabled): {disabled}")
        names = " ".join(m.name for m in texts)
        for expected in [
            'label "View"', 'attnwidget-save-png "Save PNG"', "attnwidget-status", "attnwidget-predictions",
            "attnwidget-grid-readout", "attnwidget-overlay-title", '.aw-badge "(exact values)"',
            "attnwidget-readout",
        ]:  # fmt: skip
            assert expected in names, f"{expected} was not measured:\n{report}"
        expect_aa(texts + canvas, f"marimo {scheme}")
        _, pixels = save_png(widget, artifacts / f"marimo-7-{scheme}-saved.png")
        expect_aa(saved_texts(widget, pixels), f"marimo {scheme}, the saved PNG")
    finally:
        if page is not app_page[0]:
            page.context.close()


def test_exported_html_shows_the_grid_without_a_kernel(
    browser: Browser, marimo_app: MarimoApp, artifacts: Path
):
    """`marimo export html`: the page loads marimo's front-end from its CDN, served here from the
    installed package (the same files), and holds the widget's state; no kernel answers it."""
    exported = marimo_app.export.wait(timeout=KERNEL_TIMEOUT_MS / 1000)
    assert exported == 0, f"marimo export html failed:\n{marimo_app.export_log.read_text()}"
    cdn = f"https://cdn.jsdelivr.net/npm/@marimo-team/frontend@{marimo.__version__}/dist/"
    static = Path(marimo.__file__).parent / "_static"
    refused: list[str] = []

    def route(route: Route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        elif url.startswith(cdn) and (static / url[len(cdn) :].split("?")[0]).is_file():
            path = static / url[len(cdn) :].split("?")[0]
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            cors = {"Access-Control-Allow-Origin": "*"}
            route.fulfill(body=path.read_bytes(), content_type=kind, headers=cors)
        else:
            refused.append(url)
            route.abort()

    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        page.route("**/*", route)
        page.goto((marimo_app.folder / "exported.html").as_uri())
        widget = Widget(cell(page, "exported_grid"))
        expect(widget.grid).to_be_visible(timeout=DRAW_TIMEOUT_MS)
        expect_full_grid(widget)
        widget.click_tile(2, 3)
        expect_overlay_drawn(widget)
        expect(widget.overlay).to_contain_text("(8-bit values)")  # the stored data: no kernel to ask
        cell(page, "exported_grid").screenshot(path=artifacts / "marimo-8-exported-html.png")
        assert not refused, f"the exported page asked for more than marimo's front-end: {refused}"
    finally:
        context.close()
