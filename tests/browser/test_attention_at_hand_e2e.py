"""Attention at hand in JupyterLab: a grid from tensors draws every tile and a tile's click opens its
overlay; signed values are drawn centred on zero and say what they are; a loop's layers are drawn as
they arrive, while the cell still runs."""

from __future__ import annotations

import json

import pytest
from harness import Notebook
from playwright.sync_api import expect
from widget_dom import DRAW_TIMEOUT_MS, Widget

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("jupyter_server", ["lab"], indirect=True)]

LAYERS, HEADS, TOKENS = 3, 4, 6

TENSORS = f"""\
import torch
torch.manual_seed(0)
held = torch.rand({LAYERS}, {HEADS}, {TOKENS}, {TOKENS}).softmax(-1)
words = ["<b>bold</b>", "the", "cat", "sat", "&amp;", "."]
held_grid = attnwidget.show(tuple(layer[None] for layer in held), tokens=words, head_names=list("abcd"))
print(held_grid.status)"""


def drawn_widget(notebook: Notebook, code: str) -> Widget:
    cell = notebook.run_cell(code)
    assert "done" in notebook.output_text(cell)
    widget = Widget(cell)
    expect(widget.grid).to_have_attribute("data-tiles-drawn", str(LAYERS * HEADS), timeout=DRAW_TIMEOUT_MS)
    expect(widget.grid).to_have_attribute("data-rows", str(LAYERS))
    expect(widget.grid).to_have_attribute("data-cols", str(HEADS))
    pixels = widget.tile_pixels()
    assert all(pixels.painted) and len(set(pixels.hashes)) > LAYERS * HEADS // 2
    return widget


def test_a_grid_from_tensors_draws_every_tile_and_opens_the_overlay(live_notebook: Notebook, artifacts):
    widget = drawn_widget(live_notebook, TENSORS)
    expect(widget.grid).to_have_attribute("data-view", "matrix")
    x, y, w, h = json.loads(widget.grid.get_attribute("data-tile-rects"))[1]  # l=1 h=2, named "b"
    widget.grid.hover(position={"x": x + w / 2, "y": y + h / 2})
    expect(widget.root.locator("[data-testid=attnwidget-grid-readout]")).to_contain_text("l=1 h=2 (b)")
    widget.click_tile(1, 2)
    expect(widget.overlay).to_be_visible()
    expect(widget.overlay_title).to_have_text("l=2 h=3 · token \u00d7 token")
    expect(widget.grid).to_have_attribute("data-selected", "2,3")
    expect(widget.overlay_canvas).to_have_attribute("data-mode", "matrix")
    # Tokens are text: the markup of the first one is never parsed into elements.
    assert widget.root.locator("b").count() == 0
    live_notebook.page.screenshot(path=artifacts / "attention-at-hand-overlay.png")


def test_signed_values_are_drawn_centred_on_zero_and_named(live_notebook: Notebook, artifacts):
    code = """\
difference = held - held.flip(-1)
signed_grid = attnwidget.show(difference.numpy(), tokens=words, values="difference")
print(signed_grid.status, signed_grid.colormap)"""
    widget = drawn_widget(live_notebook, code)
    widget.click_tile(0, 0)
    expect(widget.overlay_title).to_have_text("l=1 h=1 · difference, token \u00d7 token")
    low, high = (float(v) for v in widget.grid.get_attribute("data-colorbar-range").split(","))
    assert low == -high and high > 0
    live_notebook.page.screenshot(path=artifacts / "attention-at-hand-difference.png")


def test_a_loop_hands_over_layers_that_are_drawn_while_the_cell_runs(live_notebook: Notebook):
    code = f"""\
import time
with attnwidget.stream({LAYERS}, tokens=words, view="query") as live:
    for layer in range({LAYERS}):
        live.add_layer(layer, held[layer])
        time.sleep(1.5)
print(live.grid.status)"""
    cell = live_notebook.run_cell(code, wait=False)
    widget = Widget(cell)
    expect(widget.grid).to_be_visible(timeout=DRAW_TIMEOUT_MS)
    widget.record_tile_counts()
    live_notebook.wait_for_cell(cell)
    assert "done" in live_notebook.output_text(cell)
    expect(widget.grid).to_have_attribute("data-tiles-drawn", str(LAYERS * HEADS))
    seen = live_notebook.page.evaluate("window.tilesSeen")
    # Rows came before the last one. (Streamed rows are the query view's maps: token x token matrices
    # come with the run's final state.)
    assert any(0 < count < LAYERS * HEADS for count in seen), seen
