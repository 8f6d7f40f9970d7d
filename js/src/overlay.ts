/**
 * The full-size view of one head.
 *
 * Query view: the original picture with the head's map upsampled (values first, then colours) and
 * blended over the region the model saw (`crop_box`); outside it the picture is dimmed and the region
 * outlined. Hovering reads out the patch, its token index, its value and the attention to the special
 * tokens; a click (or Enter on the keyboard cursor) makes the patch the query.
 * Matrix view: the head's token x token matrix (query rows x key columns). Dragging across it zooms
 * into the region dragged over (the kernel sends it, exact up to 1024 tokens a side); "Whole matrix"
 * zooms out.
 *
 * For end-to-end tests the canvas carries `data-mode`, `data-layer`, `data-head`, `data-grid`
 * ("gh,gw", or "height,width" of the matrix window), `data-window` (matrix view: "first,stop,first,stop",
 * the query and key tokens shown) and `data-grid-rect` (JSON `[x, y, width, height]` in CSS
 * pixels: where the patch grid or the matrix lies, so patch (r, c) is at its (c + 0.5, r + 0.5) cell),
 * and `data-draws`, the number of frames drawn so far (benchmarks time a click to the next one).
 *
 * `OverlayPanel`'s drawing and pointer and keyboard handling share its state (cursor, drag, the
 * cached heat canvas and picture geometry). Its parts without that state live apart: the display
 * controls (overlay-controls.ts), marks (overlay-marks.ts), read-outs (readout.ts) and the picture
 * loader (picture.ts).
 */
import { type Lut, paintValues } from "./colormaps";
import type { ColormapName, Interpolation, Method, Pooling, View } from "./contract";
import { canvasPoint, devicePixelRatio, drawColorBar, element, sizeCanvas, syncText, textColor } from "./dom";
import { type PictureLayout, type Rect, cellAt, gridCoverage, pictureLayout } from "./layout";
import type { GridShape, PictureState } from "./model";
import { describeQuery, patchToken } from "./tokens";
import { drawCausalWindow } from "./causal";
import { type ControlActions, OverlayControls } from "./overlay-controls";
import { cellRect, dimOutsideCrop, divideSpecialTokens, drawMasks, outline, outlineCells, outlineQueryPatches } from "./overlay-marks";
import type { Picture } from "./picture";
import { matrixReadout, patchesAreQueries, queryReadout } from "./readout";
import { maxPool, upsample } from "./upsample";
import { type MatrixWindow, type TokenRegion, isOneTokenPerCell, isZoomed, regionBetween } from "./window";

export interface OverlayScene {
  readonly mode: View;
  readonly layer: number;
  readonly head: number;
  readonly shape: GridShape;
  readonly picture: PictureState;
  /** The head's map (gh * gw) for the current query, or `null` before it arrives. */
  readonly map: Float32Array | null;
  /** Attention from the query to each special token, or `null`. */
  readonly specials: Float32Array | null;
  /** The window of the head's token x token matrix shown: the whole matrix or a zoomed-in region. */
  readonly matrix: MatrixWindow | null;
  readonly range: readonly [number, number] | null;
  readonly rangeCaption: string;
  readonly lut: Lut;
  readonly colormap: ColormapName;
  readonly alpha: number;
  readonly interpolation: Interpolation;
  readonly query: readonly number[];
  /** Where the values come from: "exact values", "8-bit values", ... */
  readonly valuesNote: string;
  /** A line for the user (e.g. a new query needs a running kernel); "" for none. */
  readonly notice: string;
  readonly canResetQuery: boolean;
  /** Side of the square the picture is fitted into, CSS pixels. */
  readonly maxSide: number;
  /** Changes whenever the coloured map changes (data, colours, range, interpolation). */
  readonly key: string;
  /** The method whose map is shown ("attention" for one head) and its title ("" for a head). */
  readonly method: Method;
  readonly methodTitle: string;
  /** What a head's values are, as its title names them: "attention", or "difference", "attribution"... */
  readonly valueLabel: string;
  /** Outline the smallest set of patches holding this share of the map (DINO mask); 0 for none. */
  readonly maskMass: number;
  /** How the kernel pooled matrix cells that cover several tokens: "max" or "mean". */
  readonly pooling: Pooling;
}

