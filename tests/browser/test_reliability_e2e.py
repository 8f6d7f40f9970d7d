"""Hostile text and lost kernels, in real JupyterLab / Notebook 7 pages and exported HTML in Chromium.

Class names, model directory names and tokens are text from outside: each is shown literally and
never parsed as markup, live and exported. A kernel restart leaves the widget on screen usable with
what it holds, and says what needs the kernel.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import ipywidgets
import pytest
from harness import SETUP, JupyterServer, Notebook, offline_page, open_notebook, write_notebook
from playwright.sync_api import Browser, Page, expect
from tiny_text_models import save_text_model_with_token, save_tiny_text_models
from widget_dom import DRAW_TIMEOUT_MS, Widget, expect_full_grid, expect_overlay_drawn

import attnwidget
from attnwidget.export import to_html
from attnwidget.scenes import make_scene
from attnwidget.text import TextModel

from tiny_models import save_tiny_model

pytestmark = pytest.mark.browser

TESTS = str(Path(__file__).resolve().parents[1])
#: Markup that runs script when parsed as HTML: shown as text, it sets nothing.
PAYLOAD = '<img src=x onerror="window.__pwned=(window.__pwned||0)+1">'
HOSTILE_LABELS = [f"{PAYLOAD} {index}" for index in range(5)]

HOSTILE_CELLS = f"""\
import sys, tempfile
from pathlib import Path
sys.path.insert(0, {TESTS!r})
from tiny_models import save_tiny_model
from tiny_text_models import save_text_model_with_token, save_tiny_text_models
from attnwidget.text import TextModel
hostile_root = Path(tempfile.mkdtemp())
hostile_vit = save_tiny_model("vit", hostile_root / {PAYLOAD!r}, labels={HOSTILE_LABELS!r})
hostile_gpt2 = save_text_model_with_token(
    save_tiny_text_models(hostile_root)["gpt2"], {PAYLOAD!r}, hostile_root / ("gpt2 " + {PAYLOAD!r})
)
grid30 = attnwidget.AttentionGrid(hostile_vit, image)
grid31 = attnwidget.AttentionGrid(TextModel.from_pretrained(hostile_gpt2), "The cat sat " + {PAYLOAD!r})
display(grid30, grid31)"""


def assert_nothing_parsed(page: Page, root) -> None:
    """No script from the payload ran and no <img> was made of it."""
    assert page.evaluate("window.__pwned") is None, "a payload ran as markup"
    assert root.locator("img[src=x]").count() == 0


def test_hostile_labels_names_and_tokens_show_as_text(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    cell = live_notebook.run_cell(HOSTILE_CELLS)
    live_notebook.output_text(cell)
    roots = cell.locator("[data-testid=attnwidget-root]")
    vision, text = (Widget(roots.nth(index).locator("xpath=..")) for index in (0, 1))
    expect(vision.grid).to_have_attribute("data-tiles-drawn", "12", timeout=DRAW_TIMEOUT_MS)  # 3 x 4
    expect(vision.predictions).to_contain_text(f"Predicted: {PAYLOAD}")
    expect(vision.status).to_contain_text(PAYLOAD)  # the model's directory names it

    expect(text.grid).to_have_attribute("data-tiles-drawn", "12", timeout=DRAW_TIMEOUT_MS)
    labels = live_notebook.evaluate("grid31.token_labels")
    assert labels[-1] == PAYLOAD  # one token, as the tokenizer has it
    expect(text.status).to_contain_text(f'query "{PAYLOAD}"')  # a decoder asks from its last token
    text.click_tile(0, 0)
    expect(text.overlay).to_contain_text("exact values", timeout=DRAW_TIMEOUT_MS)
    x, y, w, h = json.loads(text.overlay_canvas.get_attribute("data-grid-rect"))
    last = len(labels) - 1
    text.overlay_canvas.hover(
        position={"x": x + 0.5 * w / len(labels), "y": y + (last + 0.5) * h / len(labels)}
    )
    readout = text.overlay.locator("[data-testid=attnwidget-readout]")
    expect(readout).to_contain_text(f'query "{PAYLOAD}" (token {last})')
    assert_nothing_parsed(live_notebook.page, cell)
    cell.screenshot(path=artifacts / f"{jupyter_server.flavor}-30-hostile-text.png")


def test_exported_html_shows_hostile_text_as_text(browser: Browser, tmp_path: Path, artifacts: Path):
    vit = save_tiny_model("vit", tmp_path / PAYLOAD, labels=HOSTILE_LABELS)
    gpt2 = save_text_model_with_token(save_tiny_text_models(tmp_path)["gpt2"], PAYLOAD, tmp_path / "gpt2")
    vision = attnwidget.AttentionGrid(vit, make_scene(7).image)
    text = attnwidget.AttentionGrid(TextModel.from_pretrained(gpt2), "The cat sat " + PAYLOAD)
    page_file = to_html(ipywidgets.VBox([vision, text]), tmp_path / "hostile.html", title=PAYLOAD)
    assert PAYLOAD not in page_file.read_text(encoding="utf-8")  # escaped wherever it is written

    page, refused = offline_page(browser, lambda url: None)
    page.goto(page_file.as_uri())
    roots = page.locator("[data-testid=attnwidget-root]")
    widgets = [Widget(roots.nth(index).locator("xpath=..")) for index in (0, 1)]
    expect(widgets[0].grid).to_have_attribute("data-tiles-drawn", "12", timeout=DRAW_TIMEOUT_MS)
    expect(widgets[1].grid).to_have_attribute("data-tiles-drawn", "12", timeout=DRAW_TIMEOUT_MS)
    expect(page.locator("h1")).to_have_text(PAYLOAD)
    expect(widgets[0].predictions).to_contain_text(f"Predicted: {PAYLOAD}")
    expect(widgets[1].status).to_contain_text(f'query "{PAYLOAD}"')
    assert_nothing_parsed(page, page.locator("body"))
    assert refused == []
    page.screenshot(path=artifacts / "export-3-hostile-text.png", full_page=True)
    page.close()


def restart_kernel(notebook: Notebook) -> None:
    """Kernel menu > Restart Kernel, as a user would, accepting the confirmation; wait until idle."""
    before = notebook.page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id"
    )
    notebook.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Kernel$")).click()
    notebook.page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel")).first.click()
    dialog = notebook.page.locator(".jp-Dialog")
    dialog.locator(".jp-mod-accept").click()
    expect(dialog).to_be_hidden()
    notebook.wait_for_kernel_idle()
    assert notebook.kernel_id() == before  # the same kernel, restarted: its state is gone


def test_a_kernel_restart_leaves_the_widget_usable(
    browser: Browser, jupyter_server: JupyterServer, artifacts: Path
):
    flavor = jupyter_server.flavor
    write_notebook(jupyter_server.root / "restart.ipynb")
    notebook = open_notebook(browser, jupyter_server, "restart.ipynb")
    notebook.run_cell(SETUP)
    cell = notebook.run_cell("grid40 = attnwidget.explore(image)")
    widget = Widget(cell)
    expect_full_grid(widget)

    restart_kernel(notebook)
    expect_full_grid(widget)  # what the page holds stays on screen
    widget.click_tile(4, 2)  # the overlay draws from what the page holds
    expect(widget.overlay).to_be_visible()
    expect_overlay_drawn(widget)
    expect(widget.overlay).to_contain_text("(8-bit values)")  # no wait for a kernel that is gone
    widget.click_patch(1, 1)  # a new query needs the kernel: the widget says so and keeps the maps
    expect(widget.overlay).to_contain_text("A new query needs a running kernel", timeout=DRAW_TIMEOUT_MS)
    expect_full_grid(widget)
    notebook.page.screenshot(path=artifacts / f"{flavor}-40-after-restart.png")

    # The new kernel runs a new widget as usual.
    assert "ready" in notebook.output_text(notebook.run_cell(SETUP))
    expect_full_grid(Widget(notebook.run_cell("grid41 = attnwidget.explore(image)")))
    notebook.page.close()
