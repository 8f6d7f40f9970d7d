/**
 * Cell masks over the patch grid and their contours: DINO mass-threshold masks (Caron et al., 2021)
 * and high-norm tokens (Darcet et al., 2023), by the rules of `attnwidget.masks` (which `to_png` and
 * `attnwidget.methods` use), checked against the fixtures Python writes.
 */

/**
 * 1 for each cell kept, 0 otherwise; `null` when `mass` is not in (0, 1] or the map is empty, has a
 * negative or NaN value or no mass. The values are sorted ascending and summed in that order; cells
 * from the first whose running sum exceeds (1 - mass) x the total are kept, and every cell tied with
 * it. Step for step `attnwidget.masks.mass_mask`, checked against its fixture.
 */
export function massMask(values: ArrayLike<number>, mass: number): Uint8Array | null {
  if (!(mass > 0 && mass <= 1) || values.length === 0) return null;
  for (let i = 0; i < values.length; i++) if (!(values[i] >= 0)) return null; // negative or NaN: no mass
  const ascending = Float64Array.from(values).sort();
  const cumulative = new Float64Array(ascending.length);
  let sum = 0;
  for (let i = 0; i < ascending.length; i++) cumulative[i] = sum += ascending[i];
  const total = sum;
  if (!(total > 0)) return null;
  const limit = (1 - mass) * total;
  const first = cumulative.findIndex((running) => running > limit);
  const threshold = ascending[first >= 0 ? first : ascending.length - 1]; // the smallest kept value
  return Uint8Array.from(values, (value) => (value >= threshold ? 1 : 0));
}

/**
 * 1 for each cell above `factor` times the median of `norms` (the lower middle value for an even
 * count, as torch's median; NaN when any norm is NaN, so nothing is flagged), 0 otherwise; `null` for
 * an empty map. Step for step `attnwidget.masks.high_norm_mask`, checked against its fixture.
 */
export function highNormMask(norms: ArrayLike<number>, factor: number): Uint8Array | null {
  if (norms.length === 0) return null;
  const sorted = Float64Array.from(norms).sort();
  const median = sorted.some(Number.isNaN) ? NaN : sorted[(sorted.length - 1) >> 1];
  return Uint8Array.from(norms, (norm) => (norm > factor * median ? 1 : 0));
}

/** Segments [x0, y0, x1, y1] in cell units along every border between kept and other cells (or the edge). */
export function maskEdges(mask: ArrayLike<number>, rows: number, cols: number): [number, number, number, number][] {
  const kept = (row: number, col: number): boolean => row >= 0 && row < rows && col >= 0 && col < cols && mask[row * cols + col] === 1;
  const edges: [number, number, number, number][] = [];
  for (let row = 0; row < rows; row++) {
    for (let col = 0; col < cols; col++) {
      if (!kept(row, col)) continue;
      if (!kept(row - 1, col)) edges.push([col, row, col + 1, row]);
      if (!kept(row + 1, col)) edges.push([col, row + 1, col + 1, row + 1]);
      if (!kept(row, col - 1)) edges.push([col, row, col, row + 1]);
      if (!kept(row, col + 1)) edges.push([col + 1, row, col + 1, row + 1]);
    }
  }
  return edges;
}
