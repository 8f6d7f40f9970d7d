import { describe, expect, it } from "vitest";
import { highNormMask, maskEdges, massMask } from "../src/mask";

describe("DINO mass masks", () => {
  it("keeps the top cells holding the mass", () => {
    const map = [0.05, 0.5, 0.15, 0.3];
    expect(Array.from(massMask(map, 0.6) ?? [])).toEqual([0, 1, 0, 1]);
    expect(Array.from(massMask(map, 0.85) ?? [])).toEqual([0, 1, 1, 1]);
    expect(Array.from(massMask(map, 1) ?? [])).toEqual([1, 1, 1, 1]);
    expect(Array.from(massMask([2, 2, 2, 2], 0.5) ?? [])).toEqual([1, 1, 1, 1]); // ties go together
  });

  it("agrees with keeping cells while the mass above them is below the threshold", () => {
    let seed = 7;
    const random = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const values = Array.from({ length: 100 }, random);
    const total = values.reduce((a, b) => a + b, 0);
    for (const mass of [0.1, 0.5, 0.9]) {
      const expected = new Set<number>();
      let above = 0;
      for (const [index, value] of values.map((v, i) => [i, v] as const).sort((a, b) => b[1] - a[1])) {
        if (above / total < mass) expected.add(index);
        above += value;
      }
      const mask = massMask(values, mass) ?? new Uint8Array();
      expect(Array.from(mask).flatMap((kept, i) => (kept ? [i] : []))).toEqual([...expected].sort((a, b) => a - b));
    }
  });

  it("refuses maps without mass and masses outside (0, 1]", () => {
    expect(massMask([0, 0], 0.5)).toBeNull();
    expect(massMask([1, -1], 0.5)).toBeNull();
    expect(massMask([1, Number.NaN], 0.5)).toBeNull();
    expect(massMask([1, 2], 0)).toBeNull();
    expect(massMask([1, 2], 1.5)).toBeNull();
  });

  it("outlines the kept region", () => {
    // One kept cell: its four sides. Two kept neighbours: six sides, the shared one left out.
    expect(maskEdges([0, 0, 0, 0, 1, 0, 0, 0, 0], 3, 3)).toHaveLength(4);
    const pair = maskEdges([1, 1], 1, 2);
    expect(pair).toHaveLength(6);
    expect(pair).not.toContainEqual([1, 0, 1, 1]);
  });
});

describe("high-norm masks", () => {
  it("flags cells above factor times the median, with torch's lower median for even counts", () => {
    // Sorted [1, 1, 2, 3, 9, 40]: torch's median is 2 (not 2.5), so 4x is 8 and 9 is flagged.
    expect(Array.from(highNormMask([1, 9, 2, 40, 1, 3], 4) ?? [])).toEqual([0, 1, 0, 1, 0, 0]);
    expect(Array.from(highNormMask([1, 2, 9], 4) ?? [])).toEqual([0, 0, 1]); // median 2: 9 > 8
    expect(Array.from(highNormMask([1, 2, 8], 4) ?? [])).toEqual([0, 0, 0]); // exactly 4x is not above
  });

  it("refuses empty maps and maps whose median is not positive", () => {
    expect(highNormMask([], 4)).toBeNull();
    expect(highNormMask([0, 0, 5], 4)).toBeNull();
  });
});
