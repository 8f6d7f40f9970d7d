/**
 * Marks drawn over the overlay's canvas: outlines of cells and regions (white over a dark halo,
 * visible on any picture) and the contours of the DINO mask and of high-norm tokens.
 */
import type { Rect } from "./layout";
import { highNormMask, maskEdges, massMask } from "./mask";
import { HIGH_NORM_FACTOR } from "./contract";
import type { OverlayScene } from "./overlay";

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