export interface OverlayActions extends ControlActions {
  close(): void;
  resetQuery(): void;
  setQuery(token: number): void;
  /** Show `region` of the matrix (tokens), or the whole matrix for `null`. */
  zoom(region: TokenRegion | null): void;
}

const HEAT_MAX_PIXELS = 1024;
/** The panel's padding and border on both sides, CSS pixels (see styles.ts). */
const PANEL_FRAME = 18;
export class OverlayPanel {
  readonly root: HTMLDivElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly colorBar: HTMLCanvasElement;
  private readonly title: HTMLSpanElement;
  private readonly note: HTMLSpanElement;
  private readonly readout: HTMLDivElement;
  private readonly queryText: HTMLSpanElement;
  private readonly resetButton: HTMLButtonElement;
  private readonly zoomOutButton: HTMLButtonElement;
  /** The cell a drag on the matrix started from and the cell under the pointer now. */
  private drag: { from: { row: number; col: number }; to: { row: number; col: number } } | null = null;
  private dragged = false;
  private readonly notice: HTMLDivElement;
  private readonly controls: OverlayControls;
  private readonly heat: HTMLCanvasElement;
  private heatKey = "";
  private scene: OverlayScene | null = null;
  private geometry: PictureLayout | null = null;
  private cursor: { row: number; col: number } | null = null;
  private draws = 0;
  private picture: Picture | null = null;

  /** What "Save PNG" draws of the overlay while it is shown: its canvases and its title. */
  snapshotParts(): { canvases: HTMLCanvasElement[]; texts: HTMLElement[] } {
    if (this.root.hidden) return { canvases: [], texts: [] };
    return { canvases: [this.canvas, this.colorBar], texts: [this.title] };
  }

  constructor(doc: Document, private readonly actions: OverlayActions) {
    this.title = element(doc, "span", { testId: "attnwidget-overlay-title" });
    this.note = element(doc, "span", { className: "aw-badge" });
    const close = element(doc, "button", { testId: "attnwidget-overlay-close", text: "×", attrs: { type: "button", "aria-label": "Close", title: "Close (Escape)" } });
    this.canvas = element(doc, "canvas", { className: "aw-picture", testId: "attnwidget-overlay-canvas", attrs: { tabindex: "0", "data-lm-suppress-shortcuts": "true" } });
    this.colorBar = element(doc, "canvas", { testId: "attnwidget-overlay-colorbar" });
    this.readout = element(doc, "div", { className: "aw-readout", testId: "attnwidget-readout", attrs: { "aria-live": "polite" } });
    this.queryText = element(doc, "span", { testId: "attnwidget-query" });
    this.resetButton = element(doc, "button", { testId: "attnwidget-reset-query", text: "Reset query", attrs: { type: "button" } });
    this.zoomOutButton = element(doc, "button", { testId: "attnwidget-zoom-out", text: "Whole matrix", attrs: { type: "button", title: "Zoom out to the whole matrix" } });
    this.notice = element(doc, "div", { className: "aw-notice", testId: "attnwidget-notice", attrs: { role: "status" } });
    this.controls = new OverlayControls(doc, actions);
    this.heat = doc.createElement("canvas");

    this.root = element(doc, "div", { className: "aw-overlay", testId: "attnwidget-overlay", attrs: { role: "region", "aria-label": "Attention head" } }, [
      element(doc, "div", { className: "aw-overlay-head" }, [element(doc, "span", {}, [this.title, doc.createTextNode(" "), this.note]), close]),
      this.canvas,
      this.colorBar,
      this.readout,
      element(doc, "div", { className: "aw-query" }, [doc.createTextNode("Query: "), this.queryText, doc.createTextNode(" "), this.resetButton, doc.createTextNode(" "), this.zoomOutButton]),
      this.notice,
      this.controls.root,
    ]);
    this.root.hidden = true;

    close.addEventListener("click", () => actions.close());
    this.resetButton.addEventListener("click", () => actions.resetQuery());
    this.zoomOutButton.addEventListener("click", () => actions.zoom(null));
    this.canvas.addEventListener("pointerdown", (event) => this.startDrag(event));
    this.canvas.addEventListener("pointerup", () => this.endDrag());
    this.canvas.addEventListener("pointermove", (event) => this.hover(canvasPoint(this.canvas, event)));
    this.canvas.addEventListener("pointerleave", () => this.hover(null));
    this.canvas.addEventListener("click", (event) => {
      if (this.dragged) this.dragged = false; // the end of a drag, not a click
      else this.click(canvasPoint(this.canvas, event));
    });
    this.canvas.addEventListener("keydown", (event) => this.key(event));
  }

