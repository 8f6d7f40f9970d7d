"""The browser and `overlay_to_png` draw the same overlay: "Save PNG" in JupyterLab against Python's export.

The grid runs the built-in model behind a processor that resizes the picture to 128 x 128 and crops
the middle 96 x 96, so the overlay shows a crop region (dimmed outside, outlined), and with opacity 1,
so the patch grid shows the map's colours alone. The overlay canvas is cut out of the saved PNG and
compared with `overlay_to_png(size=...)` at the canvas's size: inside the patch grid, away from
outlines and contours (anti-aliased in the browser, not in Pillow), 99% of pixels must agree within 3
levels per channel; the DINO mask's contour must be white at the same places in both.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from harness import Notebook
from PIL import Image
from playwright.sync_api import expect
from test_widget_e2e import save_png, show
from widget_dom import DRAW_TIMEOUT_MS, Widget, expect_overlay_drawn

pytestmark = pytest.mark.browser

GRID = """\
from transformers import DeiTImageProcessorPil
cropping = DeiTImageProcessorPil(
    size={"height": 128, "width": 128}, crop_size={"height": 96, "width": 96}, do_center_crop=True,
    image_mean=[0.5] * 3, image_std=[0.5] * 3,
)
cropped = attnwidget.VisionModel(attnwidget.default_model().model, cropping)
grid20 = attnwidget.AttentionGrid(cropped, heads=[1, 2, 3, 4], alpha=1.0)  # narrow: a 512 px overlay
grid20.run(image)
grid20"""
LAYER, HEAD = 3, 4
#: Per channel, the largest difference allowed, and the share of compared pixels that must keep to it.
TOLERANCE, SHARE = 3, 0.99
#: Pixels this close to an outline or contour are not compared.
MARGIN = 4


def overlay_in_saved_png(widget: Widget, path: Path) -> np.ndarray:
    """Click "Save PNG" and cut the overlay canvas out of the downloaded picture."""
    _, pixels = save_png(widget, path)
    boxes = widget.snapshot_boxes()
    left, top = min(b["x"] for b in boxes), min(b["y"] for b in boxes)
    x, y = round(boxes[1]["x"] - left), round(boxes[1]["y"] - top)
    width, height = (int(widget.overlay_canvas.get_attribute(side)) for side in ("width", "height"))
    return pixels[y : y + height, x : x + width].astype(int)


def python_overlay(notebook: Notebook, path: Path, shape: tuple[int, int]) -> np.ndarray:
    """`overlay_to_png` of the open head at the canvas's `shape` (h, w): its picture, below the title band
    (2 x the 14 px font)."""
    size = max(shape)
    notebook.evaluate(f"grid20.overlay_to_png({str(path)!r}, layer={LAYER}, head={HEAD}, size={size}) and 0")
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))[28 : 28 + shape[0], : shape[1]].astype(int)


def compared_region(shape: tuple[int, int], grid: list[float], segments: list[list[float]]) -> np.ndarray:
    """Pixels of the patch grid `grid` ([x, y, w, h]) `MARGIN` px or more from its border and `segments`."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    x, y, w, h = grid
    region = (xx > x + MARGIN) & (xx < x + w - MARGIN) & (yy > y + MARGIN) & (yy < y + h - MARGIN)
    for x0, y0, x1, y1 in segments:
        near = (xx > min(x0, x1) - MARGIN) & (xx < max(x0, x1) + MARGIN)
        region &= ~(near & (yy > min(y0, y1) - MARGIN) & (yy < max(y0, y1) + MARGIN))
    return region


def agreement(browser: np.ndarray, python: np.ndarray, region: np.ndarray) -> float:
    """The share of `region`'s pixels where no channel differs by more than `TOLERANCE`."""
    assert browser.shape[:2] == python.shape[:2] == region.shape, (browser.shape, python.shape)
    return float((np.abs(browser - python).max(axis=-1)[region] <= TOLERANCE).mean())


