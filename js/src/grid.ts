/**
 * The layer x head grid, drawn on one canvas: every tile is coloured into one RGBA atlas (at most one
 * source pixel per device pixel, max-pooled when the map is larger than the tile) and copied to its
 * place, so 32 x 32 tiles cost one image upload. Tiles without data yet are drawn as placeholders.
 *
 * For end-to-end tests the canvas carries `data-rows`, `data-cols`, `data-tiles-drawn` (tiles holding
 * data), `data-tile-rects` (JSON `[x, y, width, height]` per tile, row-major, CSS pixels relative to
 * the canvas), `data-selected` ("layer,head" or ""), `data-colorbar-range` ("lo,hi" or "") and
 * `data-colorbar-rect` (JSON `[x, y, width, height]` of the colour bar's gradient, set by `drawColorBar`
 * on every canvas it draws on: the numbers and caption lie below it), and
 * for benchmarks `data-draws` (draws so far) and `data-draw-ms` (how long the last one took).
 */
import type { Lut } from "./colormaps";
import { drawCausalMask } from "./causal";
import { paintValues } from "./colormaps";
import { devicePixelRatio, drawColorBar, element, sizeCanvas, textColor } from "./dom";
import { type GridLayout, type TileHit, computeGridLayout, hitTest, tileRect } from "./layout";
import type { TileSource } from "./store";
import { maxPool } from "./upsample";

export interface GridScene {
  readonly rowLabels: readonly string[];
  readonly colLabels: readonly string[];
  readonly source: TileSource;
  /** Display range per tile (see `displayRanges`). */
  readonly ranges: Float32Array;
  readonly lut: Lut;
  /** Selected tile, or -1. */
  readonly selectedTile: number;
  /** "layer,head" of the selection, for `data-selected`. */
  readonly selectedLabel: string;
  readonly colorBarRange: readonly [number, number] | null;
  readonly colorBarCaption: string;
  /** Changes whenever the tiles' values change (data, view). */
  readonly dataKey: string;
  /** Changes whenever the values' colours change (colormap, normalisation). */
  readonly colorKey: string;
  /** CSS pixels available. */
  readonly maxWidth: number;
  /** Token count of causal token x token tiles, whose masked keys are greyed; 0 for none. */
  readonly causalTokens: number;
}

const PLACEHOLDER = "rgba(128, 128, 128, 0.16)";
const PLACEHOLDER_EDGE = "rgba(128, 128, 128, 0.35)";
const SELECTION = "#ff5a1f";

export class GridCanvas {
  readonly canvas: HTMLCanvasElement;
  private layout: GridLayout | null = null;
  private atlas: HTMLCanvasElement;
  private atlasTile = { width: 0, height: 0 };
  private atlasKey = "";
  private draws = 0;
  /** Each tile's values at atlas resolution (pooled once per data change, recoloured cheaply). */
  private tileValues: { key: string; values: (Float32Array | null)[] } = { key: "", values: [] };

  constructor(doc: Document) {
    this.canvas = element(doc, "canvas", {
      className: "aw-grid",
      testId: "attnwidget-grid",
      // The grid handles its own arrow keys; the attribute keeps notebook shortcuts from taking them.
      attrs: { tabindex: "0", role: "application", "aria-roledescription": "attention grid", "data-lm-suppress-shortcuts": "true" },
    });
    this.atlas = doc.createElement("canvas");
  }

  /** The tile under (x, y) in CSS pixels of the canvas. */
  hit(x: number, y: number): TileHit | null {
    return this.layout && hitTest(this.layout, x, y);
  }

  /** Draws `scene`; rebuilds the tile pixels only when the data, colours, tile size or pixel ratio changed. */
  draw(scene: GridScene): void {
    const start = performance.now();
    this.paint(scene);
    this.draws += 1;
    this.canvas.dataset.draws = String(this.draws);
    this.canvas.dataset.drawMs = (performance.now() - start).toFixed(2);
  }

  private paint(scene: GridScene): void {
    const rows = scene.rowLabels.length;
    const cols = scene.colLabels.length;
    const layout = computeGridLayout({
      rows,
      cols,
      rowLabelChars: longest(scene.rowLabels),
      colLabelChars: longest(scene.colLabels),
      maxWidth: scene.maxWidth,
      captionChars: scene.colorBarCaption.length,
    });
    if (!this.layout || JSON.stringify(layout) !== JSON.stringify(this.layout)) {
      this.canvas.dataset.tileRects = JSON.stringify(
        Array.from({ length: rows * cols }, (_, tile) => {
          const rect = tileRect(layout, Math.floor(tile / cols), tile % cols);
          return [rect.x, rect.y, rect.width, rect.height];
        }),
      );
    }
    this.layout = layout;
    const context = sizeCanvas(this.canvas, layout.width, layout.height);
    this.describe(scene, rows, cols);
    if (!context) return;
    const pixels = Math.max(1, Math.round(layout.tileSize * devicePixelRatio(this.canvas)));
    const key = `${scene.dataKey}|${scene.colorKey}|${rows}x${cols}|${pixels}`;
    if (key !== this.atlasKey) this.paintAtlas(scene, rows, cols, pixels);
    this.atlasKey = key;

    context.clearRect(0, 0, layout.width, layout.height);
    this.drawTiles(context, scene, layout);
    const color = textColor(this.canvas);
    this.drawLabels(context, scene, layout, color);
    if (scene.selectedTile >= 0 && scene.selectedTile < rows * cols) {
      const rect = tileRect(layout, Math.floor(scene.selectedTile / cols), scene.selectedTile % cols);
      context.strokeStyle = SELECTION;
      context.lineWidth = 2;
      context.strokeRect(rect.x - 1, rect.y - 1, rect.width + 2, rect.height + 2);
    }
    drawColorBar(context, layout.colorBar, scene.lut, scene.colorBarRange, scene.colorBarCaption, color, layout.fontSize);
  }