  /** Uses a decoded picture (or none) from now on. */
  setPicture(picture: Picture | null): void {
    this.picture = picture;
    if (this.scene) this.draw();
  }

  /** Shows the panel with `scene`. */
  show(scene: OverlayScene): void {
    const previous = this.scene;
    if (previous && (previous.layer !== scene.layer || previous.head !== scene.head || previous.mode !== scene.mode || previous.method !== scene.method)) this.cursor = null;
    this.scene = scene;
    this.root.hidden = false;
    // As wide as its picture: long read-outs and titles wrap instead of widening the panel.
    this.root.style.width = `${Math.max(64, Math.round(scene.maxSide)) + PANEL_FRAME}px`;
    const matrixTitle = scene.valueLabel === "attention" ? "token × token" : `${scene.valueLabel}, token × token`;
    syncText(this.title, scene.methodTitle || `l=${scene.layer} h=${scene.head} · ${scene.mode === "query" ? `${scene.valueLabel} from the query` : matrixTitle}`);
    syncText(this.note, `(${scene.valuesNote})`);
    syncText(this.queryText, describeQuery(scene.shape, scene.query));
    this.resetButton.disabled = !scene.canResetQuery;
    syncText(this.notice, scene.notice);
    const queryMode = scene.mode === "query";
    this.controls.sync({ queryMode, alpha: scene.alpha, interpolation: scene.interpolation, colormap: scene.colormap, maskMass: scene.maskMass });
    this.zoomOutButton.hidden = queryMode || !scene.matrix || !isZoomed(scene.matrix, scene.shape.queryCount, scene.shape.tokenCount);
    this.draw();
    this.updateReadout();
  }

  /** Hides the panel. */
  hide(): void {
    this.root.hidden = true;
    this.scene = null;
    this.cursor = null;
    this.drag = null;
  }

  private draw(): void {
    const scene = this.scene;
    if (!scene) return;
    if (scene.mode === "query") this.drawPicture(scene);
    else this.drawMatrix(scene);
    this.draws += 1;
    this.canvas.dataset.draws = String(this.draws);
    // Fixed to the picture's width, so the controls wrap below it instead of widening the panel.
    this.root.style.width = `${Math.max(this.geometry?.width ?? 0, 280) + 18}px`;
    const context = sizeCanvas(this.colorBar, Math.min(320, Math.max(200, this.geometry?.width ?? 200)), 44);
    if (context) {
      context.clearRect(0, 0, this.colorBar.width, this.colorBar.height);
      drawColorBar(context, { x: 4, y: 4, width: Math.min(312, Math.max(192, (this.geometry?.width ?? 200) - 8)), height: 10 }, scene.lut, scene.range, scene.rangeCaption, textColor(this.root), 11);
    }
  }

