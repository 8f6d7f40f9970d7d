import { describe, expect, it } from "vitest";
import { highNormMask, maskEdges, massMask } from "../src/mask";
import highNormFixture from "./fixtures/high-norm-mask.json";
import massFixture from "./fixtures/mass-mask.json";

interface MaskCase {
  name: string;
  values: (number | null)[];
  masks: { parameter: number; mask: number[] | null }[];
}

/** The cases of a fixture whose masks `rule` makes differently from Python, as "name @ parameter". */
function disagreements(cases: MaskCase[], rule: (values: number[], parameter: number) => Uint8Array | null): string[] {
  return cases.flatMap(({ name, values, masks }) => {
    const map = values.map((value) => value ?? NaN); // JSON has no NaN: the fixture writes null
    return masks.flatMap(({ parameter, mask }) => {
      const ours = rule(map, parameter);
      return JSON.stringify(ours ? Array.from(ours) : null) === JSON.stringify(mask) ? [] : [`${name} @ ${parameter}`];
    });
  });
}

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

  it("refuses empty maps; a zero median flags every positive norm, a NaN none", () => {
    expect(highNormMask([], 4)).toBeNull();
    expect(Array.from(highNormMask([0, 0, 5], 4) ?? [])).toEqual([0, 0, 1]);
    expect(Array.from(highNormMask([1, Number.NaN, 50], 4) ?? [])).toEqual([0, 0, 0]);
  });
});

describe("masks shared with Python", () => {
  // The fixtures are written by scripts/generate_fixtures.py from attnwidget.masks.
  it("keeps the DINO mask's cells Python keeps, ties and edge cases included", () => {
    expect(massFixture.cases.length).toBeGreaterThan(10);
    expect(disagreements(massFixture.cases, massMask)).toEqual([]);
  });

  it("flags the high-norm cells Python flags", () => {
    expect(highNormFixture.cases.length).toBeGreaterThan(5);
    expect(disagreements(highNormFixture.cases, highNormMask)).toEqual([]);
  });
});
