/** The view's captions and notes, as text: pure, no DOM. */
import { VALUE_KIND_LABELS } from "./contract";
import type { GridShape, ViewState } from "./model";
import { isDiverging } from "./normalize";
import { type MatrixWindow, isOneTokenPerCell, isZoomed } from "./window";

/** " 90%": a ratio as the discard slider's readout. */
export function percent(ratio: number): string {
  return ` ${Math.round(ratio * 100)}%`;
}

export function rangeCaption(state: ViewState, hasSelection: boolean): string {
  if (state.normalize === "global") return withValueKind(state, "colour range: all tiles (global)");
  if (!hasSelection || !state.selected) return withValueKind(state, `colour range: per ${state.normalize}; select a tile to read it`);
  const [layer, head] = state.selected;
  return withValueKind(state, state.normalize === "layer" ? `colour range: layer l=${layer} (per layer)` : `colour range: l=${layer} h=${head} (per head)`);
}

/** `caption` led by what the values are when they are not attention weights, and "centred on 0" for a diverging colormap. */
export function withValueKind(state: ViewState, caption: string): string {
  const kind = state.valueKind === "attention" ? "" : `${VALUE_KIND_LABELS[state.valueKind]} · `;
  return `${kind}${caption}${isDiverging(state.colormap) ? ", centred on 0" : ""}`;
}

/** Where the overlay's values come from, and how the matrix window shown is pooled (matrix view). */
export function valuesNote(exact: boolean, queryView: boolean, local: boolean, window: MatrixWindow | null, shape: GridShape, pooling: string): string {
  if (queryView) return exact ? "exact values" : local ? "computed here from the matrices, 8-bit" : "8-bit values";
  const rows = window ? window.rows[1] - window.rows[0] : 0;
  const columns = window ? window.columns[1] - window.columns[0] : 0;
  const whole = !window || !isZoomed(window, shape.queryCount, shape.tokenCount);
  // A whole square matrix reads "N tokens"; a zoomed region always names both sides.
  const tokens = whole && rows === columns ? `${rows} tokens` : `${rows} × ${columns} tokens`;
  const pooled = window && !isOneTokenPerCell(window) ? `, ${pooling}-pooled to ${window.height} × ${window.width} of ${tokens}` : whole ? "" : `, ${tokens}`;
  return `${exact ? "exact values" : "8-bit values"}${pooled}`;
}

export function pendingNotice(shape: GridShape): string {
  const why =
    shape.matrixSize > 0 && shape.matrixSize < shape.tokenCount
      ? `the matrices here are pooled (${shape.matrixSize} of ${shape.tokenCount} tokens)`
      : "there are no full-resolution matrices here";
  return `A new query needs a running kernel: ${why}, so the maps cannot be recomputed in the browser. The maps still show the previous query.`;
}