  private drawPicture(scene: OverlayScene): void {
    const { gh, gw } = scene.shape;
    const picture = scene.picture;
    const size = this.picture ? [this.picture.width, this.picture.height] : (picture.imageSize ?? [Math.max(1, gw), Math.max(1, gh)]);
    const geometry = pictureLayout(size[0], size[1], scene.maxSide, picture.cropBox, gridCoverage(gh, gw, picture.inputSize, picture.patchSize));
    this.geometry = geometry;
    this.describe(scene, `${gh},${gw}`, geometry.grid);
    const context = sizeCanvas(this.canvas, geometry.width, geometry.height);
    if (!context) return;
    context.clearRect(0, 0, geometry.width, geometry.height);
    if (this.picture) {
      context.imageSmoothingEnabled = true;
      context.drawImage(this.picture.source, 0, 0, geometry.width, geometry.height);
    } else {
      context.fillStyle = "rgba(128, 128, 128, 0.25)";
      context.fillRect(0, 0, geometry.width, geometry.height);
    }
    if (scene.map && gh > 0 && gw > 0) {
      const ratio = devicePixelRatio(this.canvas);
      const width = Math.max(1, Math.min(HEAT_MAX_PIXELS, Math.round(geometry.grid.width * ratio)));
      const height = Math.max(1, Math.min(HEAT_MAX_PIXELS, Math.round(geometry.grid.height * ratio)));
      const key = `${scene.key}|${width}x${height}`;
      if (key !== this.heatKey) this.paintHeat(scene, scene.map, width, height);
      this.heatKey = key;
      context.globalAlpha = scene.alpha;
      context.drawImage(this.heat, geometry.grid.x, geometry.grid.y, geometry.grid.width, geometry.grid.height);
      context.globalAlpha = 1;
    }
    dimOutsideCrop(context, geometry);
    const cells = drawMasks(context, scene, geometry.grid);
    this.canvas.dataset.maskCells = String(cells.mask);
    this.canvas.dataset.highNormCells = String(cells.highNorm);
    outlineQueryPatches(context, scene, geometry.grid);
    if (this.cursor) outline(context, cellRect(geometry.grid, gh, gw, this.cursor.row, this.cursor.col), [2, 2]);
  }

  private drawMatrix(scene: OverlayScene): void {
    const side = Math.max(64, Math.round(scene.maxSide));
    const window = scene.matrix;
    this.geometry = { width: side, height: side, crop: { x: 0, y: 0, width: side, height: side }, grid: { x: 0, y: 0, width: side, height: side } };
    this.describe(scene, window ? `${window.height},${window.width}` : "0,0", this.geometry.grid);
    this.canvas.dataset.window = window ? [...window.rows, ...window.columns].join(",") : "";
    const context = sizeCanvas(this.canvas, side, side);
    if (!context) return;
    context.clearRect(0, 0, side, side);
    if (!window || window.height === 0 || window.width === 0) {
      context.fillStyle = "rgba(128, 128, 128, 0.25)";
      context.fillRect(0, 0, side, side);
      return;
    }
    const pixels = Math.round(side * devicePixelRatio(this.canvas));
    const [height, width] = [Math.min(window.height, pixels), Math.min(window.width, pixels)];
    const key = `${scene.key}|${window.rows}|${window.columns}|${height}x${width}`;
    if (key !== this.heatKey) {
      const pooled = height < window.height || width < window.width;
      this.paintValues(scene, pooled ? maxPool(window.values, window.width, window.height, width, height) : window.values, width, height);
    }
    this.heatKey = key;
    context.imageSmoothingEnabled = false;
    context.drawImage(this.heat, 0, 0, side, side);
    if (scene.shape.causal) drawCausalWindow(context, this.geometry.grid, window);
    divideSpecialTokens(context, side, window, scene.shape.specialTokens.length);
    if (this.drag) {
      outlineCells(context, this.geometry.grid, window, this.drag.from, this.drag.to);
    } else if (this.cursor) {
      outline(context, cellRect(this.geometry.grid, window.height, window.width, this.cursor.row, this.cursor.col), [2, 2]);
    }
  }

  private paintHeat(scene: OverlayScene, map: Float32Array, width: number, height: number): void {
    const { gh, gw } = scene.shape;
    this.paintValues(scene, upsample(map, gw, gh, width, height, scene.interpolation), width, height);
  }

  private paintValues(scene: OverlayScene, values: Float32Array, width: number, height: number): void {
    this.heat.width = width;
    this.heat.height = height;
    const context = this.heat.getContext("2d");
    if (!context) return;
    const image = context.createImageData(width, height);
    const [lo, hi] = scene.range ?? [NaN, NaN];
    paintValues(values, width, height, lo, hi, scene.lut, { pixels: image.data, stride: width, x: 0, y: 0 });
    context.putImageData(image, 0, 0);
  }

