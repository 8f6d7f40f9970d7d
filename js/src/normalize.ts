/**
 * Colour normalisation of the grid: which [lo, hi] each tile's values are scaled to.
 *
 * Tiles are numbered row-major (`tile = row * cols + col`, the contract's row `r = i * len(heads) + j`).
 * A tile without data has the range [NaN, NaN] and does not count towards layer or global ranges.
 */
import { type ColormapName, DIVERGING_COLORMAPS, type NormalizeScope } from "./contract";
import { isOneOf } from "./model";

/** Whether `colormap` is drawn centred on zero (a diverging one, for signed values). */
export function isDiverging(colormap: ColormapName): boolean {
  return isOneOf(DIVERGING_COLORMAPS, colormap);
}

/** The range symmetric about zero that holds `[lo, hi]` (NaN stays NaN): zero gets the middle colour (`attnwidget.render.centred_range`). */
export function centredRange(lo: number, hi: number): [number, number] {
  const reach = Math.max(Math.abs(lo), Math.abs(hi));
  return [-reach, reach];
}

/** `range` centred on zero when `centred`, else as it is; `null` stays `null`. */
export function centredIf(centred: boolean, range: [number, number] | null): [number, number] | null {
  return centred && range ? centredRange(range[0], range[1]) : range;
}

/** [min, max] of `values[start .. end - 1]`, ignoring NaN; [NaN, NaN] when nothing is left. */
export function valueRange(values: ArrayLike<number>, start = 0, end = values.length): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = start; i < end; i++) {
    const v = values[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [NaN, NaN];
}

/**
 * The range each tile is drawn with, `[lo, hi]` per tile (flat `Float32Array` of `2 * rows * cols`),
 * from each tile's own range `tileRanges` (same layout): its own for "head", the envelope of its grid
 * row for "layer", the envelope of all tiles for "global"; with `centred`, each made symmetric about
 * zero (diverging colormaps). Tiles without data keep [NaN, NaN].
 */
export function displayRanges(
  scope: NormalizeScope,
  tileRanges: Float32Array,
  rows: number,
  cols: number,
  centred = false,
): Float32Array {
  const out = new Float32Array(rows * cols * 2);
  const envelope = (first: number, count: number): [number, number] => valueRange(tileRanges, first * 2, (first + count) * 2);
  const global = scope === "global" ? envelope(0, rows * cols) : null;
  for (let row = 0; row < rows; row++) {
    const shared = global ?? (scope === "layer" ? envelope(row * cols, cols) : null);
    for (let col = 0; col < cols; col++) {
      const tile = row * cols + col;
      const hasData = !Number.isNaN(tileRanges[tile * 2]);
      const lo = hasData ? (shared ? shared[0] : tileRanges[tile * 2]) : NaN;
      const hi = hasData ? (shared ? shared[1] : tileRanges[tile * 2 + 1]) : NaN;
      [out[tile * 2], out[tile * 2 + 1]] = centred ? centredRange(lo, hi) : [lo, hi];
    }
  }
  return out;
}

/**
 * The range the colour bar labels: the global range for "global", otherwise the range of the
 * focused (selected) tile; `null` when there is nothing to show.
 */
export function colorBarRange(
  scope: NormalizeScope,
  ranges: Float32Array,
  focusTile: number | null,
): [number, number] | null {
  const tile = scope === "global" ? firstTileWithData(ranges) : focusTile;
  if (tile === null || tile < 0 || tile * 2 + 1 >= ranges.length) return null;
  const lo = ranges[tile * 2];
  const hi = ranges[tile * 2 + 1];
  return Number.isNaN(lo) || Number.isNaN(hi) ? null : [lo, hi];
}

function firstTileWithData(ranges: Float32Array): number | null {
  for (let tile = 0; tile * 2 < ranges.length; tile++) if (!Number.isNaN(ranges[tile * 2])) return tile;
  return null;
}
