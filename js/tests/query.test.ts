import { describe, expect, it } from "vitest";
import { decodeRows, readEncodedRows } from "../src/decode";
import { localQueryMaps } from "../src/query";
import { encodeRows } from "./helpers";

/** Two heads' 5 x 5 attention (1 special + 2 x 2 patches), rows summing to 1. */
function matrices(): number[][] {
  const rows: number[][] = [];
  for (let head = 0; head < 2; head++) {
    for (let q = 0; q < 5; q++) {
      const row = Array.from({ length: 5 }, (_, k) => 1 + ((q * 3 + k * (head + 2)) % 7));
      const sum = row.reduce((a, b) => a + b, 0);
      rows.push(row.map((v) => v / sum));
    }
  }
  return rows;
}

describe("localQueryMaps", () => {
  const { data, range } = encodeRows(matrices());
  const encoded = readEncodedRows(data, range, 5, "matrices");
  const decoded = decodeRows(encoded);
  const at = (head: number, q: number, k: number): number => decoded[(head * 5 + q) * 5 + k];

  it("takes the query row, split into special keys and patch keys", () => {
    const { maps, specials } = localQueryMaps(encoded, 2, 5, 1, [0]);
    expect(maps.length).toBe(2 * 4);
    expect(specials.length).toBe(2);
    for (let head = 0; head < 2; head++) {
      expect(specials[head]).toBeCloseTo(at(head, 0, 0), 6);
      for (let p = 0; p < 4; p++) expect(maps[head * 4 + p]).toBeCloseTo(at(head, 0, p + 1), 6);
    }
  });

  it("averages several query rows, repeats counted as the kernel counts them", () => {
    const { maps } = localQueryMaps(encoded, 2, 5, 1, [2, 4, 4]);
    for (let p = 0; p < 4; p++) expect(maps[4 + p]).toBeCloseTo((at(1, 2, p + 1) + 2 * at(1, 4, p + 1)) / 3, 6);
  });

  it("stays within the 8-bit error of the exact attention", () => {
    const exact = matrices();
    const { maps } = localQueryMaps(encoded, 2, 5, 1, [3]);
    for (let p = 0; p < 4; p++) expect(Math.abs(maps[p] - exact[3][p + 1])).toBeLessThan(1 / 255);
  });

  it("rejects pooled matrices and bad queries", () => {
    expect(() => localQueryMaps(encoded, 3, 5, 1, [0])).toThrow(/do not hold 3 full 5 x 5/);
    expect(() => localQueryMaps(encoded, 2, 5, 1, [5])).toThrow(/below 5/);
    expect(() => localQueryMaps(encoded, 2, 5, 1, [])).toThrow(/query/);
  });
});
