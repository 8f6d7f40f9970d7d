import { describe, expect, it } from "vitest";
import { maskedFrom } from "../src/causal";
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
