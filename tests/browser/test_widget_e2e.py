"""attnwidget end to end: a real kernel, real JupyterLab 4 / Notebook 7 servers and Chromium.

Each test runs its own cells in the shared live notebook (one kernel per server, so torch is
imported once) and checks what a user would see: the front-end's test hooks and the canvas pixels.
Every step leaves a screenshot in `test-artifacts/`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from harness import SETUP, JupyterServer, Notebook, open_notebook, slow_run, write_notebook
from PIL import Image
from playwright.sync_api import Browser, Locator, expect
from widget_dom import COLS, DRAW_TIMEOUT_MS, ROWS, TILES, Widget, expect_full_grid, expect_overlay_drawn

pytestmark = pytest.mark.browser

#: Seconds each layer's attention sleeps in the streaming test, so the run is slow enough to watch.
LAYER_DELAY_S = 0.5

SLOW_RUN = f"""\
import time
{slow_run("grid2", LAYER_DELAY_S)}
print("kernel:", grid2.status)"""


def show(notebook: Notebook, code: str) -> Widget:
    """Run `code`, which displays a widget, and return the widget of that cell."""
    cell = notebook.run_cell(code)
    notebook.output_text(cell)  # no traceback
    widget = Widget(cell)
    expect(widget.grid).to_be_visible()
    return widget


def test_grid_appears_with_every_tile(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    server_origin = jupyter_server.base
    elsewhere: list[str] = []  # requests the page sends anywhere but the Jupyter server
    live_notebook.page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith((server_origin, "blob:", "data:"))
            else elsewhere.append(request.url)
        ),
    )
    widget = show(live_notebook, "grid1 = attnwidget.explore(image)")
    expect_full_grid(widget)
    expect(widget.status).to_have_attribute("data-status", "done")
    assert not elsewhere, f"the widget fetched from outside the server: {elsewhere}"
    expect(widget.overlay).to_be_hidden()
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-1-grid.png")
    assert live_notebook.evaluate("(grid1.status, grid1.layer_count, grid1.head_count)") == (
        "done",
        ROWS,
        COLS,
    )


def test_rows_stream_in_while_the_model_runs(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    widget = show(live_notebook, "grid2 = attnwidget.explore()  # shown empty; it runs in the next cell")
    expect(widget.grid).to_have_attribute("data-tiles-drawn", "0")
    widget.record_tile_counts()
    cell = live_notebook.run_cell(SLOW_RUN, wait=False)

    # Some rows but not all, while the cell still runs.
    live_notebook.page.wait_for_function(
        f"(canvas) => {{ const n = Number(canvas.dataset.tilesDrawn); return n > 0 && n < {TILES}; }}",
        arg=widget.grid.element_handle(),
        timeout=DRAW_TIMEOUT_MS,
    )
    partial = widget.tile_pixels()
    status = widget.status.get_attribute("data-status")
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-2-streaming.png")
    after_screenshot = widget.tiles_drawn()
    prompt = cell.locator(".jp-InputArea-prompt").inner_text().strip()

    assert 0 < partial.tiles_drawn < TILES
    assert partial.tiles_drawn % COLS == 0, "tiles arrive by whole grid rows (layers)"
    assert partial.painted_count == partial.tiles_drawn, "the hook and the pixels disagree"
    # Rows fill from the top: every painted tile comes before every unpainted one.
    assert partial.painted == [True] * partial.tiles_drawn + [False] * (TILES - partial.tiles_drawn)
    assert status == "running"
    assert after_screenshot < TILES, "the run ended before the screenshot: it does not show a partial grid"
    assert prompt == "[*]:", f"the cell had finished ({prompt}) when the partial grid was seen"

    live_notebook.wait_for_cell(cell)
    assert "kernel: done" in live_notebook.output_text(cell)
    expect_full_grid(widget)
    seen = live_notebook.page.evaluate("window.tilesSeen")
    assert len({n for n in seen if 0 < n < TILES}) >= 2, f"expected several partial grids on the way: {seen}"
    assert seen == sorted(seen), f"the tile count went backwards: {seen}"


def test_click_on_a_tile_opens_the_overlay(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    widget = show(live_notebook, "grid3 = attnwidget.explore(image)")
    expect_full_grid(widget)
    widget.click_tile(2, 3)  # layer 3, head 4

    expect(widget.overlay).to_be_visible()
    expect(widget.root).to_have_attribute("data-overlay-open", "true")
    expect(widget.grid).to_have_attribute("data-selected", "3,4")
    expect(widget.overlay_canvas).to_have_attribute("data-layer", "3")
    expect(widget.overlay_canvas).to_have_attribute("data-head", "4")
    expect(widget.overlay.locator("[data-testid=attnwidget-overlay-title]")).to_contain_text("l=3 h=4")
    expect_overlay_drawn(widget)
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-3-overlay.png")
    widget.overlay.screenshot(path=artifacts / f"{jupyter_server.flavor}-3-overlay-panel.png")
    # The kernel got the selection too.
    assert live_notebook.evaluate("(grid3.selected, grid3.overlay_open)") == ([3, 4], True)


def canvas_on_white(canvas: Locator) -> np.ndarray:
    """The pixels of a canvas element (device pixels), composited on white as "Save PNG" draws it."""
    url = canvas.evaluate("c => c.toDataURL('image/png')")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as picture:
        rgba = picture.convert("RGBA")
    return np.asarray(Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB"))


def save_png(widget: Widget, path: Path) -> tuple[str, np.ndarray]:
    """Click "Save PNG"; return the downloaded file's name and its pixels."""
    with widget.root.page.expect_download() as download:
        widget.root.locator("[data-testid=attnwidget-save-png]").click()
    download.value.save_as(path)
    with Image.open(path) as picture:
        return download.value.suggested_filename, np.asarray(picture.convert("RGB"))


