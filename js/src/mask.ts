/**
 * Cell masks over the patch grid and their contours: DINO mass-threshold masks (Caron et al., 2021),
 * as in `attnwidget.methods.dino_mask`, and high-norm tokens, as in `attnwidget.methods.high_norm_tokens`.
 */

/** 1 for each cell kept, 0 otherwise; `null` when the map has no mass or `mass` is not in (0, 1]. */
export function massMask(values: ArrayLike<number>, mass: number): Uint8Array | null {
  if (!(mass > 0 && mass <= 1) || values.length === 0) return null;
  let total = 0;
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (!(value >= 0)) return null; // negative or NaN: no mass to threshold
    total += value;
  }
  if (!(total > 0)) return null;
  const ascending = Array.from(values, (value) => value / total).sort((a, b) => a - b);
  let cumulative = 0;
  let threshold = Infinity;
  for (const share of ascending) {
    cumulative += share;
    if (cumulative > 1 - mass) {
      threshold = share; // the smallest kept share; ties with it are kept too
      break;
    }
  }
  if (threshold === Infinity) threshold = ascending[ascending.length - 1];
  const mask = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) mask[i] = values[i] / total >= threshold ? 1 : 0;
  return mask;
}

/**
 * 1 for each cell above `factor` times the median of `norms` (the lower middle value for an even
 * count, as torch's median), 0 otherwise; `null` for an empty map or a non-positive median.
 */
export function highNormMask(norms: ArrayLike<number>, factor: number): Uint8Array | null {
  if (norms.length === 0) return null;
  const sorted = Float64Array.from(norms).sort();
  const median = sorted[(sorted.length - 1) >> 1];
  if (!(median > 0)) return null;
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
