import { describe, expect, it } from "vitest";
import { NORMALIZE_SCOPES } from "../src/contract";
import { centredIf, colorBarRange, displayRanges, isDiverging, valueRange } from "../src/normalize";
import fixture from "./fixtures/normalize-ranges.json";

// 2 layers x 2 heads; tile 3 has no data yet.
const OWN = new Float32Array([0, 1, 2, 5, -1, 0.5, NaN, NaN]);

describe("normalisation", () => {
  it("per head keeps each tile's own range", () => {
    expect([...displayRanges("head", OWN, 2, 2)]).toEqual([0, 1, 2, 5, -1, 0.5, NaN, NaN]);
  });

  it("per layer spans the tiles of the grid row", () => {
    expect([...displayRanges("layer", OWN, 2, 2)]).toEqual([0, 5, 0, 5, -1, 0.5, NaN, NaN]);
  });

  it("global spans every tile with data", () => {
    expect([...displayRanges("global", OWN, 2, 2)]).toEqual([-1, 5, -1, 5, -1, 5, NaN, NaN]);
  });

  it("labels the colour bar with the focused tile's range, or the global one", () => {
    const perLayer = displayRanges("layer", OWN, 2, 2);
    expect(colorBarRange("layer", perLayer, 1)).toEqual([0, 5]);
    expect(colorBarRange("layer", perLayer, null)).toBeNull();
    expect(colorBarRange("head", displayRanges("head", OWN, 2, 2), 3)).toBeNull();
    expect(colorBarRange("global", displayRanges("global", OWN, 2, 2), null)).toEqual([-1, 5]);
  });

  it("centres the ranges of a diverging colormap on zero, so zero is its middle colour", () => {
    expect([...displayRanges("head", OWN, 2, 2, true)]).toEqual([-1, 1, -5, 5, -1, 1, NaN, NaN]);
    expect([...displayRanges("global", OWN, 2, 2, true)]).toEqual([-5, 5, -5, 5, -5, 5, NaN, NaN]);
    expect(centredIf(true, [-0.5, 0.25])).toEqual([-0.5, 0.5]);
    expect(centredIf(false, [-0.5, 0.25])).toEqual([-0.5, 0.25]);
    expect(centredIf(true, null)).toBeNull();
    expect([isDiverging("rdbu_r"), isDiverging("viridis")]).toEqual([true, false]);
  });

  it("finds ranges while skipping NaN", () => {
    expect(valueRange([3, NaN, -2, 8])).toEqual([-2, 8]);
    expect(valueRange([NaN])).toEqual([NaN, NaN]);
    expect(valueRange([1, 2, 3, 4], 1, 3)).toEqual([2, 3]);
  });
});

describe("normalisation shared with Python", () => {
  // `fixture` is written by scripts/generate_fixtures.py from attnwidget.render.normalize_tiles.
  const flat = (ranges: (number | null)[][][]): number[] => ranges.flat(2).map((value) => value ?? NaN);

  it("draws every tile with the range to_png uses, in every scope, tiles without data included", () => {
    expect(fixture.cases.length).toBeGreaterThan(1);
    for (const { rows, cols, tile_ranges: own, ranges, centred } of fixture.cases) {
      for (const scope of NORMALIZE_SCOPES) {
        expect([...displayRanges(scope, Float32Array.from(flat(own)), rows, cols)], `${rows}x${cols} ${scope}`).toEqual(flat(ranges[scope]));
        expect([...displayRanges(scope, Float32Array.from(flat(own)), rows, cols, true)], `${rows}x${cols} ${scope} centred`).toEqual(flat(centred[scope]));
      }
    }
  });
});
