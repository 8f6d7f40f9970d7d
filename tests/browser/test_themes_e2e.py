"""Readable text in JupyterLab's light and dark themes: WCAG 2.x AA contrast of every text the widget shows.

A lab-only server starts with "JupyterLab Dark" as its settings default; each test switches the
theme as a user would (Settings > Theme), displays a grid with its overlay open and measures its DOM
text, its canvas text and a "Save PNG" picture (see contrast.py); a vision-language grid's transcript
(a span of words chosen) and its shares plot: their text, and the bars against the page (3:1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from contrast import (
    Measured,
    canvas_texts,
    contrast,
    dom_texts,
    expect_aa,
    node_text,
    read_canvas,
    saved_texts,
)
from harness import SETUP, JupyterServer, Notebook, open_notebook, start_server, write_notebook
from playwright.sync_api import Browser, Page, expect
from test_vision_language_e2e import CODE as GENERATED_TOKENS
from test_widget_e2e import save_png
from widget_dom import DRAW_TIMEOUT_MS, Widget, expect_full_grid, expect_overlay_drawn

pytestmark = pytest.mark.browser

LIGHT, DARK = "JupyterLab Light", "JupyterLab Dark"
THEME_SETTINGS = "@jupyterlab/apputils-extension:themes"

#: A grid run on `image`, and a second widget whose first run fails in the model (status "error").
GRID_AND_FAILED_RUN = """\
{name} = attnwidget.explore(image)
{name}_failed = attnwidget.AttentionGrid(None)
display({name}_failed)
def fail(module, args, output):
    raise RuntimeError("the model failed")
hook = {name}_failed.vision_model.attention_modules[0].register_forward_hook(fail)
try:
    {name}_failed.run(image)
except RuntimeError:
    pass
finally:
    hook.remove()"""


def set_theme(page: Page, theme: str) -> None:
    """Settings > Theme: switch the theme and wait until its stylesheet applies."""
    page.evaluate("(theme) => window.jupyterapp.commands.execute('apputils:change-theme', { theme })", theme)
    page.wait_for_function(
        """([theme, dark]) => {
          const body = document.body;
          if (body.dataset.jpThemeName !== theme || body.dataset.jpThemeLight !== String(!dark)) return false;
          const colour = getComputedStyle(body).getPropertyValue("--jp-layout-color0").trim();
          return dark ? colour === "#111" : colour === "white";
        }""",
        arg=[theme, theme == DARK],
        timeout=30_000,
    )


@pytest.fixture(scope="module")
def dark_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """JupyterLab whose settings default to the dark theme."""
    workdir = tmp_path_factory.mktemp("jupyter-dark")
    server = start_server("lab", workdir, overrides={THEME_SETTINGS: {"theme": DARK}})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def themed_notebook(browser: Browser, dark_lab: JupyterServer) -> Iterator[Notebook]:
    """A notebook with a live kernel (SETUP ran) in the dark-by-default lab."""
    write_notebook(dark_lab.root / "themes.ipynb")
    notebook = open_notebook(browser, dark_lab, "themes.ipynb")
    expect(notebook.page.locator("body")).to_have_attribute("data-jp-theme-name", DARK)  # the override
    assert "ready" in notebook.output_text(notebook.run_cell(SETUP))
    yield notebook
    notebook.page.close()


def open_overlay(widget: Widget) -> None:
    """Wait for the whole grid, open layer 8 head 3 and wait for the kernel's exact values."""
    expect_full_grid(widget)
    widget.click_tile(7, 2)
    expect(widget.overlay).to_be_visible()
    expect_overlay_drawn(widget)
    expect(widget.overlay).to_contain_text("(exact values)", timeout=DRAW_TIMEOUT_MS)


