import { describe, expect, it } from "vitest";
import fixture from "./fixtures/colour-index.json";
import tables from "../../attnwidget/colormaps.json";
import { colormap, lutIndex, paintValues, parseLut, rgbAt } from "../src/colormaps";
import { COLORMAPS } from "../src/contract";

/** matplotlib's float colours at 0 and 1, times 255 (`colormaps[name](0.0)[:3] * 255`). */
const MATPLOTLIB_ENDPOINTS: Record<string, [number[], number[]]> = {
  viridis: [[68.086, 1.243, 84.001], [253.278, 231.07, 36.704]],
  magma: [[0.373, 0.119, 3.536], [251.699, 252.817, 191.124]],
  inferno: [[0.373, 0.119, 3.536], [252.032, 254.583, 164.456]],
  gray: [[0, 0, 0], [255, 255, 255]],
};

describe("colormaps", () => {
  it("ships a table for every colormap of the contract, in the menu's order", () => {
    expect(COLORMAPS).toEqual(["viridis", "magma", "inferno", "gray", "rdbu_r"]);
    expect(Object.keys(tables)).toEqual([...COLORMAPS]);
  });

  it("runs viridis from #440154 to #fde725", () => {
    const hex = (value: number): string =>
      `#${rgbAt(colormap("viridis"), value)?.map((v) => v.toString(16).padStart(2, "0")).join("")}`;
    expect(hex(0)).toBe("#440154");
    expect(hex(1)).toBe("#fde725");
  });

  it.each(Object.entries(MATPLOTLIB_ENDPOINTS))("%s endpoints are matplotlib's, rounded", (name, [low, high]) => {
    const lut = colormap(name);
    const check = (rgb: number[] | null, expected: number[]): void => {
      expect(rgb).toEqual(expected.map(Math.round));
    };
    check(rgbAt(lut, 0), low);
    check(rgbAt(lut, 1), high);
  });

  it("runs rdbu_r from blue below zero through white at zero to red above", () => {
    const lut = colormap("rdbu_r");
    const [low, middle, high] = [0, 0.5, 1].map((value) => rgbAt(lut, value) ?? [0, 0, 0]);
    expect(low[2]).toBeGreaterThan(low[0]);
    expect(Math.min(...middle)).toBeGreaterThan(240);
    expect(high[0]).toBeGreaterThan(high[2]);
  });

  it("maps gray to a rising linear ramp from black to white", () => {
    const lut = colormap("gray");
    let previous = -1;
    for (let i = 0; i < 256; i++) {
      const rgb = rgbAt(lut, i / 255);
      expect(rgb?.[0]).toBe(rgb?.[1]);
      expect(rgb?.[1]).toBe(rgb?.[2]);
      expect(rgb?.[0]).toBe(i);
      expect(rgb?.[0]).toBeGreaterThanOrEqual(previous);
      previous = rgb?.[0] ?? NaN;
    }
    expect(rgbAt(lut, 0)).toEqual([0, 0, 0]);
    expect(rgbAt(lut, 1)).toEqual([255, 255, 255]);
  });

  it("clamps out-of-range values and reports NaN as no colour", () => {
    const lut = colormap("viridis");
    expect(rgbAt(lut, -3)).toEqual(rgbAt(lut, 0));
    expect(rgbAt(lut, 7)).toEqual(rgbAt(lut, 1));
    expect(rgbAt(lut, NaN)).toBeNull();
    expect(lutIndex(0.5)).toBe(128);
  });

  it("falls back to viridis for an unknown name", () => {
    expect(colormap("jet")).toBe(colormap("viridis"));
  });

  it("rejects malformed tables", () => {
    expect(() => parseLut("00ff00")).toThrow(/1536 hex digits/);
    expect(() => parseLut("zz".repeat(768))).toThrow(/1536 hex digits/);
  });

  it("paints values into an RGBA block: range to colours, NaN transparent", () => {
    const lut = colormap("gray");
    const pixels = new Uint8ClampedArray(3 * 2 * 4).fill(9);
    paintValues([2, 4, NaN], 3, 1, 2, 4, lut, { pixels, stride: 3, x: 0, y: 1 });
    expect([...pixels.subarray(0, 12)]).toEqual(new Array(12).fill(9));
    expect([...pixels.subarray(12, 16)]).toEqual([0, 0, 0, 255]);
    expect([...pixels.subarray(16, 20)]).toEqual([255, 255, 255, 255]);
    expect(pixels[23]).toBe(0);
  });
});

describe("colour index shared with Python", () => {
  // `fixture` is written by scripts/generate_fixtures.py from attnwidget.render.colour_index.
  it("puts every value in the entry Python's to_png uses", () => {
    expect(fixture.values.length).toBeGreaterThan(1000);
    const differing = fixture.values.filter((value, i) => lutIndex(value) !== fixture.index[i]);
    expect(differing).toEqual([]);
  });
});