@pytest.mark.parametrize("jupyter_server", ["lab"], indirect=True)
def test_saved_overlay_matches_overlay_to_png(live_notebook: Notebook, artifacts: Path, tmp_path: Path):
    widget = show(live_notebook, GRID)
    expect(widget.grid).to_have_attribute("data-tiles-drawn", str(8 * 4), timeout=DRAW_TIMEOUT_MS)
    widget.click_tile(LAYER - 1, HEAD - 1)
    expect(widget.overlay).to_contain_text("exact values", timeout=DRAW_TIMEOUT_MS)
    expect_overlay_drawn(widget)
    assert live_notebook.evaluate("grid20.crop_box") == [0.125, 0.125, 0.875, 0.875]
    grid = json.loads(widget.overlay_canvas.get_attribute("data-grid-rect"))
    assert grid == [64, 48, 384, 288]  # whole pixels: the map is drawn 1:1 on both sides

    browser = overlay_in_saved_png(widget, artifacts / "parity-1-browser.png")
    python = python_overlay(live_notebook, artifacts / "parity-1-python.png", browser.shape[:2])
    region = compared_region(browser.shape[:2], grid, [])
    assert region.sum() > 0.9 * (grid[2] - 2 * MARGIN) * (grid[3] - 2 * MARGIN)
    assert agreement(browser, python, region) >= SHARE
    # Outside the crop both dim the picture (resampled by Chromium and by Pillow: compared loosely).
    outside = np.zeros(region.shape, dtype=bool)
    outside[MARGIN : grid[1] - MARGIN, MARGIN:-MARGIN] = True
    assert np.abs(browser - python)[outside].mean() < 4

    # The comparison can fail: another colormap on the Python side alone is far off.
    live_notebook.evaluate("setattr(grid20, 'colormap', 'magma')")
    magma = python_overlay(live_notebook, tmp_path / "magma.png", browser.shape[:2])
    assert agreement(browser, magma, region) < 0.5

    # A diverging colormap is centred on zero on both sides: attention (never negative) runs white to red.
    before = widget.overlay_stats()["hash"]
    live_notebook.evaluate("setattr(grid20, 'colormap', 'rdbu_r')")
    widget.wait_for_overlay_to_change(before, DRAW_TIMEOUT_MS)
    browser_diverging = overlay_in_saved_png(widget, artifacts / "parity-1-browser-rdbu_r.png")
    python = python_overlay(live_notebook, artifacts / "parity-1-python-rdbu_r.png", browser.shape[:2])
    assert agreement(browser_diverging, python, region) >= SHARE
    assert (browser_diverging[region][:, 0] >= browser_diverging[region][:, 2]).mean() > 0.99  # no blue
    live_notebook.evaluate("setattr(grid20, 'colormap', 'viridis')")

    # With the DINO mask on, both draw its contour, in the same places.
    live_notebook.evaluate("setattr(grid20, 'mask_mass', 0.6)")
    expect(widget.overlay_canvas).not_to_have_attribute("data-mask-cells", "0", timeout=DRAW_TIMEOUT_MS)
    edges = live_notebook.evaluate(
        "attnwidget.masks.mask_edges(attnwidget.masks.mass_mask("
        f"grid20.full_attention({LAYER})[{HEAD - 1}, 0, 1:].reshape(12, 12).numpy(), 0.6)).tolist()"
    )
    assert int(widget.overlay_canvas.get_attribute("data-mask-cells")) > 0 and edges
    cell = (grid[2] / 12, grid[3] / 12)
    segments = [
        [grid[0] + x0 * cell[0], grid[1] + y0 * cell[1], grid[0] + x1 * cell[0], grid[1] + y1 * cell[1]]
        for x0, y0, x1, y1 in edges
    ]
    browser = overlay_in_saved_png(widget, artifacts / "parity-2-browser-mask.png")
    python = python_overlay(live_notebook, artifacts / "parity-2-python-mask.png", browser.shape[:2])
    assert agreement(browser, python, compared_region(browser.shape[:2], grid, segments)) >= SHARE
    for x0, y0, x1, y1 in segments:
        x, y = int((x0 + x1) / 2), int((y0 + y1) / 2)  # the line's middle: white in both
        for picture in (browser, python):
            assert picture[y - 1 : y + 1, x - 1 : x + 1].min() >= 200, (x0, y0, x1, y1)
