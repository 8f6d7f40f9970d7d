import { describe, expect, it } from "vitest";
import { cellTokenRange } from "../src/layout";
import { cellTokens, cutRegion, isOneTokenPerCell, regionBetween, sameRegion, wholeMatrix } from "../src/window";

/** A 6 x 6 matrix whose value at (query q, key k) is q * 10 + k. */
const whole = wholeMatrix(Float32Array.from({ length: 36 }, (_, i) => Math.floor(i / 6) * 10 + (i % 6)), 6, 6, 6, 6);

describe("matrix windows", () => {
  it("maps cells to tokens as torch's adaptive pooling does, from the window's first token", () => {
    expect(cellTokens([0, 10], 4, 1)).toEqual(cellTokenRange(1, 10, 4));
    expect(cellTokens([100, 110], 4, 1)).toEqual(cellTokenRange(1, 10, 4).map((t) => t + 100));
    expect(cellTokens([3, 8], 5, 4)).toEqual([7, 7]);
  });

  it("turns a drag between two cells into the tokens under them, either corner first", () => {
    expect(regionBetween(whole, { row: 4, col: 1 }, { row: 2, col: 3 })).toEqual({ rows: [2, 5], columns: [1, 4] });
    const pooled = { ...whole, height: 3, width: 3 }; // cells of 2 tokens
    expect(regionBetween(pooled, { row: 1, col: 0 }, { row: 1, col: 1 })).toEqual({ rows: [2, 4], columns: [0, 4] });
  });

  it("cuts an exact region out of a whole matrix of one token a cell", () => {
    const region = cutRegion(whole, { rows: [2, 4], columns: [1, 4] });
    expect(region && [...region.values]).toEqual([21, 22, 23, 31, 32, 33]);
    expect(region && isOneTokenPerCell(region)).toBe(true);
    expect(cutRegion({ ...whole, height: 3, width: 3 }, { rows: [0, 2], columns: [0, 2] })).toBeNull(); // pooled
    expect(cutRegion(whole, { rows: [4, 7], columns: [0, 2] })).toBeNull(); // outside
  });

  it("compares regions by their tokens", () => {
    expect(sameRegion({ rows: [1, 2], columns: [3, 4] }, { rows: [1, 2], columns: [3, 4] })).toBe(true);
    expect(sameRegion({ rows: [1, 2], columns: [3, 4] }, { rows: [1, 2], columns: [3, 5] })).toBe(false);
    expect(sameRegion(null, null)).toBe(true);
  });
});
