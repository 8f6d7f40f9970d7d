import { describe, expect, it } from "vitest";
import { SHARE_COLOURS, barAt, barLayout, readQueryShares, sharePalette, shareText, tokenShares } from "../src/shares";
import { float32View } from "./helpers";

/** 2 tokens x 2 layers x (image, text, sink). */
const VALUES = [0.6, 0.3, 0.1, 0.2, 0.3, 0.5, 0.5, 0.5, 0, 1, 0, 0];

describe("readQueryShares", () => {
  it("decodes [tokens, layers, kinds] float32 and reads nothing as null", () => {
    const shares = readQueryShares(float32View(VALUES), 2, 2);
    expect(shares?.values[(1 * 2 + 1) * 3]).toBe(1);
    expect(readQueryShares(new DataView(new ArrayBuffer(0)), 2, 2)).toBeNull();
    expect(readQueryShares(undefined, 2, 2)).toBeNull();
  });

  it("refuses a payload of the wrong length or with values that are not shares, naming it", () => {
    expect(() => readQueryShares(float32View(VALUES.slice(0, 9)), 2, 2)).toThrow("query_shares: 9 float32 values, expected 2 tokens × 2 layers × 3 shares = 12");
    expect(() => readQueryShares(new DataView(new ArrayBuffer(6)), 2, 2)).toThrow("not a whole number of float32");
    expect(() => readQueryShares(float32View([...VALUES.slice(1), NaN]), 2, 2)).toThrow("finite");
    expect(() => readQueryShares(float32View([...VALUES.slice(1), -0.5]), 2, 2)).toThrow("never negative");
    expect(() => readQueryShares("bytes", 2, 2)).toThrow("query_shares: expected binary data");
  });
});

describe("tokenShares", () => {
  it("takes one layer's shares or their mean over layers", () => {
    const shares = readQueryShares(float32View(VALUES), 2, 2)!;
    expect(Array.from(tokenShares(shares, 1))).toEqual(Array.from(new Float32Array([0.2, 0.3, 0.5, 1, 0, 0])));
    const mean = Array.from(tokenShares(shares, null));
    [0.4, 0.3, 0.3, 0.75, 0.25, 0].forEach((value, i) => expect(mean[i]).toBeCloseTo(value, 6));
  });
});

describe("barLayout", () => {
  const values = new Float32Array([0.5, 0.25, 0.25, 1, 0, 0, 0.6, 0.6, 0.6]);

  it("stacks image, text and sink from the bottom, in proportion, cut at the top", () => {
    const layout = barLayout(values, 1000);
    const [first, second, third] = layout.bars;
    const { plot } = layout;
    expect(first.rect.x).toBe(plot.x);
    expect(second.rect.x - first.rect.x).toBe(22); // the widest step
    expect(first.segments.map((s) => s.kind)).toEqual(["image", "text", "sink"]);
    expect(first.segments.map((s) => s.rect.height)).toEqual([32, 16, 16]);
    expect(first.segments[0].rect.y + first.segments[0].rect.height).toBe(plot.y + plot.height);
    expect(first.segments[2].rect.y).toBe(plot.y);
    expect(second.segments.map((s) => s.rect.height)).toEqual([64, 0, 0]);
    expect(third.segments.reduce((sum, s) => sum + s.rect.height, 0)).toBeCloseTo(plot.height, 5);
    expect(Math.min(...third.segments.map((s) => s.rect.y))).toBeCloseTo(plot.y, 5);
  });

  it("narrows the bars to fit, down to 3 pixels a token, and keeps room for the legend", () => {
    expect(barLayout(values, 100).width).toBe(300);
    const many = barLayout(new Float32Array(3 * 400), 700);
    expect(many.bars[1].rect.x - many.bars[0].rect.x).toBe(3);
    expect(many.width).toBeGreaterThan(700);
    const fit = barLayout(new Float32Array(3 * 50), 532);
    expect(fit.bars[1].rect.x - fit.bars[0].rect.x).toBe(10);
  });

  it("finds the bar under a point, below the bars too, and nothing beside them", () => {
    const layout = barLayout(values, 1000);
    const { plot } = layout;
    expect(barAt(layout, plot.x + 22 + 5, plot.y + 10)).toBe(1);
    expect(barAt(layout, plot.x + 1, plot.y + plot.height + 5)).toBe(0);
    expect(barAt(layout, plot.x - 1, plot.y + 10)).toBeNull();
    expect(barAt(layout, plot.x + 3 * 22, plot.y + 10)).toBeNull();
    expect(barAt(layout, plot.x + 1, plot.y - 1)).toBeNull();
  });
});

describe("shareText", () => {
  it("names the token as text and its shares for the layer shown", () => {
    const values = new Float32Array([0.6, 0.3, 0.1, 0.2, 0.30001, 0.5]);
    expect(shareText(["<b>", " cat"], values, 1, 1)).toBe('token 1 " cat" · image 0.2 · text 0.3 · sink 0.5 (l=2)');
    expect(shareText(["\n", " cat"], values, 0, null)).toBe('token 0 "↵" · image 0.6 · text 0.3 · sink 0.1 (mean over layers)');
  });
});

describe("share colours", () => {
  const luminance = (hex: string): number => {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const contrast = (a: string, b: string): number => {
    const [high, low] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (high + 0.05) / (low + 0.05);
  };

  it("stand out 3:1 against the themes' backgrounds", () => {
    // JupyterLab's light and dark layout colours, and plain white and black pages.
    for (const colour of Object.values(SHARE_COLOURS.light)) for (const page of ["#ffffff", "#eeeeee"]) expect(contrast(colour, page)).toBeGreaterThanOrEqual(3);
    for (const colour of Object.values(SHARE_COLOURS.dark)) for (const page of ["#111111", "#212121", "#000000"]) expect(contrast(colour, page)).toBeGreaterThanOrEqual(3);
  });

  it("follow the text colour: light text means a dark page", () => {
    expect(sharePalette("rgb(0, 0, 0)")).toBe(SHARE_COLOURS.light);
    expect(sharePalette("rgba(255, 255, 255, 0.87)")).toBe(SHARE_COLOURS.dark);
  });
});
