import { describe, expect, it } from "vitest";
import { maxPool, upsample } from "../src/upsample";

describe("upsample", () => {
  it("produces the requested size", () => {
    expect(upsample(new Float32Array(6), 3, 2, 17, 9, "bilinear").length).toBe(17 * 9);
    expect(upsample(new Float32Array(6), 3, 2, 5, 4, "nearest").length).toBe(20);
  });

  it("nearest replicates each value into a block", () => {
    const out = upsample([1, 2, 3, 4], 2, 2, 4, 4, "nearest");
    expect([...out]).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  });

  it("bilinear keeps a constant map constant", () => {
    const out = upsample(new Float32Array(12).fill(0.25), 4, 3, 37, 23, "bilinear");
    for (const v of out) expect(v).toBeCloseTo(0.25, 6);
  });

  it("bilinear of a linear ramp is linear in the interior (pixel-centre aligned)", () => {
    const width = 4;
    const ramp = Array.from({ length: width * 2 }, (_, i) => i % width); // values 0..3 along x
    const out = upsample(ramp, width, 2, 16, 2, "bilinear");
    // output pixel x samples source coordinate (x + 0.5) / 4 - 0.5, clamped to [0, 3].
    for (let x = 0; x < 16; x++) {
      const source = Math.min(3, Math.max(0, (x + 0.5) / 4 - 0.5));
      expect(out[x]).toBeCloseTo(source, 6);
    }
    const interior = [...out.subarray(2, 14)];
    const steps = interior.slice(1).map((v, i) => v - interior[i]);
    for (const step of steps) expect(step).toBeCloseTo(0.25, 6);
  });

  it("bilinear at the same size is the identity", () => {
    const values = [0.1, 0.9, 0.4, 0.3, 0.7, 0.2];
    const out = upsample(values, 3, 2, 3, 2, "bilinear");
    values.forEach((v, i) => expect(out[i]).toBeCloseTo(v, 6));
  });
});

describe("maxPool", () => {
  it("keeps the peaks when shrinking", () => {
    const values = new Float32Array(16);
    values[5] = 9;
    expect([...maxPool(values, 4, 4, 2, 2)]).toEqual([9, 0, 0, 0]);
  });

  it("skips NaN and gives NaN for an empty window", () => {
    expect([...maxPool([NaN, 2, NaN, NaN], 2, 2, 1, 2)]).toEqual([2, NaN]);
  });
});
