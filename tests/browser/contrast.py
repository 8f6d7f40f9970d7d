"""WCAG 2.x contrast of the text a rendered attnwidget shows, for the browser tests.

DOM text is measured against its effective background (the backgrounds up the ancestors, out of
shadow roots too, composited down to the first opaque one); canvas text against the background
behind the (transparent) canvas, read from the canvas pixels where the labels and colour-bar numbers
are drawn; a "Save PNG" picture from its pixels. Canvas hooks used: `data-tile-rects` and
`data-colorbar-rect` (see js/src/grid.ts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from playwright.sync_api import Locator
from widget_dom import Widget

AA = 4.5  # WCAG 2.x level AA, normal text

#: Colour parsing, compositing and effective backgrounds, for the readers below.
_COLOUR_JS = """
const parse = (text) => {
  let m = text.match(/^rgba?\\(([^)]*)\\)$/);
  if (m) {
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  }
  m = text.match(/^color\\(srgb ([^)]*)\\)$/);
  if (m) {
    const p = m[1].split(/[\\s\\/]+/).filter(Boolean).map(Number);
    return [p[0] * 255, p[1] * 255, p[2] * 255, p.length > 3 ? p[3] : 1];
  }
  throw new Error(`unreadable colour ${text}`);
};
/** The parent of `node`, or the host of the shadow root it heads (marimo renders widgets in one). */
const up = (node) => node.parentElement ?? node.getRootNode().host ?? null;
const over = (top, bottom) => [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3]));
/** The colour behind `node`: its and its ancestors' backgrounds composited down to the first opaque one. */
const background = (node) => {
  const layers = [];
  for (let n = node; n; n = up(n)) {
    const style = getComputedStyle(n);
    if (style.backgroundImage !== "none") throw new Error(`a background image behind ${node.tagName}`);
    const colour = parse(style.backgroundColor);
    if (colour[3] > 0) layers.push(colour);
    if (colour[3] >= 1) break;
  }
  return layers.reverse().reduce((below, layer) => over(layer, below), [255, 255, 255]);  // the page: white
};
/** The colour `node`'s text shows in (its colour and opacity over its background), and that background. */
const textOn = (node) => {
  const colour = parse(getComputedStyle(node).color);
  for (let n = node; n; n = up(n)) colour[3] *= Number(getComputedStyle(n).opacity);
  const behind = background(node);
  return { colour: over(colour, behind), background: behind };
};
const name = (node) =>
  node.dataset.testid || (typeof node.className === "string" && node.className ? "." + node.className : "")
  || node.tagName.toLowerCase();
"""

#: Every visible text in the widget; disabled controls are listed apart (WCAG exempts inactive ones).
_DOM_TEXT_JS = f"""(root) => {{
  {_COLOUR_JS}
  const texts = [], disabled = [];
  for (const node of root.querySelectorAll("*")) {{
    if (node.closest("select") && node.tagName !== "SELECT") continue;
    const text = node.tagName === "SELECT"
      ? (node.selectedOptions[0]?.textContent ?? "")
      : Array.from(node.childNodes).filter((c) => c.nodeType === Node.TEXT_NODE).map((c) => c.data).join("");
    if (!text.trim() || node.getClientRects().length === 0) continue;
    if (getComputedStyle(node).visibility !== "visible") continue;
    if (node.closest(":disabled")) {{ disabled.push(name(node)); continue; }}
    texts.push({{ name: `${{name(node)}} ${{JSON.stringify(text.trim().slice(0, 50))}}`, ...textOn(node) }});
  }}
  return {{ texts, disabled }};
}}"""

#: One element's text colour and background, shown or not (its style is computed either way).
_NODE_TEXT_JS = f"""(node) => {{ {_COLOUR_JS} return textOn(node); }}"""

#: Canvas text: in each region (CSS px) the most opaque pixel is the text's fill, composited over the
#: colour behind the transparent canvas; `pixels` counts the pixels drawn there.
_CANVAS_TEXT_JS = f"""([canvas, regions]) => {{
  {_COLOUR_JS}
  const behind = background(canvas);
  const scale = canvas.width / canvas.getBoundingClientRect().width;
  const context = canvas.getContext("2d");
  return regions.map(([label, [x, y, w, h]]) => {{
    const x0 = Math.max(0, Math.round(x * scale)), y0 = Math.max(0, Math.round(y * scale));
    const width = Math.min(canvas.width - x0, Math.round(w * scale));
    const height = Math.min(canvas.height - y0, Math.round(h * scale));
    if (width <= 0 || height <= 0) return {{ name: label, pixels: 0 }};
    const data = context.getImageData(x0, y0, width, height).data;
    let strongest = 0, pixels = 0;
    for (let i = 0; i < data.length; i += 4) {{
      if (data[i + 3] > 0) pixels++;
      if (data[i + 3] > data[strongest + 3]) strongest = i;
    }}
    const fill = [data[strongest], data[strongest + 1], data[strongest + 2], data[strongest + 3] / 255];
    return {{ name: label, pixels, colour: over(fill, behind), background: behind }};
  }});
}}"""


def luminance(rgb: list[float]) -> float:
    """WCAG 2.x relative luminance of an sRGB colour (0-255 channels)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (v / 255 for v in rgb)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: list[float], b: list[float]) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@dataclass
