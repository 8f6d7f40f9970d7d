import { describe, expect, it } from "vitest";
import { maskedFrom, maskedFromIn } from "../src/causal";
import { cellTokens } from "../src/window";
import { cellTokenRange } from "../src/layout";

describe("causal masks", () => {
  it("masks the keys after each query at full resolution", () => {
    expect([0, 1, 2, 3].map((row) => maskedFrom(row, 4, 4))).toEqual([1, 2, 3, 4]);
  });

  it("masks a pooled cell only when every key in it comes after every query of its row", () => {
    const tokens = 10;
    const size = 4; // cells cover tokens 0-2, 2-4, 5-7, 7-9 (adaptive windows overlap)
    for (let row = 0; row < size; row++) {
      const from = maskedFrom(row, size, tokens);
      const lastQuery = cellTokenRange(row, tokens, size)[1];
      for (let col = 0; col < size; col++) {
        const firstKey = cellTokenRange(col, tokens, size)[0];
        expect(col >= from).toBe(firstKey > lastQuery);
      }
    }
    expect(maskedFrom(3, size, tokens)).toBe(4); // the last row sees everything
  });
});

describe("causal masks of a zoomed-in window", () => {
  it("masks the cells of the window whose keys come after the row's queries", () => {
    // Queries 10..13 against keys 8..15, one token a cell: query 10 sees keys 8..10.
    const cells = { height: 4, width: 8, rows: [10, 14] as const, columns: [8, 16] as const };
    expect([0, 1, 2, 3].map((row) => maskedFromIn(cells, row))).toEqual([3, 4, 5, 6]);
  });

  it("agrees with the token ranges when the window is pooled", () => {
    const cells = { height: 5, width: 7, rows: [100, 163] as const, columns: [90, 200] as const };
    for (let row = 0; row < cells.height; row++) {
      const lastQuery = cellTokens(cells.rows, cells.height, row)[1];
      const from = maskedFromIn(cells, row);
      for (let col = 0; col < cells.width; col++) expect(col >= from).toBe(cellTokens(cells.columns, cells.width, col)[0] > lastQuery);
    }
  });

  it("masks nothing in a window left of the diagonal", () => {
    expect(maskedFromIn({ height: 3, width: 3, rows: [50, 53], columns: [0, 3] }, 0)).toBe(3);
  });
});
