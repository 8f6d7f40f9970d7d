/**
 * Causal masks of decoder self-attention: query `i` sees keys `0..i` only. The keys it cannot see
 * are drawn as a grey region, apart from keys it sees and ignores (dark, value 0), on pooled
 * matrices and zoomed-in windows too, where a cell covers the tokens `cellTokens` gives.
 */
import type { Rect } from "./layout";
import { type TokenSpan, cellTokens } from "./window";

/** The grey that marks keys a query cannot see. */
export const MASKED = "rgba(190, 190, 190, 0.92)";

/** The cells of a matrix window: query tokens `rows` over `height` cells, keys `columns` over `width`. */
export interface WindowCells {
  readonly height: number;
  readonly width: number;
  readonly rows: TokenSpan;
  readonly columns: TokenSpan;
}

/** The first column of row `row` whose keys all come after every query of the row (`width` if none). */
export function maskedFromIn(cells: WindowCells, row: number): number {
  const lastQuery = cellTokens(cells.rows, cells.height, row)[1];
  let low = 0;
  let high = cells.width; // first keys grow with the column: search for the first one past lastQuery
  while (low < high) {
    const middle = (low + high) >> 1;
    if (cellTokens(cells.columns, cells.width, middle)[0] > lastQuery) high = middle;
    else low = middle + 1;
  }
  return low;
}

/** `maskedFromIn` for the whole `size x size` matrix of `tokens` tokens. */
export function maskedFrom(row: number, size: number, tokens: number): number {
  if (size <= 0 || tokens <= 0) return size;
  return maskedFromIn({ height: size, width: size, rows: [0, tokens], columns: [0, tokens] }, row);
}

/** Greys the masked cells of a matrix window drawn in `rect`. */
export function drawCausalWindow(context: CanvasRenderingContext2D, rect: Rect, cells: WindowCells): void {
  if (cells.height <= 0 || cells.width <= 0) return;
  const cell = { width: rect.width / cells.width, height: rect.height / cells.height };
  const region = new Path2D(); // one fill: no seams between the rows
  for (let row = 0; row < cells.height; row++) {
    const from = maskedFromIn(cells, row);
    if (from >= cells.width) continue;
    const x = rect.x + from * cell.width;
    region.rect(x, rect.y + row * cell.height, rect.x + rect.width - x, cell.height);
  }
  context.save();
  context.fillStyle = MASKED;
  context.fill(region);
  context.restore();
}

/** Greys the masked cells of the whole `size x size` matrix of `tokens` tokens drawn in `rect`. */
export function drawCausalMask(context: CanvasRenderingContext2D, rect: Rect, size: number, tokens: number): void {
  if (size > 0 && tokens > 0) drawCausalWindow(context, rect, { height: size, width: size, rows: [0, tokens], columns: [0, tokens] });
}