class Measured:
    name: str
    colour: list[float]
    background: list[float]

    @property
    def ratio(self) -> float:
        return contrast(self.colour, self.background)

    def __str__(self) -> str:
        def hexed(rgb: list[float]) -> str:
            return "#" + "".join(f"{round(c):02x}" for c in rgb)

        return f"{self.ratio:5.2f}  {self.name}  ({hexed(self.colour)} on {hexed(self.background)})"


def measured(name: str, reading: dict) -> Measured:
    return Measured(name, reading["colour"], reading["background"])


def dom_texts(root: Locator) -> tuple[list[Measured], list[str]]:
    """Every visible text under `root`, and the disabled controls left out."""
    result = root.evaluate(_DOM_TEXT_JS)
    return [measured(t["name"], t) for t in result["texts"]], result["disabled"]


def node_text(node: Locator, name: str) -> Measured:
    """One element's text colour against its background, whether it is shown or not (the style is
    computed either way)."""
    return measured(name, node.evaluate(_NODE_TEXT_JS))


def canvas_texts(widget: Widget) -> list[Measured]:
    """Text drawn on the grid canvas (layer and head labels, colour-bar numbers and caption) and on the
    overlay's colour bar (numbers and caption)."""
    tiles = json.loads(widget.grid.get_attribute("data-tile-rects"))
    left, top = min(t[0] for t in tiles), min(t[1] for t in tiles)
    right, bottom = max(t[0] + t[2] for t in tiles), max(t[1] + t[3] for t in tiles)
    # 3 px clear of the tiles: the selection outline is drawn just outside the selected tile.
    regions = [
        ("grid: layer labels l=", [0, top, left - 3, bottom - top]),
        ("grid: head labels h=", [left, 0, right - left, top - 3]),
        ("grid: colour-bar numbers", below_gradient(widget.grid)),
    ]
    bar = widget.overlay.locator("[data-testid=attnwidget-overlay-colorbar]")
    return read_canvas(widget.grid, regions) + read_canvas(
        bar, [("overlay: colour-bar numbers", below_gradient(bar))]
    )


def below_gradient(canvas: Locator) -> list[float]:
    """The region under a canvas's colour-bar gradient (its numbers and caption), CSS px."""
    rect, box = canvas.get_attribute("data-colorbar-rect"), canvas.bounding_box()
    assert rect, "the canvas has no colour bar"
    _, y, _, h = json.loads(rect)
    return [0, y + h + 1, box["width"], box["height"] - (y + h + 1)]


def read_canvas(canvas: Locator, regions: list) -> list[Measured]:
    readings = canvas.page.evaluate(_CANVAS_TEXT_JS, [canvas.element_handle(), regions])
    for reading in readings:  # enough pixels that the region holds text, not a stray edge
        assert reading["pixels"] >= 30, f"no text drawn in {reading['name']}"
    return [measured(reading["name"], reading) for reading in readings]


def saved_texts(widget: Widget, pixels: np.ndarray) -> list[Measured]:
    """In a "Save PNG" picture (opaque), the grid's layer labels and the overlay title: per region, its
    most common colour (the background) against the colour farthest from it in luminance."""
    parts = [
        widget.grid,
        widget.overlay_canvas,
        widget.overlay.locator("[data-testid=attnwidget-overlay-colorbar]"),
        widget.overlay_title,
    ]
    boxes = [part.bounding_box() for part in parts]
    left, top = min(b["x"] for b in boxes), min(b["y"] for b in boxes)
    scale = pixels.shape[1] / (max(b["x"] + b["width"] for b in boxes) - left)
    tiles = json.loads(widget.grid.get_attribute("data-tile-rects"))
    first_x, first_y = min(t[0] for t in tiles), min(t[1] for t in tiles)
    last_y = max(t[1] + t[3] for t in tiles)
    grid, title = boxes[0], boxes[3]
    regions = {  # CSS px in the page
        "saved: layer labels l=": (grid["x"], grid["y"] + first_y, first_x - 3, last_y - first_y),
        "saved: overlay title": (title["x"], title["y"], title["width"], title["height"]),
    }
    readings = []
    for name, (x, y, w, h) in regions.items():
        x0, y0 = round((x - left) * scale), round((y - top) * scale)
        patch = pixels[y0 : y0 + round(h * scale), x0 : x0 + round(w * scale)].reshape(-1, 3)
        colours, counts = np.unique(patch, axis=0, return_counts=True)
        background = colours[counts.argmax()].tolist()
        text = max(colours.tolist(), key=lambda c: abs(luminance(c) - luminance(background)))
        readings.append(Measured(name, text, background))
    return readings


def expect_aa(readings: list[Measured], where: str) -> None:
    """Fail, listing them, when any reading is below AA."""
    low = [str(m) for m in readings if m.ratio < AA]
    if low:
        pytest.fail(f"{where}: text below {AA}:1\n" + "\n".join(low), pytrace=False)
