"""Exported pages in Chromium with no network: `to_html` files and `nbconvert --execute --to html`.

The standalone page must need nothing at all from outside. The nbconvert page loads RequireJS, the
widgets' HTML manager and each widget package from CDNs, as nbconvert writes it; here those requests
are answered from local copies (the npm packages the front-end build installs and the packages'
installed notebook extensions), and every other request is refused.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import ipywidgets
import pytest
from harness import REPO, offline_page
from playwright.sync_api import Browser, expect
from widget_dom import COLS, DRAW_TIMEOUT_MS, Widget, expect_full_grid, expect_overlay_drawn

import attnwidget
from attnwidget.export import module_source, to_html
from attnwidget.panel import HeadStatsPanel
from attnwidget.scenes import make_scene

pytestmark = pytest.mark.browser

STATIC = REPO / "attnwidget" / "static"
#: A widget package on a CDN, as the HTML manager asks for it: .../npm/<name>@<version>/dist/index.js
CDN_MODULE = re.compile(r"https://cdn\.jsdelivr\.net/npm/((?:@[^/@]+/)?[^/@]+)@[^/]+/dist/index\.js")


def test_standalone_html_works_offline(browser: Browser, tmp_path: Path, artifacts: Path):
    scene = make_scene(1_000_003)
    grid = attnwidget.AttentionGrid(None, scene.image)
    panel = HeadStatsPanel(grid)
    page_file = to_html(ipywidgets.HBox([grid, panel]), tmp_path / "grid.html", title="scene <b>1</b> & more")

    page, refused = offline_page(browser, lambda url: None)
    page.goto(page_file.as_uri())
    widget = Widget(page.locator("body"))
    expect(widget.grid).to_be_visible(timeout=DRAW_TIMEOUT_MS)
    expect_full_grid(widget)
    expect(page.locator("h1")).to_have_text("scene <b>1</b> & more")  # the title is text, not markup
    expect(widget.predictions).to_contain_text(f"Predicted: {grid.predictions[0]['label']}")
    page.screenshot(path=artifacts / "export-1-standalone.png")

    widget.click_tile(7, 2)  # layer 8, head 3: the overlay, from the saved data alone
    expect(widget.overlay).to_be_visible()
    expect_overlay_drawn(widget)
    dots = page.locator(".bqplot path.dot")
    expect(dots.nth(7 * COLS + 2)).to_have_css("fill", "rgb(253, 231, 37)")  # the panel follows
    dots.nth(3 * COLS + 5).dispatch_event("click")  # and leads: layer 4, head 6
    expect(widget.grid).to_have_attribute("data-selected", "4,6")
    expect(widget.overlay_canvas).to_have_attribute("data-head", "6")
    page.screenshot(path=artifacts / "export-2-standalone-overlay.png")
    assert refused == []  # nothing was asked of the network
    page.close()


def test_to_html_refuses_what_it_cannot_write(tmp_path: Path):
    grid = attnwidget.AttentionGrid(None, make_scene(1).image)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        to_html(grid, tmp_path / "missing" / "grid.html")
    with pytest.raises(ValueError, match="nothing to export"):
        to_html([], tmp_path / "grid.html")
    assert list(tmp_path.iterdir()) == []


def test_nbconvert_html_shows_the_live_grid(browser: Browser, tmp_path: Path, artifacts: Path):
    notebook = tmp_path / "quickstart.ipynb"
    notebook.write_bytes((REPO / "notebooks" / "quickstart.ipynb").read_bytes())
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--execute", "--to", "html", str(notebook)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    served: list[str] = []

    def from_local_copies(url: str) -> bytes | None:
        if "/require.js/" in url or "/require.min.js" in url:
            script = STATIC / "require.js"
        elif "@jupyter-widgets/html-manager" in url and url.endswith("/dist/embed-amd.js"):
            script = STATIC / "embed-amd.js"
        elif match := CDN_MODULE.fullmatch(url):
            served.append(url)
            return module_source(match.group(1)).encode()
        else:
            return None
        served.append(url)
        return script.read_bytes()

    page, refused = offline_page(browser, from_local_copies)
    page.goto((tmp_path / "quickstart.html").as_uri())
    outputs = page.locator(".jp-OutputArea-output")
    first = Widget(outputs.filter(has=page.locator("[data-testid=attnwidget-root]")).first)
    # The grid as the notebook left it: layers 1 and 8 (the reference figure), normalised per layer.
    expect(first.grid).to_have_attribute("data-rows", "2", timeout=DRAW_TIMEOUT_MS)
    expect(first.grid).to_have_attribute("data-tiles-drawn", str(2 * COLS), timeout=DRAW_TIMEOUT_MS)
    expect(first.root.locator("[data-testid=attnwidget-normalize]")).to_have_value("layer")
    first.click_tile(1, 2)
    expect(first.overlay).to_be_visible()
    expect(first.overlay_title).to_contain_text("l=8 h=3")
    expect_overlay_drawn(first)
    page.screenshot(path=artifacts / "export-3-nbconvert.png", full_page=True)
    assert any("anywidget" in url for url in served) and any("embed-amd" in url for url in served)
    assert not any("jupyter-widgets" in url or "anywidget" in url for url in refused), refused
    page.close()
