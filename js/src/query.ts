/**
 * Attention maps for a new query computed in the browser from full-resolution matrices
 * (`matrix_size == token_count`), so a click on a patch works with no kernel (saved notebooks).
 */
import { type EncodedRows, decodeRowsInto } from "./decode";

export interface QueryMaps {
  /** `tiles x patches`: mean over the query rows of the attention to each patch key. */
  readonly maps: Float32Array;
  /** `tiles x specialCount`: mean over the query rows of the attention to each special key. */
  readonly specials: Float32Array;
}

/**
 * The query rows of each tile's `tokens x tokens` matrix (query x key), averaged, split into the
 * special keys (first `specialCount` columns) and the patch keys (the rest), as the kernel's
 * `reduce.query_rows` does before it splits them into `specials` and `maps`. `matrices` holds `tiles * tokens` rows of `tokens` values.
 */
export function localQueryMaps(
  matrices: EncodedRows,
  tiles: number,
  tokens: number,
  specialCount: number,
  query: readonly number[],
): QueryMaps {
  if (matrices.columns !== tokens || matrices.rows !== tiles * tokens) {
    throw new Error(
      `matrices: ${matrices.rows} rows of ${matrices.columns} values do not hold ${tiles} full ${tokens} x ${tokens} matrices`,
    );
  }
  if (query.length === 0 || query.some((t) => !Number.isInteger(t) || t < 0 || t >= tokens)) {
    throw new Error(`query ${JSON.stringify(query)} is not a list of token indices below ${tokens}`);
  }
  const patches = tokens - specialCount;
  const maps = new Float32Array(tiles * patches);
  const specials = new Float32Array(tiles * specialCount);
  const sum = new Float64Array(tokens);
  const row = new Float32Array(tokens);
  for (let tile = 0; tile < tiles; tile++) {
    sum.fill(0);
    for (const token of query) {
      decodeRowsInto(matrices, tile * tokens + token, 1, row);
      for (let key = 0; key < tokens; key++) sum[key] += row[key];
    }
    for (let key = 0; key < tokens; key++) {
      const mean = sum[key] / query.length;
      if (key < specialCount) specials[tile * specialCount + key] = mean;
      else maps[tile * patches + key - specialCount] = mean;
    }
  }
  return { maps, specials };
}
