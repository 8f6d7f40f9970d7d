/**
 * Causal masks of decoder self-attention: query `i` sees keys `0..i` only. The keys it cannot see
 * are drawn as a grey region, apart from keys it sees and ignores (dark, value 0), on pooled
 * matrices too, where cell `c` of `size` covers tokens `cellTokenRange(c, tokens, size)`.
 */
import { type Rect, cellTokenRange } from "./layout";

/** The grey that marks keys a query cannot see. */
export const MASKED = "rgba(190, 190, 190, 0.92)";

/** The first column of row `row` whose keys all come after every query of the row (`size` if none). */
export function maskedFrom(row: number, size: number, tokens: number): number {
  if (size <= 0 || tokens <= 0) return size;
  if (size === tokens) return row + 1;
  const lastQuery = cellTokenRange(row, tokens, size)[1];
  for (let col = 0; col < size; col++) if (cellTokenRange(col, tokens, size)[0] > lastQuery) return col;
  return size;
}

/** Greys the masked cells of a `size x size` matrix drawn in `rect`. */
export function drawCausalMask(context: CanvasRenderingContext2D, rect: Rect, size: number, tokens: number): void {
  if (size <= 0) return;
  const cell = { width: rect.width / size, height: rect.height / size };
  const region = new Path2D(); // one fill: no seams between the rows
  for (let row = 0; row < size; row++) {
    const from = maskedFrom(row, size, tokens);
    if (from >= size) continue;
    const x = rect.x + from * cell.width;
    region.rect(x, rect.y + row * cell.height, rect.x + rect.width - x, cell.height);
  }
  context.save();
  context.fillStyle = MASKED;
  context.fill(region);
  context.restore();
}