@pytest.mark.parametrize("theme", [LIGHT, DARK], ids=["light", "dark"])
def test_text_is_readable(themed_notebook: Notebook, theme: str, artifacts: Path):
    slug = theme.split()[-1].lower()
    set_theme(themed_notebook.page, theme)
    cell = themed_notebook.run_cell(GRID_AND_FAILED_RUN.format(name=f"grid_{slug}"))
    themed_notebook.output_text(cell)
    outputs = cell.locator(".jp-OutputArea-child")
    widget, failed = Widget(outputs.nth(0)), Widget(outputs.nth(1))
    open_overlay(widget)
    expect(failed.status).to_have_attribute("data-status", "error")
    expect(failed.status).to_contain_text("the model failed")
    widget.root.screenshot(path=artifacts / f"theme-{slug}.png")

    texts, disabled = dom_texts(widget.root)
    texts.append(node_text(failed.status, "status (error)"))
    # The notice shows while a map waits for the kernel: its style, measured where it appears.
    notice = widget.overlay.locator("[data-testid=attnwidget-notice]")
    texts.append(node_text(notice, "overlay notice"))
    canvas = canvas_texts(widget)
    report = "\n".join(map(str, sorted(texts + canvas, key=lambda m: m.ratio)))
    print(f"\n{theme}, contrast lowest first:\n{report}\nnot measured (disabled): {disabled}")
    names = " ".join(m.name for m in texts)
    for expected in [
        'label "View"', 'label "Colours"', 'label "Normalise"', 'label "Method"', 'label "Opacity"',
        'attnwidget-view "', 'attnwidget-method "', 'attnwidget-save-png "Save PNG"', "attnwidget-status",
        "attnwidget-predictions", "attnwidget-overlay-title", '.aw-badge "(exact values)"',
        "attnwidget-readout", "attnwidget-grid-readout", 'attnwidget-query "CLS"',
    ]:  # fmt: skip
        assert expected in names, f"{expected} was not measured:\n{report}"
    expect_aa(texts + canvas, theme)

    _, pixels = save_png(widget, artifacts / f"theme-{slug}-saved.png")
    saved = saved_texts(widget, pixels)
    print("\n".join(map(str, saved)))
    expect_aa(saved, f"{theme}, the saved PNG")


def test_canvas_text_follows_a_theme_switch(themed_notebook: Notebook, artifacts: Path):
    page = themed_notebook.page
    set_theme(page, LIGHT)
    cell = themed_notebook.run_cell("grid_switched = attnwidget.explore(image)")
    widget = Widget(cell)
    open_overlay(widget)
    canvases = [widget.grid, widget.overlay.locator("[data-testid=attnwidget-overlay-colorbar]")]
    before = [canvas.evaluate("(canvas) => canvas.toDataURL()") for canvas in canvases]
    set_theme(page, DARK)  # the labels were drawn dark on light: they must be drawn again
    page.wait_for_function(
        "([canvases, before]) => canvases.every((canvas, i) => canvas.toDataURL() !== before[i])",
        arg=[[canvas.element_handle() for canvas in canvases], before],
        polling=100,
        timeout=10_000,
    )
    widget.root.screenshot(path=artifacts / "theme-switched-to-dark.png")
    readings = canvas_texts(widget)
    expect_aa(readings, f"after the switch to {DARK}")


@pytest.mark.parametrize("theme", [LIGHT, DARK], ids=["light", "dark"])
def test_the_transcript_and_the_shares_are_readable(themed_notebook: Notebook, theme: str, artifacts: Path):
    slug = theme.split()[-1].lower()
    set_theme(themed_notebook.page, theme)
    widget = Widget(themed_notebook.run_cell(GENERATED_TOKENS))
    expect(widget.status).to_contain_text("query", timeout=DRAW_TIMEOUT_MS)
    words = widget.root.locator("[data-testid=attnwidget-transcript-words] [data-index]")
    words.nth(1).click()
    words.nth(3).click(modifiers=["Shift"])
    expect(words.nth(2)).to_have_attribute("aria-selected", "true")
    plot = widget.root.locator("[data-testid=attnwidget-shares]")
    x, y, w, h = json.loads(plot.get_attribute("data-bar-rects"))[0]
    plot.hover(position={"x": x + w / 2, "y": y + h / 2})
    widget.root.screenshot(path=artifacts / f"theme-{slug}-transcript.png")

    texts, _ = dom_texts(widget.root)
    names = " ".join(m.name for m in texts)
    assert sum(m.name.startswith(".aw-word") for m in texts) == 5, names  # the words, chosen ones too
    for expected in ["attnwidget-shares-readout", 'label "Attention shares:"']:
        assert expected in names, f"{expected} was not measured: {names}"
    axis = read_canvas(plot, [("shares: axis 0 and 1", [0, y - 8, x - 3, h + 16])])
    # Token 0's bar, over the mean of the layers: image 2/16, text 4/16, sink 10/16 of its height, bottom up.
    behind = node_text(plot, "shares plot").background
    bars = [
        Measured(f"shares: {kind} bar", plot.evaluate(PIXEL_JS, [x + w / 2, y + h - h * at]), behind)
        for kind, at in [("image", 1 / 16), ("text", 4 / 16), ("sink", 11 / 16)]
    ]
    print("\n".join(map(str, texts + axis + bars)))
    expect_aa(texts + axis, theme)
    low = [str(bar) for bar in bars if contrast(bar.colour, bar.background) < 3]
    assert not low, f"{theme}: bars below 3:1 against the page:\n" + "\n".join(low)


#: The RGB of a canvas's pixel at (x, y), CSS px.
PIXEL_JS = """(canvas, [x, y]) => {
  const s = canvas.width / canvas.getBoundingClientRect().width;
  const pixel = canvas.getContext("2d").getImageData(Math.round(x * s), Math.round(y * s), 1, 1).data;
  return Array.from(pixel).slice(0, 3);
}"""
