import { describe, expect, it } from "vitest";
import { colormap } from "../src/colormaps";
import type { GridShape } from "../src/model";
import type { OverlayScene } from "../src/overlay";
import { IDLE_KEYS_READOUT, IDLE_READOUT, matrixCellName, matrixReadout, patchesAreQueries, queryReadout } from "../src/readout";
import { wholeMatrix } from "../src/window";

const shape: GridShape = { layers: [1], heads: [1], gh: 2, gw: 3, specialTokens: ["CLS", "reg1"], tokenCount: 8, queryCount: 8, matrixSize: 8, tokenLabels: [], queryLabels: [], causal: false };

function scene(overrides: Partial<OverlayScene>): OverlayScene {
  return {
    mode: "query",
    layer: 1,
    head: 1,
    shape,
    picture: { image: null, imageSize: null, cropBox: [0, 0, 1, 1], inputSize: null, patchSize: 0 },
    map: new Float32Array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
    specials: new Float32Array([0.25, 0.0125]),
    matrix: null,
    range: [0.1, 0.6],
    rangeCaption: "",
    lut: colormap("viridis"),
    colormap: "viridis",
    alpha: 0.5,
    interpolation: "bilinear",
    query: [0],
    valuesNote: "",
    notice: "",
    canResetQuery: false,
    maxSide: 256,
    key: "",
    method: "attention",
    methodTitle: "",
    valueLabel: "attention",
    maskMass: 0,
    pooling: "max",
    ...overrides,
  };
}

describe("read-outs", () => {
  it("names the patch, its token index, its value and the special tokens", () => {
    expect(queryReadout(scene({}), { row: 1, col: 2 })).toBe("patch (1, 2) · token 7 · 0.6\nto special tokens: CLS 0.25 · reg1 0.0125");
    expect(queryReadout(scene({}), null)).toMatch(/^Hover the picture/);
  });

  it("names query and key tokens of a full matrix", () => {
    const matrix = wholeMatrix(Float32Array.from({ length: 64 }, (_, i) => i / 64), 8, 8, 8, 8);
    expect(matrixReadout(scene({ mode: "matrix", matrix }), { row: 0, col: 3 })).toBe("query CLS (token 0) → key patch (0, 1) (token 3) · 0.04688");
  });

  it("names token ranges of a pooled matrix and says the value is a maximum", () => {
    const pooled = { ...shape, matrixSize: 3 };
    expect(matrixCellName(pooled, "key", 1, 3)).toBe("tokens 2–5");
    const matrix = wholeMatrix(new Float32Array(9).fill(0.5), 3, 3, 8, 8);
    expect(matrixReadout(scene({ mode: "matrix", shape: pooled, matrix }), { row: 2, col: 0 })).toBe("query tokens 5–7 → key tokens 0–2 · max 0.5");
  });

  it("names the tokens of a zoomed-in window from its first token", () => {
    const window = { values: Float32Array.from({ length: 6 }, (_, i) => i / 10), height: 2, width: 3, rows: [5, 7] as const, columns: [2, 5] as const };
    expect(matrixReadout(scene({ mode: "matrix", matrix: window }), { row: 1, col: 2 })).toBe("query patch (1, 1) (token 6) → key patch (0, 2) (token 4) · 0.5");
    const pooled = { ...window, height: 1, width: 1, values: new Float32Array([0.7]) };
    expect(matrixReadout(scene({ mode: "matrix", matrix: pooled }), { row: 0, col: 0 })).toBe("query tokens 5–6 → key tokens 2–4 · max 0.7");
    expect(matrixReadout(scene({ mode: "matrix", matrix: pooled, pooling: "mean" }), { row: 0, col: 0 })).toBe("query tokens 5–6 → key tokens 2–4 · mean 0.7");
  });

  it("names decoder tokens on the rows and encoder tokens on the columns of cross attention", () => {
    const cross: GridShape = { ...shape, specialTokens: [], gh: 1, gw: 3, tokenCount: 3, queryCount: 2, tokenLabels: ["<a>", "b", "c"], queryLabels: ["x & y", "z"] };
    const matrix = wholeMatrix(Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), 2, 3, 2, 3);
    expect(matrixReadout(scene({ mode: "matrix", shape: cross, matrix }), { row: 0, col: 0 })).toBe('query "x & y" (token 0) → key "<a>" (token 0) · 0.1');
    expect(matrixReadout(scene({ mode: "matrix", shape: cross, matrix }), { row: 1, col: 2 })).toBe('query "z" (token 1) → key "c" (token 2) · 0.6');
    expect(matrixCellName(cross, "query", 1, 2)).toBe('"z" (token 1)');
  });
});

describe("patches as queries", () => {
  it("a patch is a query where the queries are the keys, not where they are generated tokens", () => {
    const generated: GridShape = { ...shape, queryLabels: ["A", " cat"], queryCount: 2 };
    expect(patchesAreQueries(shape)).toBe(true);
    expect(patchesAreQueries(generated)).toBe(false);
    expect(queryReadout(scene({}), null)).toBe(IDLE_READOUT);
    expect(queryReadout(scene({ shape: generated }), null)).toBe(IDLE_KEYS_READOUT);
  });
});
