/**
 * A window onto a head's token x token matrix: query tokens `rows` x key tokens `columns` (first,
 * stop), drawn as `height x width` cells. The whole matrix is one window; zooming in asks the kernel
 * for a smaller one, exact up to 1024 tokens a side. Cell `c` of `n` over `span` tokens covers the
 * tokens `cellTokenRange(c, span, n)` from the window's first token, as torch's adaptive pooling does.
 */
import { cellTokenRange } from "./layout";

export type TokenSpan = readonly [number, number];

export interface MatrixWindow {
  /** `height * width` values, row-major. */
  readonly values: Float32Array;
  readonly height: number;
  readonly width: number;
  /** Query tokens [first, stop). */
  readonly rows: TokenSpan;
  /** Key tokens [first, stop). */
  readonly columns: TokenSpan;
}

/** A region of the matrix, in tokens: what a zoom asks for. */
export interface TokenRegion {
  readonly rows: TokenSpan;
  readonly columns: TokenSpan;
}

/** The whole `height x width` matrix of `queries` x `keys` tokens (pooled when it has fewer cells). */
export function wholeMatrix(values: Float32Array, height: number, width: number, queries: number, keys: number): MatrixWindow {
  return { values, height, width, rows: [0, queries], columns: [0, keys] };
}

/** The window shows less than the whole matrix of `queries` x `keys` tokens. */
export function isZoomed(window: TokenRegion, queries: number, keys: number): boolean {
  return window.rows[0] > 0 || window.columns[0] > 0 || window.rows[1] < queries || window.columns[1] < keys;
}

/** Tokens (first, last: inclusive) under cell `index` of an axis of `cells` cells over `span`. */
export function cellTokens(span: TokenSpan, cells: number, index: number): [number, number] {
  const [first, last] = cellTokenRange(index, span[1] - span[0], cells);
  return [span[0] + first, span[0] + last];
}

/** Every cell is one query token and one key token. */
export function isOneTokenPerCell(window: MatrixWindow): boolean {
  return window.height === window.rows[1] - window.rows[0] && window.width === window.columns[1] - window.columns[0];
}

/** The tokens under the cells from `a` to `b` (either corner first). */
export function regionBetween(window: MatrixWindow, a: { row: number; col: number }, b: { row: number; col: number }): TokenRegion {
  const rows = [cellTokens(window.rows, window.height, Math.min(a.row, b.row))[0], cellTokens(window.rows, window.height, Math.max(a.row, b.row))[1] + 1] as const;
  const columns = [cellTokens(window.columns, window.width, Math.min(a.col, b.col))[0], cellTokens(window.columns, window.width, Math.max(a.col, b.col))[1] + 1] as const;
  return { rows, columns };
}

/** The region cut from a whole matrix with one cell per token; `null` when it is pooled. */
export function cutRegion(whole: MatrixWindow, region: TokenRegion): MatrixWindow | null {
  if (!isOneTokenPerCell(whole) || whole.rows[0] !== 0 || whole.columns[0] !== 0) return null;
  const [top, bottom] = region.rows;
  const [left, right] = region.columns;
  if (!(0 <= top && top < bottom && bottom <= whole.height && 0 <= left && left < right && right <= whole.width)) return null;
  const width = right - left;
  const values = new Float32Array((bottom - top) * width);
  for (let row = top; row < bottom; row++) values.set(whole.values.subarray(row * whole.width + left, row * whole.width + right), (row - top) * width);
  return { values, height: bottom - top, width, rows: region.rows, columns: region.columns };
}

export function sameRegion(a: TokenRegion | null, b: TokenRegion | null): boolean {
  if (!a || !b) return a === b;
  return a.rows[0] === b.rows[0] && a.rows[1] === b.rows[1] && a.columns[0] === b.columns[0] && a.columns[1] === b.columns[1];
}
