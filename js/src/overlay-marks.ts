/**
 * Marks drawn over the overlay's canvas: outlines of cells and regions (white over a dark halo,
 * visible on any picture), the contours of the DINO mask and of high-norm tokens, the picture dimmed
 * outside the region the model saw, and the lines that set the special tokens apart in a matrix.
 */
import type { PictureLayout, Rect } from "./layout";
import { highNormMask, maskEdges, massMask } from "./mask";
import { HIGH_NORM_FACTOR } from "./contract";
import type { OverlayScene } from "./overlay";
import type { MatrixWindow } from "./window";

/** Most query patches outlined: more would just frame the grid. */
const QUERY_PATCHES_OUTLINED = 64;

export function cellRect(rect: Rect, rows: number, cols: number, row: number, col: number): Rect {
  const width = rect.width / cols;
  const height = rect.height / rows;
  return { x: rect.x + col * width, y: rect.y + row * height, width, height };
}

/** A white line over a dark halo, visible on any picture. */
export function outline(context: CanvasRenderingContext2D, rect: Rect, dash: number[]): void {
  context.setLineDash(dash);
  for (const [color, width] of [["rgba(0, 0, 0, 0.7)", 3], ["#fff", 1.5]] as const) {
    context.strokeStyle = color;
    context.lineWidth = width;
    context.strokeRect(rect.x + 0.75, rect.y + 0.75, Math.max(0, rect.width - 1.5), Math.max(0, rect.height - 1.5));
  }
  context.setLineDash([]);
}

/**
 * Contours over the patch grid: the DINO mask (white on a dark halo, readable on any picture) and,
 * on a token-norm map, the high-norm tokens (dashed red). Returns how many cells each holds.
 */
export function drawMasks(context: CanvasRenderingContext2D, scene: OverlayScene, grid: Rect): { mask: number; highNorm: number } {
  const mask = scene.map && scene.maskMass > 0 ? massMask(scene.map, scene.maskMass) : null;
  const highNorm = scene.map && scene.method === "token-norms" ? highNormMask(scene.map, HIGH_NORM_FACTOR) : null;
  context.save();
  context.lineCap = "round";
  if (mask) {
    const path = contour(mask, scene.shape, grid);
    context.strokeStyle = "rgba(0, 0, 0, 0.7)";
    context.lineWidth = 4;
    context.stroke(path);
    context.strokeStyle = "white";
    context.lineWidth = 2;
    context.stroke(path);
  }
  if (highNorm) {
    const path = contour(highNorm, scene.shape, grid);
    context.strokeStyle = "white";
    context.lineWidth = 3;
    context.stroke(path);
    context.setLineDash([4, 3]);
    context.strokeStyle = "#e0103a";
    context.lineWidth = 2;
    context.stroke(path);
  }
  context.restore();
  return { mask: countCells(mask), highNorm: countCells(highNorm) };
}

function countCells(mask: Uint8Array | null): number {
  return mask ? mask.reduce((sum, kept) => sum + kept, 0) : 0;
}

/** The outline of a cell mask over the patch grid drawn in `grid`. */
function contour(mask: Uint8Array, shape: { gh: number; gw: number }, grid: Rect): Path2D {
  const { gh, gw } = shape;
  const path = new Path2D();
  for (const [x0, y0, x1, y1] of maskEdges(mask, gh, gw)) {
    path.moveTo(grid.x + (x0 * grid.width) / gw, grid.y + (y0 * grid.height) / gh);
    path.lineTo(grid.x + (x1 * grid.width) / gw, grid.y + (y1 * grid.height) / gh);
  }
  return path;
}

/** Dims the picture outside the region the model saw (`crop`) and outlines that region. */
export function dimOutsideCrop(context: CanvasRenderingContext2D, geometry: PictureLayout): void {
  const { crop, width, height } = geometry;
  if (crop.width >= width - 0.5 && crop.height >= height - 0.5) return;
  context.fillStyle = "rgba(0, 0, 0, 0.5)";
  context.fillRect(0, 0, width, crop.y);
  context.fillRect(0, crop.y + crop.height, width, height - crop.y - crop.height);
  context.fillRect(0, crop.y, crop.x, crop.height);
  context.fillRect(crop.x + crop.width, crop.y, width - crop.x - crop.width, crop.height);
  outline(context, crop, [6, 4]);
}

/** Outlines the query's patches on the patch grid (a few of them; never the whole grid). */
export function outlineQueryPatches(context: CanvasRenderingContext2D, scene: OverlayScene, grid: Rect): void {
  const { gh, gw, specialTokens } = scene.shape;
  const first = specialTokens.length;
  const patches = scene.query.filter((token) => token >= first && token < first + gh * gw);
  if (patches.length > QUERY_PATCHES_OUTLINED) return;
  for (const token of patches) {
    const patch = token - first;
    outline(context, cellRect(grid, gh, gw, Math.floor(patch / gw), patch % gw), []);
  }
}

/** Lines after the `specials` first query rows and key columns of a matrix window that starts at token 0. */
export function divideSpecialTokens(context: CanvasRenderingContext2D, side: number, window: MatrixWindow, specials: number): void {
  if (specials === 0 || window.rows[0] !== 0 || window.columns[0] !== 0 || window.rows[1] <= specials) return;
  const x = (side * specials) / (window.columns[1] - window.columns[0]);
  const y = (side * specials) / (window.rows[1] - window.rows[0]);
  context.strokeStyle = "rgba(255, 255, 255, 0.8)";
  context.lineWidth = 1;
  context.beginPath();
  context.moveTo(x, 0);
  context.lineTo(x, side);
  context.moveTo(0, y);
  context.lineTo(side, y);
  context.stroke();
}

/** Outlines the cells of `window` between two corner cells (a drag), as one region. */
export function outlineCells(context: CanvasRenderingContext2D, grid: Rect, window: MatrixWindow, from: { row: number; col: number }, to: { row: number; col: number }): void {
  const first = cellRect(grid, window.height, window.width, Math.min(from.row, to.row), Math.min(from.col, to.col));
  const last = cellRect(grid, window.height, window.width, Math.max(from.row, to.row), Math.max(from.col, to.col));
  outline(context, { x: first.x, y: first.y, width: last.x + last.width - first.x, height: last.y + last.height - first.y }, [5, 3]);
}
