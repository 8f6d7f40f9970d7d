import { describe, expect, it } from "vitest";
import { maskEdges, massMask } from "../src/mask";

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
