/** The overlay's read-outs: what the patch or matrix cell under the cursor holds, as text. Pure: no DOM. */
import type { GridShape } from "./model";
import type { OverlayScene } from "./overlay";
import { formatValue, patchToken, queryName, tokenName } from "./tokens";
import { type TokenSpan, cellTokens, isOneTokenPerCell } from "./window";

export const IDLE_READOUT = "Hover the picture to read values; click a patch to make it the query.";
/** Queries that are not the picture's patches (generated tokens): a patch cannot become the query. */
export const IDLE_KEYS_READOUT = "Hover the picture to read values; choose the query among the tokens above.";
export const IDLE_MATRIX_READOUT = "Hover the matrix to read values: rows are queries, columns are keys. Drag across it to zoom in.";

/** The read-out of the query view for the patch under the cursor. */
export function queryReadout(scene: OverlayScene, cell: { row: number; col: number } | null): string {
  if (!cell) return patchesAreQueries(scene.shape) ? IDLE_READOUT : IDLE_KEYS_READOUT;
  const { shape, map, specials } = scene;
  const token = patchToken(shape, cell.row, cell.col);
  const value = map ? map[cell.row * shape.gw + cell.col] : NaN;
  const lines = [`patch (${cell.row}, ${cell.col}) · token ${token} · ${formatValue(value)}`];
  if (specials && shape.specialTokens.length > 0) {
    const named = shape.specialTokens.map((name, i) => `${name} ${formatValue(specials[i] ?? NaN)}`);
    lines.push(`to special tokens: ${named.join(" · ")}`);
  }
  return lines.join("\n");
}

/** The read-out of the matrix view for the cell (query row, key column) under the cursor. */
export function matrixReadout(scene: OverlayScene, cell: { row: number; col: number } | null): string {
  if (!cell || !scene.matrix) return IDLE_MATRIX_READOUT;
  const window = scene.matrix;
  const value = formatValue(window.values[cell.row * window.width + cell.col]);
  const query = windowCellName(scene.shape, "query", window.rows, window.height, cell.row);
  const key = windowCellName(scene.shape, "key", window.columns, window.width, cell.col);
  return `query ${query} → key ${key} · ${isOneTokenPerCell(window) ? value : `${scene.pooling} ${value}`}`;
}

/**
 * The token(s) of row (`"query"`) or column (`"key"`) `index` of the whole matrix drawn in `cells`
 * cells along that axis: "CLS (token 0)", or "tokens 4–7" when pooled.
 */
export function matrixCellName(shape: GridShape, axis: "query" | "key", index: number, cells: number): string {
  return windowCellName(shape, axis, [0, axis === "query" ? shape.queryCount : shape.tokenCount], cells, index);
}

/** The token(s) of cell `index` of `cells` over the tokens `span` of an axis. */
function windowCellName(shape: GridShape, axis: "query" | "key", span: TokenSpan, cells: number, index: number): string {
  const [first, last] = cellTokens(span, cells, index);
  if (first !== last) return `tokens ${first}–${last}`;
  return `${axis === "query" ? queryName(shape, first) : tokenName(shape, first)} (token ${first})`;
}

/** Whether a patch of the picture can be the query: not where the queries are other tokens (the
 * generated tokens of a vision-language model, `query_labels`). */
export function patchesAreQueries(shape: GridShape): boolean {
  return shape.queryLabels.length === 0;
}