def test_save_png_downloads_what_is_shown(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    flavor = jupyter_server.flavor
    widget = show(live_notebook, "grid12 = attnwidget.explore(image)")
    expect_full_grid(widget)
    name, pixels = save_png(widget, artifacts / f"{flavor}-12-saved-grid.png")
    assert name == "attnwidget-attnwidget-vit-8x8-shapes.png"
    grid = canvas_on_white(widget.grid)
    assert pixels.shape == grid.shape  # the grid canvas, at its device resolution
    assert np.abs(pixels.astype(int) - grid).mean() < 1.0

    widget.click_tile(7, 1)  # layer 8, head 2: the overlay opens beside the grid
    expect_overlay_drawn(widget)
    name, pixels = save_png(widget, artifacts / f"{flavor}-12-saved-grid-and-overlay.png")
    assert name == "attnwidget-attnwidget-vit-8x8-shapes-l8-h2.png"
    boxes = widget.snapshot_boxes()
    left, top = min(b["x"] for b in boxes), min(b["y"] for b in boxes)
    right = max(b["x"] + b["width"] for b in boxes)
    bottom = max(b["y"] + b["height"] for b in boxes)
    ratio = grid.shape[1] / boxes[0]["width"]
    assert (
        abs(pixels.shape[1] - (right - left) * ratio) <= 2
        and abs(pixels.shape[0] - (bottom - top) * ratio) <= 2
    )
    overlay = canvas_on_white(widget.overlay_canvas)  # the overlay, where it lies on screen
    x, y = round((boxes[1]["x"] - left) * ratio), round((boxes[1]["y"] - top) * ratio)
    window = pixels[y : y + overlay.shape[0], x : x + overlay.shape[1]].astype(int)
    assert np.abs(window - overlay).mean() < 2.0


def test_click_on_a_patch_makes_it_the_query(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    widget = show(live_notebook, "grid4 = attnwidget.explore(image)")
    expect_full_grid(widget)
    before = widget.tile_pixels().hashes
    widget.click_tile(0, 0)
    expect_overlay_drawn(widget)
    expect(widget.query_text).to_have_text("CLS")

    row, col = 5, 6  # inside the red rectangle of the picture
    widget.click_patch(row, col)
    expect(widget.query_text).to_have_text(f"patch ({row}, {col})")
    query, specials, (_, gw), status = live_notebook.evaluate(
        "(grid4.query, grid4.special_tokens, grid4.grid, grid4.status)"
    )
    assert query == [len(specials) + row * gw + col]  # token S + r * gw + c is patch (r, c)
    assert status == "done"

    # The grid now shows attention from that patch: the tiles' pixels change.
    changed = widget.wait_for_tiles_to_change(before, minimum=TILES * 3 // 4, timeout_ms=DRAW_TIMEOUT_MS)
    assert changed >= TILES * 3 // 4
    expect_full_grid(widget)
    expect_overlay_drawn(widget)
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-4-query-patch.png")


def test_toolbar_and_keyboard_drive_the_grid(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    widget = show(live_notebook, "grid5 = attnwidget.explore(image)")
    expect_full_grid(widget)
    query_hashes = widget.tile_pixels().hashes

    # Token x token matrices instead of query -> patch maps: every tile is redrawn.
    widget.root.locator("[data-testid=attnwidget-view]").select_option("matrix")
    expect(widget.grid).to_have_attribute("data-view", "matrix")
    changed = widget.wait_for_tiles_to_change(query_hashes, minimum=TILES, timeout_ms=DRAW_TIMEOUT_MS)
    assert changed == TILES
    matrix_hashes = widget.tile_pixels().hashes
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-6-matrix-view.png")

    # Another colormap and a shared scale repaint the same data.
    widget.root.locator("[data-testid=attnwidget-colormap]").select_option("magma")
    widget.root.locator("[data-testid=attnwidget-normalize]").select_option("global")
    widget.wait_for_tiles_to_change(matrix_hashes, minimum=TILES, timeout_ms=DRAW_TIMEOUT_MS)
    assert live_notebook.evaluate("(grid5.view, grid5.colormap, grid5.normalize)") == (
        "matrix",
        "magma",
        "global",
    )

    # Keyboard: focus the grid; the first arrow selects l=1 h=1, then right, right, down; Enter opens.
    widget.grid.focus()
    live_notebook.page.keyboard.press("ArrowDown")
    expect(widget.grid).to_have_attribute("data-selected", "1,1")
    for key in ("ArrowRight", "ArrowRight", "ArrowDown"):
        live_notebook.page.keyboard.press(key)
    expect(widget.grid).to_have_attribute("data-selected", "2,3")
    live_notebook.page.keyboard.press("Enter")
    expect(widget.overlay).to_be_visible()
    expect(widget.overlay_canvas).to_have_attribute("data-mode", "matrix")
    expect(widget.overlay_canvas).to_have_attribute("data-layer", "2")
    expect(widget.overlay_canvas).to_have_attribute("data-head", "3")
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-6-matrix-overlay.png")
    live_notebook.page.keyboard.press("Escape")
    expect(widget.overlay).to_be_hidden()
    assert live_notebook.evaluate("(grid5.selected, grid5.overlay_open)") == ([2, 3], False)


def test_a_compact_grid_reports_its_saved_size_and_fetches_matrices_from_the_kernel(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    widget = show(live_notebook, 'grid13 = attnwidget.explore(image, saved_detail="maps")')
    expect_full_grid(widget)
    saved = live_notebook.evaluate("grid13.saved_bytes")
    assert 0 < saved < 200_000  # the maps, the picture and the front-end's module: no matrices
    expect(widget.status).to_contain_text(f"{round(saved / 1000)} kB in a saved notebook")
    widget.root.locator("[data-testid=attnwidget-view]").select_option("matrix")
    expect(widget.status).to_contain_text('matrices are kept (saved_detail "maps")')
    widget.click_tile(7, 0)  # the exact matrix of layer 8, head 1 comes from the kernel
    expect(widget.overlay_canvas).to_have_attribute("data-mode", "matrix")
    expect(widget.overlay).to_contain_text("exact values", timeout=DRAW_TIMEOUT_MS)
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-13-compact-matrix.png")


STRIP = """\
import hashlib
import numpy as np
from attnwidget.strip import Heatmap, Variant, comparison_strip

def fixed(tag, label):
    return Variant(tag, lambda picture, target: Heatmap(np.eye(4), label))

variants = [fixed("8", "<b>cat</b>"), fixed("16", "<b>cat</b>"), fixed("32", "dog")]
strip14 = comparison_strip(image, variants, "dog").widget(panel_height=120, full_size=240)
strip14"""


def test_strip_widget_opens_a_panel_full_size_and_saves_the_strip(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    cell = live_notebook.run_cell(STRIP)
    strip = cell.locator("[data-testid=attnwidget-strip]")
    expect(strip).to_be_visible()
    boxes = live_notebook.evaluate("strip14.boxes")
    natural = strip.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    shown = strip.bounding_box()
    x0, y0, x1, y1 = boxes[2]  # the second variant
    scale = shown["width"] / natural[0]
    strip.click(position={"x": (x0 + x1) / 2 * scale, "y": (y0 + y1) / 2 * scale})
    caption = cell.locator("[data-testid=attnwidget-strip-caption]")
    expect(caption).to_have_text("16: predicts <b>cat</b>; the heatmap explains the ground truth")  # text
    panel = cell.locator("[data-testid=attnwidget-strip-panel]")
    expect(panel).to_be_visible()
    assert panel.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [320, 240]
    assert live_notebook.evaluate("strip14.selected") == 2
    cell.screenshot(path=artifacts / f"{jupyter_server.flavor}-14-strip.png")

    with live_notebook.page.expect_download() as download:
        cell.locator("[data-testid=attnwidget-strip-save]").click()
    saved = artifacts / f"{jupyter_server.flavor}-14-strip-saved.png"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "comparison-strip.png"
    expected = live_notebook.evaluate("hashlib.sha256(strip14.picture).hexdigest()")
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == expected  # the kernel's PNG itself

    strip.press("Escape")
    expect(panel).to_be_hidden()


TEXT_GRID = """\
import sys, tempfile
from pathlib import Path
sys.path.insert(0, {tests!r})
from tiny_text_models import save_tiny_text_models
from attnwidget.text import TextModel
folders = save_tiny_text_models(Path(tempfile.mkdtemp()))
grid15 = attnwidget.AttentionGrid(TextModel.from_pretrained(folders["gpt2"]), 'The cat <b>sat</b> & "so" on')
grid15"""


def test_a_text_decoder_shows_tokens_as_text_and_its_causal_mask(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    cell = live_notebook.run_cell(TEXT_GRID.format(tests=str(Path(__file__).resolve().parents[1])))
    widget = Widget(cell)
    expect(widget.grid).to_have_attribute("data-tiles-drawn", "12", timeout=DRAW_TIMEOUT_MS)  # 3 x 4
    expect(widget.grid).to_have_attribute("data-view", "matrix")
    labels = live_notebook.evaluate("grid15.token_labels")
    assert "".join(labels) == 'The cat <b>sat</b> & "so" on'
    expect(widget.status).to_contain_text(f'query "{labels[-1]}"')  # a decoder asks from its last token

    widget.click_tile(2, 1)  # layer 3, head 2: its full token x token matrix
    expect(widget.overlay_canvas).to_have_attribute("data-mode", "matrix")
    expect(widget.overlay).to_contain_text("exact values", timeout=DRAW_TIMEOUT_MS)
    tokens = len(labels)
    bold = labels.index("<")  # "<b>" is split into tokens; its "<" is one of them
    x, y, w, h = json.loads(widget.overlay_canvas.get_attribute("data-grid-rect"))
    widget.overlay_canvas.hover(position={"x": x + 0.5 * w / tokens, "y": y + (bold + 0.5) * h / tokens})
    readout = widget.overlay.locator("[data-testid=attnwidget-readout]")
    expect(readout).to_contain_text(f'query "{labels[bold]}" (token {bold}) → key "{labels[0]}" (token 0)')
    assert widget.root.locator("b").count() == 0  # the tokens' "<b>" is text, not markup

    # Keys after the query are greyed: the top-right cell, not the bottom-left one.
    corner = {"masked": widget.matrix_pixel(0.97, 0.03), "seen": widget.matrix_pixel(0.03, 0.97)}
    assert all(175 <= value <= 200 for value in corner["masked"][:3]), corner
    assert max(corner["seen"][:3]) - min(corner["seen"][:3]) > 20, corner  # a viridis colour, not grey

    widget.click_patch(2, 0)  # a row of the matrix: that token becomes the query
    expect(widget.status).to_contain_text(f'query "{labels[2]}"')
    assert live_notebook.evaluate("grid15.query") == [2]
    expect(widget.grid).to_have_attribute("data-tiles-drawn", "12", timeout=DRAW_TIMEOUT_MS)
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-15-text.png")


CROSS_GRID = """\
import sys, tempfile
from pathlib import Path
sys.path.insert(0, {tests!r})
from tiny_text_models import save_tiny_text_models
from attnwidget.text import TextModel
cross_folders = save_tiny_text_models(Path(tempfile.mkdtemp()))
grid17 = attnwidget.AttentionGrid(TextModel.from_pretrained(cross_folders["bart"], stack="cross"))
grid17.run('The cat <b>sat</b> & "so" on', decoder_text="le <i>chat</i>")
grid17"""


def test_cross_attention_shows_decoder_queries_against_encoder_keys(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    cell = live_notebook.run_cell(CROSS_GRID.format(tests=str(Path(__file__).resolve().parents[1])))
    widget = Widget(cell)
    keys = live_notebook.evaluate("grid17.token_labels")
    queries = live_notebook.evaluate("grid17.query_labels")
    assert len(queries) != len(keys)
    tiles = live_notebook.evaluate("len(grid17.layers) * len(grid17.heads)")
    expect(widget.grid).to_have_attribute("data-tiles-drawn", str(tiles), timeout=DRAW_TIMEOUT_MS)
    expect(widget.status).to_contain_text(f'query "{queries[-1]}"')  # the decoder's last token

    widget.click_tile(0, 0)
    expect(widget.overlay).to_contain_text("exact values", timeout=DRAW_TIMEOUT_MS)
    expect(widget.overlay_canvas).to_have_attribute("data-grid", f"{len(queries)},{len(keys)}")
    x, y, w, h = json.loads(widget.overlay_canvas.get_attribute("data-grid-rect"))
    row, col = 1, keys.index("<")
    widget.overlay_canvas.hover(
        position={"x": x + (col + 0.5) * w / len(keys), "y": y + (row + 0.5) * h / len(queries)}
    )
    readout = widget.overlay.locator("[data-testid=attnwidget-readout]")
    expect(readout).to_contain_text(f'query "{queries[row]}" (token {row}) → key "<" (token {col})')
    assert widget.root.locator("b, i").count() == 0  # tokens are text, never markup
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-17-cross-attention.png")


TIMES = "\N{MULTIPLICATION SIGN}"  # as the widget writes "rows x columns"
LONG_TEXT_GRID = """\
import torch, transformers as tf
from attnwidget.pretrained import minilm_directory
from attnwidget.text import TextModel
tokenizer = tf.AutoTokenizer.from_pretrained(minilm_directory())
torch.manual_seed(0)
config = tf.LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                        max_position_embeddings=4096)
llama = TextModel(tf.LlamaForCausalLM(config).eval(), tokenizer, name="llama (random weights)")
long_text = " ".join(["the cat sat on the mat and looked at the dog"] * 140)
grid16 = attnwidget.AttentionGrid(llama, long_text, block_bytes=2**20)
grid16"""


def test_a_long_text_zooms_into_a_region_at_full_resolution(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    cell = live_notebook.run_cell(LONG_TEXT_GRID)
    widget = Widget(cell)
    expect(widget.grid).to_have_attribute("data-tiles-drawn", "4", timeout=DRAW_TIMEOUT_MS)
    tokens = live_notebook.evaluate("grid16.token_count")
    assert tokens > 1024 and live_notebook.evaluate("grid16._session.in_blocks(grid16._session.input.layout)")

    widget.click_tile(1, 0)  # layer 2, head 1: more tokens than the head view's 1024 cells
    expect(widget.overlay).to_contain_text(
        f"max-pooled to 1024 {TIMES} 1024 of {tokens} tokens", timeout=DRAW_TIMEOUT_MS
    )
    expect(widget.overlay_canvas).to_have_attribute("data-window", f"0,{tokens},0,{tokens}")
    zoom_out = widget.overlay.locator("[data-testid=attnwidget-zoom-out]")
    expect(zoom_out).to_be_hidden()

    widget.drag_on_overlay((0.45, 0.46), (0.49, 0.50))  # a region across the diagonal
    expect(widget.overlay_canvas).not_to_have_attribute("data-window", f"0,{tokens},0,{tokens}")
    rows0, rows1, cols0, cols1 = (
        int(v) for v in widget.overlay_canvas.get_attribute("data-window").split(",")
    )
    assert 0 < rows1 - rows0 < 100 and 0 < cols1 - cols0 < 100 and cols0 < rows0 < cols1
    expect(widget.overlay_canvas).to_have_attribute(
        "data-grid", f"{rows1 - rows0},{cols1 - cols0}", timeout=DRAW_TIMEOUT_MS
    )
    expect(widget.overlay).to_contain_text(f"(exact values, {rows1 - rows0} {TIMES} {cols1 - cols0} tokens)")
    expect(zoom_out).to_be_visible()

    # The cell read out is the kernel's exact value, computed a block of queries at a time.
    row, col = 3, 1
    exact = live_notebook.evaluate(
        f"float(grid16.head_region(2, 1, ({rows0}, {rows1}), ({cols0}, {cols1}))[{row}, {col}])"
    )
    x, y, w, h = json.loads(widget.overlay_canvas.get_attribute("data-grid-rect"))
    height, width = rows1 - rows0, cols1 - cols0
    widget.overlay_canvas.hover(
        position={"x": x + (col + 0.5) * w / width, "y": y + (row + 0.5) * h / height}
    )
    readout = widget.overlay.locator("[data-testid=attnwidget-readout]")
    expect(readout).to_contain_text(f"(token {rows0 + row}) → key")
    shown = float(readout.inner_text().rsplit("·", 1)[1])
    assert abs(shown - exact) <= 1e-3 * max(abs(exact), 1e-6), (shown, exact)

    # The causal mask follows the window: the key after every query is grey, the one before is not.
    corner = {"masked": widget.matrix_pixel(0.99, 0.01), "seen": widget.matrix_pixel(0.01, 0.99)}
    assert all(175 <= value <= 200 for value in corner["masked"][:3]), corner
    assert max(corner["seen"][:3]) - min(corner["seen"][:3]) > 20, corner
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-16-zoomed-region.png")

    zoom_out.click()
    expect(widget.overlay_canvas).to_have_attribute("data-window", f"0,{tokens},0,{tokens}")
    expect(zoom_out).to_be_hidden()


def test_method_selector_changes_the_overlay(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    widget = show(live_notebook, "grid7 = attnwidget.explore(image)")
    expect_full_grid(widget)
    expect(widget.predictions).to_contain_text("Predicted: ")
    widget.click_tile(7, 0)
    expect_overlay_drawn(widget)
    expect(widget.overlay_canvas).to_have_attribute("data-method", "attention")
    head = widget.overlay_stats()["hash"]

    widget.method.select_option("rollout")
    expect(widget.overlay_canvas).to_have_attribute("data-method", "rollout")
    expect(widget.overlay_title).to_have_text("attention rollout", timeout=DRAW_TIMEOUT_MS)
    rollout = widget.wait_for_overlay_to_change(head, DRAW_TIMEOUT_MS)
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-7-rollout.png")

    # Rollout's options: keeping the largest 10 % of each layer's entries from layer 4 on.
    widget.root.locator("[data-testid=attnwidget-discard]").fill("0.9")
    widget.root.locator("[data-testid=attnwidget-start-layer]").select_option("4")
    rollout = widget.wait_for_overlay_to_change(rollout, DRAW_TIMEOUT_MS)
    assert live_notebook.evaluate("(grid7.discard_ratio, grid7.start_layer)") == (0.9, 4)
    expect(widget.root.locator("[data-testid=attnwidget-rollout-fusion]")).to_be_visible()

    widget.method.select_option("grad-cam")
    expect(widget.root.locator("[data-testid=attnwidget-start-layer]")).to_be_hidden()
    expect(widget.overlay_title).to_contain_text("Grad-CAM for class", timeout=DRAW_TIMEOUT_MS)
    widget.wait_for_overlay_to_change(rollout, DRAW_TIMEOUT_MS)
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-7-grad-cam.png")
    method, title, predicted = live_notebook.evaluate(
        "(grid7.method, grid7.explanation_title, grid7.predictions[0]['label'])"
    )
    assert (method, title) == ("grad-cam", f"Grad-CAM for class {predicted!r}")

    widget.method.select_option("attention")  # back to the selected head
    expect(widget.overlay_title).to_contain_text("l=8 h=1")
    widget.wait_for_overlay_to_change(rollout, DRAW_TIMEOUT_MS)


def test_dino_mask_outlines_the_patches_holding_the_mass(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    widget = show(live_notebook, "grid9 = attnwidget.explore(image)")
    expect_full_grid(widget)
    widget.click_tile(5, 4)  # layer 6, head 5
    expect_overlay_drawn(widget)
    expect(widget.overlay).to_contain_text("(exact values)")
    plain = widget.overlay_stats()["hash"]

    widget.overlay.locator("[data-testid=attnwidget-mask]").select_option("0.6")
    expected = live_notebook.evaluate(
        "int(attnwidget.methods.dino_mask(grid9.full_attention(6)[4, 0, 1:], 0.6).sum())"
    )
    assert 0 < expected < 144
    expect(widget.overlay_canvas).to_have_attribute("data-mask-cells", str(expected))
    widget.wait_for_overlay_to_change(plain, DRAW_TIMEOUT_MS)  # the contour is on the picture
    assert live_notebook.evaluate("grid9.mask_mass") == 0.6
    widget.overlay.screenshot(path=artifacts / f"{jupyter_server.flavor}-9-dino-mask.png")

    # The overlay's other display controls reach the kernel's traits and redraw the picture.
    drawn = widget.overlay_stats()["hash"]
    widget.overlay.locator("[data-testid=attnwidget-alpha]").fill("0.3")
    drawn = widget.wait_for_overlay_to_change(drawn, DRAW_TIMEOUT_MS)
    widget.overlay.locator("[data-testid=attnwidget-interpolation]").select_option("nearest")
    drawn = widget.wait_for_overlay_to_change(drawn, DRAW_TIMEOUT_MS)
    widget.overlay.locator("[data-testid=attnwidget-overlay-colormap]").select_option("magma")
    widget.wait_for_overlay_to_change(drawn, DRAW_TIMEOUT_MS)
    expect(widget.overlay).to_contain_text("30%")
    traits = "(grid9.alpha, grid9.interpolation, grid9.colormap)"
    assert live_notebook.evaluate(traits) == (0.3, "nearest", "magma")
    # The matrix view has no picture: opacity, interpolation and mask are hidden; colours stay.
    widget.root.locator("[data-testid=attnwidget-view]").select_option("matrix")
    for control in ("alpha", "interpolation", "mask"):
        expect(widget.overlay.locator(f"[data-testid=attnwidget-{control}]")).to_be_hidden()
    expect(widget.overlay.locator("[data-testid=attnwidget-overlay-colormap]")).to_be_visible()


LOUD_TOKENS = """\
import torch
grid11 = attnwidget.AttentionGrid()

def loud_tokens(module, args, output):  # two patches with 30x the norm after layer 2, like registers
    hidden = output[0] if isinstance(output, tuple) else output
    hidden[:, [1 + 20, 1 + 77]] *= 30
    return output

hook = grid11.vision_model.model.vit.layers[1].register_forward_hook(loud_tokens)
display(grid11)
grid11.run(image)
grid11.selected = [2, 1]"""


def test_token_norms_outline_the_high_norm_tokens(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    widget = show(live_notebook, LOUD_TOKENS)
    expect_full_grid(widget)
    widget.click_tile(1, 0)
    expect_overlay_drawn(widget)
    widget.method.select_option("token-norms")
    expect(widget.overlay_title).to_contain_text("token norms after layer 2", timeout=DRAW_TIMEOUT_MS)
    flagged = live_notebook.evaluate(
        "int(attnwidget.methods.high_norm_tokens("
        "torch.frombuffer(bytearray(grid11.explanation), dtype=torch.float32)[None], 0).sum())"
    )
    assert flagged >= 2  # the two loud patches, and any the model makes itself
    expect(widget.overlay_title).to_contain_text(f"{flagged} high-norm tokens receive")
    expect(widget.overlay_canvas).to_have_attribute("data-high-norm-cells", str(flagged))
    widget.overlay.screenshot(path=artifacts / f"{jupyter_server.flavor}-11-high-norm.png")
    live_notebook.run_cell("hook.remove()")


def test_slider_browses_the_pictures_of_run_many(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    widget = show(
        live_notebook,
        "grid10 = attnwidget.explore()\n"
        "grid10.run_many([image, image[::-1], image[:, ::-1]], progress=False);",
    )
    expect_full_grid(widget)
    slider = widget.root.locator("[data-testid=attnwidget-image-index]")
    expect(slider).to_be_visible()
    expect(widget.root).to_contain_text("Picture  3 / 3")
    before = widget.tile_pixels().hashes
    runs = live_notebook.evaluate("grid10.run_id")

    slider.fill("0")  # the first picture, from the kept grids: the model does not run again
    expect(widget.root).to_contain_text("Picture  1 / 3")
    changed = widget.wait_for_tiles_to_change(before, minimum=TILES // 2, timeout_ms=DRAW_TIMEOUT_MS)
    assert changed >= TILES // 2
    index, run_id, status = live_notebook.evaluate("(grid10.image_index, grid10.run_id, grid10.status)")
    assert (index, run_id, status) == (0, runs + 1, "done")
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-10-run-many.png")


SELECTED_DOT_FILL = "rgb(253, 231, 37)"  # the panel's selected_style
PANEL = """\
import ipywidgets
from attnwidget.panel import HeadStatsPanel
grid8 = attnwidget.AttentionGrid()
panel8 = HeadStatsPanel(grid8)
display(ipywidgets.HBox([grid8, panel8], layout=ipywidgets.Layout(flex_flow="row wrap")))
grid8.run(image);"""


def test_statistics_panel_and_grid_select_each_other(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    widget = show(live_notebook, PANEL)
    expect_full_grid(widget)
    dots = widget.scope.locator(".bqplot path.dot")
    expect(dots).to_have_count(TILES, timeout=DRAW_TIMEOUT_MS)  # one dot per head

    # Dots of one layer overlap where their values are close: the click goes to this dot element itself.
    dots.nth(5 * COLS + 2).dispatch_event("click")  # layer 6, head 3
    expect(widget.grid).to_have_attribute("data-selected", "6,3")
    expect(widget.overlay).to_be_visible()
    expect(widget.overlay_canvas).to_have_attribute("data-layer", "6")
    expect(widget.overlay_canvas).to_have_attribute("data-head", "3")
    assert live_notebook.evaluate("grid8.selected") == [6, 3]
    widget.scope.screenshot(path=artifacts / f"{jupyter_server.flavor}-8-panel.png")
    plot = widget.scope.locator(".bqplot").first
    plot.screenshot(path=artifacts / f"{jupyter_server.flavor}-8-panel-plot.png")

    widget.click_tile(1, 7)  # layer 2, head 8: its dot is highlighted
    expect(widget.grid).to_have_attribute("data-selected", "2,8")
    assert live_notebook.evaluate("[int(i) for i in panel8.dots.selected]") == [1 * COLS + 7]
    selected = dots.nth(1 * COLS + 7)
    expect(selected).to_have_css("fill", SELECTED_DOT_FILL, timeout=DRAW_TIMEOUT_MS)


TIMM_GRID = """\
import timm
import torch
torch.manual_seed(0)
timm_model = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, img_size=64, depth=3)
grid20 = attnwidget.explore(image, model=timm_model)"""


def test_a_timm_model_fills_the_grid_and_opens_a_head_over_its_crop(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    if jupyter_server.flavor != "lab":
        pytest.skip("the page is the same for every source: JupyterLab shows it for timm")
    widget = show(live_notebook, TIMM_GRID)
    expect(widget.grid).to_have_attribute("data-tiles-drawn", "9", timeout=DRAW_TIMEOUT_MS)  # 3 x 3
    expect(widget.status).to_have_attribute("data-status", "done")
    pixels = widget.tile_pixels()
    assert all(pixels.painted) and len(set(pixels.hashes)) == 9
    specials, grid, box = live_notebook.evaluate("(grid20.special_tokens, grid20.grid, grid20.crop_box)")
    assert (specials, grid) == (["CLS", "DIST"], [4, 4])

    # Hovering turns the hint under the narrow grid into a one-line read-out: the panel keeps its
    # height, so nothing moves under the pointer (a shorter panel moved the grid in a long notebook).
    readout = widget.root.locator("[data-testid=attnwidget-grid-readout]")
    panel_height = readout.bounding_box()["height"]
    widget.grid.hover(position={"x": 40, "y": 40})
    expect(readout).to_contain_text("l=1 h=1")
    assert readout.bounding_box()["height"] >= panel_height
    widget.click_tile(1, 2)  # layer 2, head 3
    expect(widget.overlay_canvas).to_have_attribute("data-layer", "2")
    expect(widget.overlay_canvas).to_have_attribute("data-head", "3")
    expect(widget.overlay_canvas).to_have_attribute("data-grid", "4,4")
    expect_overlay_drawn(widget)
    # The centre crop of the 256 x 192 picture is square: the patch grid on screen is too.
    _, _, width, height = json.loads(widget.overlay_canvas.get_attribute("data-grid-rect"))
    crop_w, crop_h = (box[2] - box[0]) * 256, (box[3] - box[1]) * 192
    assert abs(crop_w / crop_h - 1) < 0.02 and abs(width / height - crop_w / crop_h) < 0.02
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-20-timm.png")


SWIN_GRID = """\
import torch
import transformers
torch.manual_seed(0)
swin_config = transformers.SwinConfig(
    image_size=64, patch_size=4, embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=4
)
swin = transformers.SwinForImageClassification(swin_config)
swin_processor = transformers.ViTImageProcessorPil(size={"height": 64, "width": 64})
grid21 = attnwidget.explore(image, model=swin, processor=swin_processor)"""


def test_a_swin_stage_opens_a_query_patch_over_its_shifted_window(
    live_notebook: Notebook, jupyter_server: JupyterServer, artifacts: Path
):
    """Stage 1 of a Swin: 16 x 16 patches in 4 x 4 windows, the second layer's windows rolled by 2.
    Patch (0, 0) of that layer sits in a window that wraps round the picture's edges, and the shift
    mask keeps it to the 2 x 2 patches of its own corner: the overlay shows exactly those."""
    if jupyter_server.flavor != "lab":
        pytest.skip("the page is the same for every source: JupyterLab shows it for Swin")
    widget = show(live_notebook, SWIN_GRID)
    expect(widget.grid).to_have_attribute("data-tiles-drawn", "4", timeout=DRAW_TIMEOUT_MS)  # 2 x 2
    expect(widget.status).to_have_attribute("data-status", "done")
    assert all(widget.tile_pixels().painted)
    name, grid, patch = live_notebook.evaluate("(grid21.model_name, grid21.grid, grid21.patch_size)")
    assert name.endswith("stage 1 of 2") and grid == [16, 16] and patch == 4

    # Asked of the kernel before the clicks: a cell run later would scroll the notebook under the pointer.
    expected = live_notebook.evaluate(
        "[[float(v) for v in row] for row in grid21.full_attention(2)[1, 0].view(16, 16)]"
    )
    widget.click_tile(1, 1)  # layer 2 (shifted windows), head 2
    expect(widget.overlay_canvas).to_have_attribute("data-grid", "16,16")
    expect_overlay_drawn(widget)
    widget.click_patch(0, 0)
    expect(widget.query_text).to_contain_text("(0, 0)", timeout=DRAW_TIMEOUT_MS)

    def value(row: int, col: int) -> float:
        return float(widget.read_patch(row, col).splitlines()[0].rpartition("·")[2])

    # The new query's map comes from the kernel after the query line changes: wait until patch (8, 8),
    # outside the query's window, reads 0 (the average over every query did not).
    deadline = time.monotonic() + DRAW_TIMEOUT_MS / 1000
    while value(8, 8) != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    values = {cell: value(*cell) for cell in [(0, 0), (1, 1), (0, 2), (2, 0), (15, 15), (15, 0), (8, 8)]}
    inside = [values[0, 0], values[1, 1]]
    assert all(value > 1e-3 for value in inside), values
    assert all(abs(values[cell]) < 1e-6 for cell in [(0, 2), (2, 0), (15, 15), (15, 0), (8, 8)]), values
    for (row, col), value in values.items():
        assert abs(value - expected[row][col]) <= 1e-3 * max(1.0, expected[row][col]), (row, col, value)
    assert live_notebook.evaluate("grid21.query") == [0]
    widget.root.screenshot(path=artifacts / f"{jupyter_server.flavor}-21-swin.png")


def test_saved_notebook_shows_the_grid_without_its_kernel(
    browser: Browser, jupyter_server: JupyterServer, artifacts: Path
):
    """Save with widget state, stop the kernel, reopen in a fresh page: the grid comes from the file.

    The fresh page starts a new kernel: jupyterlab_widgets restores saved widget state only once a
    kernel session is ready (with "No Kernel" it restores nothing, for any widget). That kernel never
    saw the widget, and it is shut down from the Kernel menu before the last checks.
    """
    flavor = jupyter_server.flavor
    write_notebook(jupyter_server.root / "saved.ipynb")
    notebook = open_notebook(browser, jupyter_server, "saved.ipynb")
    notebook.run_cell(SETUP)
    expect_full_grid(show(notebook, "saved = attnwidget.explore(image, panel=True)"))
    notebook.save()
    saved = json.loads((jupyter_server.root / "saved.ipynb").read_text())
    models = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"].values()
    assert any(model["state"].get("layer_count") == ROWS for model in models), "no attnwidget state saved"

    first_kernel = notebook.kernel_id()
    notebook.page.close()
    jupyter_server.shut_down_sessions("saved.ipynb")
    assert first_kernel not in {kernel["id"] for kernel in jupyter_server.api("kernels")}

    notebook = open_notebook(browser, jupyter_server, "saved.ipynb")
    assert notebook.kernel_id() != first_kernel
    widget = Widget(notebook.cells.nth(1))
    expect(widget.grid).to_be_visible(timeout=DRAW_TIMEOUT_MS)
    expect_full_grid(widget)

    notebook.shut_down_kernel()
    expect_full_grid(widget)
    notebook.page.screenshot(path=artifacts / f"{flavor}-5-saved-no-kernel.png")
    # The overlay works from the saved data alone.
    widget.click_tile(7, 7)
    expect(widget.overlay).to_be_visible()
    expect_overlay_drawn(widget)
    widget.root.screenshot(path=artifacts / f"{flavor}-5-saved-overlay.png")
    # The statistics panel and the grid select each other from the saved state alone: the link is
    # in the front-end, as it must be for exported HTML.
    dots = widget.scope.locator(".bqplot path.dot")
    expect(dots).to_have_count(TILES, timeout=DRAW_TIMEOUT_MS)
    expect(dots.nth(7 * COLS + 7)).to_have_css("fill", SELECTED_DOT_FILL)
    dots.nth(2 * COLS + 4).dispatch_event("click")  # layer 3, head 5
    expect(widget.grid).to_have_attribute("data-selected", "3,5")
    expect(widget.overlay_canvas).to_have_attribute("data-head", "5")
    widget.click_tile(0, 1)
    expect(dots.nth(1)).to_have_css("fill", SELECTED_DOT_FILL)
    notebook.page.close()