  private describe(scene: GridScene, rows: number, cols: number): void {
    const data = this.canvas.dataset;
    const drawn = scene.source.count;
    data.rows = String(rows);
    data.cols = String(cols);
    data.tilesDrawn = String(drawn);
    data.selected = scene.selectedLabel;
    data.colorbarRange = scene.colorBarRange ? scene.colorBarRange.join(",") : "";
    this.canvas.setAttribute(
      "aria-label",
      `Attention grid: ${rows} layers by ${cols} heads, ${drawn} tiles received. Arrow keys move the selection, Enter opens it, Escape closes it.`,
    );
  }

  /** Colours every tile with data into the atlas, `cols x rows` cells of at most `pixels` square. */
  private paintAtlas(scene: GridScene, rows: number, cols: number, pixels: number): void {
    const { source } = scene;
    const width = Math.min(source.width, pixels);
    const height = Math.min(source.height, pixels);
    this.atlasTile = { width, height };
    if (width <= 0 || height <= 0 || rows * cols === 0) return;
    const tiles = this.valuesAt(scene, rows * cols, width, height);
    this.atlas.width = cols * width;
    this.atlas.height = rows * height;
    const context = this.atlas.getContext("2d");
    if (!context) return;
    const image = context.createImageData(cols * width, rows * height);
    tiles.forEach((values, tile) => {
      if (!values) return;
      paintValues(values, width, height, scene.ranges[tile * 2], scene.ranges[tile * 2 + 1], scene.lut, {
        pixels: image.data,
        stride: cols * width,
        x: (tile % cols) * width,
        y: Math.floor(tile / cols) * height,
      });
    });
    context.putImageData(image, 0, 0);
  }

  /** The tiles' values at `width x height` (max-pooled when smaller than the source), cached per data. */
  private valuesAt(scene: GridScene, count: number, width: number, height: number): (Float32Array | null)[] {
    const key = `${scene.dataKey}|${count}|${width}x${height}`;
    if (this.tileValues.key === key) return this.tileValues.values;
    const { source } = scene;
    const pooled = width < source.width || height < source.height;
    const values = Array.from({ length: count }, (_, tile) => {
      if (!source.has(tile)) return null;
      const full = source.values(tile);
      return pooled ? maxPool(full, source.width, source.height, width, height) : full.slice();
    });
    this.tileValues = { key, values };
    return values;
  }

  private drawTiles(context: CanvasRenderingContext2D, scene: GridScene, layout: GridLayout): void {
    const { width, height } = this.atlasTile;
    context.imageSmoothingEnabled = false;
    for (let row = 0; row < layout.rows; row++) {
      for (let col = 0; col < layout.cols; col++) {
        const tile = row * layout.cols + col;
        const rect = tileRect(layout, row, col);
        if (scene.source.has(tile) && width > 0 && height > 0) {
          context.drawImage(this.atlas, col * width, row * height, width, height, rect.x, rect.y, rect.width, rect.height);
          if (scene.causalTokens > 0) drawCausalMask(context, rect, scene.source.width, scene.causalTokens);
        } else {
          context.fillStyle = PLACEHOLDER;
          context.fillRect(rect.x, rect.y, rect.width, rect.height);
          context.strokeStyle = PLACEHOLDER_EDGE;
          context.lineWidth = 1;
          context.strokeRect(rect.x + 0.5, rect.y + 0.5, rect.width - 1, rect.height - 1);
        }
      }
    }
  }

  private drawLabels(context: CanvasRenderingContext2D, scene: GridScene, layout: GridLayout, color: string): void {
    context.fillStyle = color;
    context.font = `${layout.fontSize}px system-ui, sans-serif`;
    context.textAlign = "right";
    context.textBaseline = "middle";
    for (let row = 0; row < layout.rows; row += layout.rowLabelStep) {
      const rect = tileRect(layout, row, 0);
      context.fillText(scene.rowLabels[row], rect.x - 4, rect.y + rect.height / 2);
    }
    context.textAlign = "center";
    context.textBaseline = "bottom";
    for (let col = 0; col < layout.cols; col += layout.colLabelStep) {
      const rect = tileRect(layout, 0, col);
      context.fillText(scene.colLabels[col], rect.x + rect.width / 2, rect.y - 3);
    }
  }
}

function longest(labels: readonly string[]): number {
  return labels.reduce((most, label) => Math.max(most, label.length), 0);
}