  private describe(scene: OverlayScene, grid: string, rect: Rect): void {
    const data = this.canvas.dataset;
    data.mode = scene.mode;
    data.method = scene.method;
    data.layer = String(scene.layer);
    data.head = String(scene.head);
    data.grid = grid;
    data.gridRect = JSON.stringify([rect.x, rect.y, rect.width, rect.height]);
    this.canvas.setAttribute(
      "aria-label",
      scene.methodTitle
        ? `${scene.methodTitle} over the picture.`
        : scene.mode === "query"
        ? `Layer ${scene.layer} head ${scene.head} over the picture. Arrow keys move a patch cursor, Enter makes it the query.`
        : `Layer ${scene.layer} head ${scene.head}, token by token matrix. Arrow keys move a cell cursor.`,
    );
  }

  /** The cells under the pointer / cursor: the patch grid, or the matrix. */
  private cells(): { rows: number; cols: number } | null {
    const scene = this.scene;
    if (!scene) return null;
    if (scene.mode === "query") return { rows: scene.shape.gh, cols: scene.shape.gw };
    return { rows: scene.matrix?.height ?? 0, cols: scene.matrix?.width ?? 0 };
  }

  private cellUnder(point: { x: number; y: number }): { row: number; col: number } | null {
    const cells = this.cells();
    if (!cells || !this.geometry || cells.rows === 0 || cells.cols === 0) return null;
    return cellAt(this.geometry.grid, cells.rows, cells.cols, point.x, point.y);
  }

  private hover(point: { x: number; y: number } | null): void {
    const cell = point ? this.cellUnder(point) : null;
    if (this.drag && cell && (cell.row !== this.drag.to.row || cell.col !== this.drag.to.col)) this.drag.to = cell;
    if (cell?.row === this.cursor?.row && cell?.col === this.cursor?.col) return;
    this.cursor = cell;
    this.draw();
    this.updateReadout();
  }

  private click(point: { x: number; y: number }): void {
    const cell = this.cellUnder(point);
    const scene = this.scene;
    if (!cell || !scene) return;
    if (scene.mode === "query") {
      if (patchesAreQueries(scene.shape)) this.actions.setQuery(patchToken(scene.shape, cell.row, cell.col));
    }
    // A row of one token a cell is one query token: make it the query.
    else if (scene.matrix && isOneTokenPerCell(scene.matrix)) this.actions.setQuery(scene.matrix.rows[0] + cell.row);
  }

  private startDrag(event: PointerEvent): void {
    const cell = this.scene?.mode === "matrix" && event.button === 0 ? this.cellUnder(canvasPoint(this.canvas, event)) : null;
    this.drag = cell ? { from: cell, to: cell } : null;
    this.dragged = false;
  }

  /** A drag over more than one cell zooms into the tokens under it. */
  private endDrag(): void {
    const drag = this.drag;
    const window = this.scene?.matrix;
    this.drag = null;
    if (!drag || !window) return;
    if (drag.from.row === drag.to.row && drag.from.col === drag.to.col) return;
    this.dragged = true;
    this.actions.zoom(regionBetween(window, drag.from, drag.to));
  }

  private key(event: KeyboardEvent): void {
    const cells = this.cells();
    if (!cells || cells.rows === 0) return;
    const moves: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const move = moves[event.key];
    if (move) {
      const from = this.cursor ?? { row: 0, col: 0 };
      const to = this.cursor
        ? { row: clamp(from.row + move[0], cells.rows - 1), col: clamp(from.col + move[1], cells.cols - 1) }
        : from;
      this.cursor = to;
      this.draw();
      this.updateReadout();
    } else if (event.key === "Enter" && this.cursor && this.scene?.mode === "query" && patchesAreQueries(this.scene.shape)) {
      this.actions.setQuery(patchToken(this.scene.shape, this.cursor.row, this.cursor.col));
    } else {
      return;
    }
    // Handled here: keep the notebook from also acting on the key (e.g. moving between cells).
    event.preventDefault();
    event.stopPropagation();
  }

  private updateReadout(): void {
    const scene = this.scene;
    if (!scene) return;
    const text = scene.mode === "query" ? queryReadout(scene, this.cursor) : matrixReadout(scene, this.cursor);
    syncText(this.readout, text);
  }
}

function clamp(value: number, max: number): number {
  return Math.min(max, Math.max(0, value));
}
