"""Reading attnwidget's DOM in a page: the hooks the front-end exposes for tests, and canvas pixels.

Hooks used (see js/src/grid.ts and js/src/overlay.ts):
- grid canvas `[data-testid=attnwidget-grid]`: `data-rows`, `data-cols`, `data-tiles-drawn`,
  `data-tile-rects` (JSON `[x, y, w, h]` per tile, row-major, CSS px in the canvas), `data-selected`;
- overlay `[data-testid=attnwidget-overlay]` and its canvas `[data-testid=attnwidget-overlay-canvas]`:
  `data-layer`, `data-head`, `data-grid` ("gh,gw"), `data-grid-rect` (JSON `[x, y, w, h]`);
  `data-method` (the method whose map is shown);
- `[data-testid=attnwidget-status]` with `data-status`, `[data-testid=attnwidget-query]`,
  `[data-testid=attnwidget-method]` (the method selector), `[data-testid=attnwidget-predictions]`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from playwright.sync_api import Locator, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ROWS = COLS = 8  # the built-in model: 8 layers x 8 heads
TILES = ROWS * COLS
DRAW_TIMEOUT_MS = 30_000

#: Per tile: is it painted (opaque, not the translucent placeholder), how many colours, a hash of its pixels.
#: Reads the canvas in one go, so the numbers and `data-tiles-drawn` come from the same frame.
_TILE_PIXELS_JS = """
(canvas) => {
  const rects = JSON.parse(canvas.dataset.tileRects || "[]");
  const context = canvas.getContext("2d");
  const sx = canvas.width / canvas.getBoundingClientRect().width;
  const sy = canvas.height / canvas.getBoundingClientRect().height;
  const tiles = rects.map(([x, y, w, h]) => {
    // Stay 2 CSS px inside the tile: the selection outline and anti-aliased edges are not content.
    const x0 = Math.round((x + 2) * sx), y0 = Math.round((y + 2) * sy);
    const width = Math.max(1, Math.round((w - 4) * sx)), height = Math.max(1, Math.round((h - 4) * sy));
    const data = context.getImageData(x0, y0, width, height).data;
    let opaque = 0, hash = 2166136261;
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] === 255) opaque++;
      colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
      hash = Math.imul(hash ^ data[i] ^ (data[i + 1] << 8) ^ (data[i + 2] << 16), 16777619) >>> 0;
    }
    const pixels = data.length / 4;
    return { painted: opaque === pixels && colours.size >= 2, colours: colours.size, hash };
  });
  return { tilesDrawn: Number(canvas.dataset.tilesDrawn), tiles };
}
"""

#: Whole-canvas statistics: share of opaque pixels, distinct colours, spread of the luminance, a hash.
_CANVAS_STATS_JS = """
(canvas) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let opaque = 0, sum = 0, sum2 = 0, hash = 2166136261;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] === 255) opaque++;
    colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    const y = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
    sum += y; sum2 += y * y;
    hash = Math.imul(hash ^ data[i] ^ (data[i + 1] << 8) ^ (data[i + 2] << 16), 16777619) >>> 0;
  }
  const n = data.length / 4;
  return { hash, width: canvas.width, height: canvas.height, opaque: opaque / n, colours: colours.size,
           lumaStd: Math.sqrt(Math.max(0, sum2 / n - (sum / n) ** 2)) };
}
"""


@dataclass
class TilePixels:
    tiles_drawn: int  # the canvas's data-tiles-drawn at the moment the pixels were read
    painted: list[bool]  # per tile, row-major
    hashes: list[int]

    @property
    def painted_count(self) -> int:
        return sum(self.painted)


class Widget:
    """One rendered attnwidget view (its root element) inside a notebook cell."""

    def __init__(self, scope: Locator):
        self.scope = scope  # the notebook cell (or page) the widget is in
        self.root = scope.locator("[data-testid=attnwidget-root]")
        self.grid = self.root.locator("[data-testid=attnwidget-grid]")
        self.status = self.root.locator("[data-testid=attnwidget-status]")
        self.overlay = self.root.locator("[data-testid=attnwidget-overlay]")
        self.overlay_canvas = self.overlay.locator("[data-testid=attnwidget-overlay-canvas]")
        self.query_text = self.overlay.locator("[data-testid=attnwidget-query]")
        self.overlay_title = self.overlay.locator("[data-testid=attnwidget-overlay-title]")
        self.method = self.root.locator("[data-testid=attnwidget-method]")
        self.predictions = self.root.locator("[data-testid=attnwidget-predictions]")

    def matrix_pixel(self, fx: float, fy: float) -> list[int]:
        """RGBA of the overlay's matrix at fraction (`fx`, `fy`) of its drawn grid (x right, y down)."""
        return self.overlay_canvas.evaluate(
            """(canvas, [fx, fy]) => {
              const r = JSON.parse(canvas.dataset.gridRect);
              const s = canvas.width / canvas.getBoundingClientRect().width;
              const x = Math.round((r[0] + fx * r[2]) * s), y = Math.round((r[1] + fy * r[3]) * s);
              return Array.from(canvas.getContext("2d").getImageData(x, y, 1, 1).data);
            }""",
            [fx, fy],
        )

    def record_tile_counts(self) -> None:
        """From now on, append every value `data-tiles-drawn` takes to the page's `window.tilesSeen`."""
        self.grid.evaluate(
            """(canvas) => {
              window.tilesSeen = [];
              new MutationObserver(() => window.tilesSeen.push(Number(canvas.dataset.tilesDrawn)))
                .observe(canvas, { attributes: true, attributeFilter: ["data-tiles-drawn"] });
            }"""
        )

    def tiles_drawn(self) -> int:
        return int(self.grid.get_attribute("data-tiles-drawn") or 0)

    def tile_pixels(self) -> TilePixels:
        result = self.grid.evaluate(_TILE_PIXELS_JS)
        tiles = result["tiles"]
        return TilePixels(result["tilesDrawn"], [t["painted"] for t in tiles], [t["hash"] for t in tiles])

    def wait_for_tiles_to_change(self, before: list[int], minimum: int, timeout_ms: int) -> int:
        """Wait until all tiles are painted and `minimum` of them differ from `before`; return how many do."""
        return self.grid.page.wait_for_function(
            f"""([canvas, before, minimum]) => {{
              const now = ({_TILE_PIXELS_JS})(canvas);
              const changed = now.tiles.filter((t, i) => t.hash !== before[i]).length;
              return now.tiles.every((t) => t.painted) && changed >= minimum ? changed : false;
            }}""",
            arg=[self.grid.element_handle(), before, minimum],
            timeout=timeout_ms,
        ).json_value()

    def click_tile(self, row: int, col: int) -> None:
        cols = int(self.grid.get_attribute("data-cols"))
        x, y, w, h = json.loads(self.grid.get_attribute("data-tile-rects"))[row * cols + col]
        self.grid.click(position={"x": x + w / 2, "y": y + h / 2})

    def snapshot_boxes(self) -> list[dict]:
        """Page boxes of what Save PNG composes: the grid, the overlay canvas, its colour bar, its title."""
        return [
            self.grid.bounding_box(),
            self.overlay_canvas.bounding_box(),
            self.overlay.locator("[data-testid=attnwidget-overlay-colorbar]").bounding_box(),
            self.overlay_title.bounding_box(),
        ]

    def overlay_stats(self) -> dict:
        return self.overlay_canvas.evaluate(_CANVAS_STATS_JS)

    def wait_for_overlay_to_change(self, before: int, timeout_ms: int) -> int:
        """Wait until the overlay canvas's pixels hash to something other than `before`; return the hash."""
        return self.overlay_canvas.page.wait_for_function(
            f"""([canvas, before]) => {{
              const now = ({_CANVAS_STATS_JS})(canvas);
              return now.hash !== before && now.opaque > 0.99 ? now.hash : false;
            }}""",
            arg=[self.overlay_canvas.element_handle(), before],
            timeout=timeout_ms,
        ).json_value()

    def drag_on_overlay(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        """Drag across the overlay's grid from `start` to `end`, given as fractions (x, y) of the grid."""
        x, y, w, h = json.loads(self.overlay_canvas.get_attribute("data-grid-rect"))
        self.overlay_canvas.scroll_into_view_if_needed()
        box = self.overlay_canvas.bounding_box()
        mouse = self.overlay_canvas.page.mouse
        mouse.move(box["x"] + x + start[0] * w, box["y"] + y + start[1] * h)
        mouse.down()
        mouse.move(box["x"] + x + end[0] * w, box["y"] + y + end[1] * h, steps=8)
        mouse.up()

    def click_patch(self, row: int, col: int) -> None:
        """Click the centre of patch (row, col) of the overlay's patch grid."""
        self.overlay_canvas.click(position=self._patch_centre(row, col))

    def hover_patch(self, row: int, col: int) -> None:
        """Move the pointer to the centre of patch (row, col) of the overlay's patch grid (the overlay
        scrolled to the middle of the page first, so no toolbar or edge of the notebook covers it)."""
        self.overlay_canvas.evaluate("canvas => canvas.scrollIntoView({block: 'center', inline: 'center'})")
        self.overlay_canvas.hover(position=self._patch_centre(row, col))

    def read_patch(self, row: int, col: int, attempts: int = 3) -> str:
        """The overlay's read-out for patch (row, col), read in the same moment it names that patch
        (hovering again when a redraw took the pointer's cursor away)."""
        readout = self.overlay.locator("[data-testid=attnwidget-readout]")
        for attempt in range(1, attempts + 1):
            self.hover_patch(row, col)
            try:
                return readout.page.wait_for_function(
                    "([element, prefix]) => element.textContent.startsWith(prefix) && element.textContent",
                    arg=[readout.element_handle(), f"patch ({row}, {col})"],
                    timeout=5000 if attempt < attempts else DRAW_TIMEOUT_MS,
                ).json_value()
            except PlaywrightTimeoutError:
                if attempt == attempts:
                    said = readout.text_content()
                    raise AssertionError(
                        f"hovered patch ({row}, {col}) {attempts} times; the read-out says {said!r}"
                    ) from None
                self.overlay_canvas.page.mouse.move(0, 0)  # leave, so the next hover is a new one
        raise ValueError(f"attempts must be at least 1, got {attempts}")

    def _patch_centre(self, row: int, col: int) -> dict:
        gh, gw = (int(v) for v in self.overlay_canvas.get_attribute("data-grid").split(","))
        x, y, w, h = json.loads(self.overlay_canvas.get_attribute("data-grid-rect"))
        return {"x": x + (col + 0.5) * w / gw, "y": y + (row + 0.5) * h / gh}


def expect_full_grid(widget: Widget) -> None:
    """All 8 x 8 tiles received and painted: the hook says so and every tile's pixels agree."""
    expect(widget.grid).to_have_attribute("data-rows", str(ROWS))
    expect(widget.grid).to_have_attribute("data-cols", str(COLS))
    expect(widget.grid).to_have_attribute("data-tiles-drawn", str(TILES), timeout=DRAW_TIMEOUT_MS)
    pixels = widget.tile_pixels()
    unpainted = [i for i, painted in enumerate(pixels.painted) if not painted]
    assert not unpainted, f"tiles {unpainted} have no attention map on the canvas"
    # Real maps differ from head to head; one repeated picture would mean a drawing bug.
    assert len(set(pixels.hashes)) > TILES // 2


def expect_overlay_drawn(widget: Widget) -> None:
    """The overlay canvas shows the picture under a heat map: opaque, many colours, real contrast."""
    # The picture is decoded asynchronously: wait until its many colours are on the canvas.
    widget.overlay.page.wait_for_function(
        """(canvas) => {
          if (canvas.width < 100 || canvas.height < 100) return false;
          const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
          const colours = new Set();
          for (let i = 0; i < d.length; i += 16) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
          return colours.size > 500;
        }""",
        arg=widget.overlay_canvas.element_handle(),
        timeout=DRAW_TIMEOUT_MS,
    )
    stats = widget.overlay_stats()
    assert stats["opaque"] > 0.99, stats
    assert stats["lumaStd"] > 10, stats
