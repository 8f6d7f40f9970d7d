import { describe, expect, it } from "vitest";
import { type StatusInput, formatBytes, statusLine } from "../src/status";
import { defaultQuery, describeQuery, formatValue, isClsLike, patchToken, sameQuery, tokenName } from "../src/tokens";

const base: StatusInput = { status: "done", message: "", modelName: "vit", layersDone: 12, layerCount: 12, headCount: 12, query: "CLS", dataError: "", queryPending: false, savedBytes: 0, matricesMissing: false };

describe("statusLine", () => {
  it("shows progress while running", () => {
    expect(statusLine({ ...base, status: "running", layersDone: 5 })).toBe("Running vit: 5/12 layers");
  });

  it("summarises a finished run, then notices and errors", () => {
    expect(statusLine(base)).toBe("vit: 12 layers × 12 heads, query CLS");
    expect(statusLine({ ...base, message: "cached", queryPending: true, dataError: "maps: 7 bytes" })).toBe(
      "vit: 12 layers × 12 heads, query CLS · cached · the maps still show the previous query until a running kernel recomputes them · could not read the data: maps: 7 bytes",
    );
    expect(statusLine({ ...base, status: "error", message: "error: out of memory" })).toBe("Error: out of memory");
    expect(statusLine({ ...base, status: "empty" })).toMatch(/No attention yet/);
  });

  it("says what the widget adds to a saved notebook", () => {
    expect(statusLine({ ...base, savedBytes: 812_345 })).toBe("vit: 12 layers × 12 heads, query CLS · 812 kB in a saved notebook");
    expect(statusLine({ ...base, matricesMissing: true })).toMatch(/no token × token matrices are kept/);
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(5_612_000)).toBe("5.6 MB");
  });
});

describe("text tokens", () => {
  const text = { specialTokens: [], gh: 1, gw: 4, tokenLabels: ["The", " cat", ' <b>"&', "."] };

  it("names tokens by their text, quoted, as text", () => {
    expect(tokenName(text, 2)).toBe('" <b>"&"');
    expect(describeQuery(text, [1])).toBe('" cat"');
    expect(describeQuery(text, [0, 1, 2, 3])).toBe("all 4 tokens");
  });

  it("asks from a decoder's last token and an encoder's class token", () => {
    expect(defaultQuery({ ...text, causal: true })).toEqual([3]);
    expect(defaultQuery({ ...text, tokenLabels: ["[CLS]", "a", "b", "[SEP]"] })).toEqual([0]);
    expect(defaultQuery(text)).toEqual([0, 1, 2, 3]);
  });

  it("names cross attention's queries by the decoder's tokens and asks from its last one", () => {
    const cross = { ...text, queryLabels: ["<s>", "Das", " Haus"] };
    expect(describeQuery(cross, [1])).toBe('"Das"');
    expect(tokenName(cross, 1)).toBe('" cat"'); // keys stay the encoder's tokens
    expect(defaultQuery(cross)).toEqual([2]);
  });
});

describe("tokens", () => {
  const layout = { specialTokens: ["CLS", "reg1"], gh: 3, gw: 4 };

  it("numbers patches after the special tokens", () => {
    expect(patchToken(layout, 1, 2)).toBe(2 + 4 + 2);
    expect(tokenName(layout, 1)).toBe("reg1");
    expect(tokenName(layout, 8)).toBe("patch (1, 2)");
    expect(tokenName(layout, 99)).toBe("token 99");
  });

  it("resets the query to CLS, or to all patches without a class token", () => {
    expect(defaultQuery(layout)).toEqual([0]);
    expect(defaultQuery({ specialTokens: [], gh: 2, gw: 2 })).toEqual([0, 1, 2, 3]);
    expect(defaultQuery({ specialTokens: ["reg1"], gh: 1, gw: 2 })).toEqual([1, 2]);
    expect(isClsLike("[CLS]")).toBe(true);
    expect(isClsLike("DIST")).toBe(false);
  });

  it("describes queries", () => {
    expect(describeQuery(layout, [0])).toBe("CLS");
    expect(describeQuery(layout, [7])).toBe("patch (1, 1)");
    expect(describeQuery(layout, Array.from({ length: 12 }, (_, i) => i + 2))).toBe("all 12 patches");
    expect(describeQuery(layout, [0, 1])).toBe("2 tokens");
    expect(sameQuery([3, 1], [1, 3, 3])).toBe(true);
    expect(sameQuery([1], [2])).toBe(false);
  });

  it("formats values for read-outs", () => {
    expect(formatValue(0.012345)).toBe("0.01235");
    expect(formatValue(0.00001234)).toBe("1.23e-5");
    expect(formatValue(0)).toBe("0");
    expect(formatValue(NaN)).toBe("–");
  });
});
