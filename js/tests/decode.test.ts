import { describe, expect, it } from "vitest";
import { asBytes, decodeRows, readEncodedRows, readFloat32 } from "../src/decode";
import { encodeRows, float32View, maxDifference } from "./helpers";

describe("readFloat32", () => {
  it("reads little-endian float32 whatever the container", () => {
    const bytes = new Uint8Array([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]); // 1.0, -2.0
    expect([...readFloat32(bytes, "x")]).toEqual([1, -2]);
    expect([...readFloat32(bytes.buffer, "x")]).toEqual([1, -2]);
    expect([...readFloat32(new DataView(bytes.buffer), "x")]).toEqual([1, -2]);
  });

  it("reads a view at an unaligned offset of a larger buffer", () => {
    const buffer = new Uint8Array(9);
    new DataView(buffer.buffer).setFloat32(1, 0.25, true);
    new DataView(buffer.buffer).setFloat32(5, 7.5, true);
    expect([...readFloat32(new DataView(buffer.buffer, 1, 8), "x")]).toEqual([0.25, 7.5]);
  });

  it("rejects truncated buffers and wrong counts", () => {
    expect(() => readFloat32(new Uint8Array(7), "specials")).toThrow(/specials: 7 bytes/);
    expect(() => readFloat32(float32View([1, 2, 3]), "map", 4)).toThrow(/map: 3 float32 values, expected 4/);
  });
});

describe("asBytes", () => {
  it("reads null as empty and rejects what is not binary", () => {
    expect(asBytes(null, "x").length).toBe(0);
    expect(() => asBytes("abc", "image")).toThrow(/image: expected binary data/);
    expect(() => asBytes([1, 2], "image")).toThrow(/an array/);
  });
});

describe("row encoding", () => {
  it("decodes a hand-built buffer", () => {
    const data = new Uint8Array([0, 255, 51, 0, 128, 255]);
    const range = float32View([0, 1, -1, 3]);
    const rows = readEncodedRows(new DataView(data.buffer), range, 3, "maps");
    expect(rows.rows).toBe(2);
    const values = decodeRows(rows);
    expect(values[0]).toBe(0);
    expect(values[1]).toBeCloseTo(1, 6);
    expect(values[2]).toBeCloseTo(0.2, 6);
    expect([values[3], values[5]]).toEqual([-1, 3]);
    expect(values[4]).toBeCloseTo(-1 + (128 / 255) * 4, 6);
  });

  it("round-trips rows within half a quantisation step", () => {
    const rows = [
      [0.001, 0.02, 0.5, 0.3],
      [5, 5, 5, 5],
      [-2, 0, 2, 1e-4],
    ];
    const { data, range } = encodeRows(rows);
    const decoded = decodeRows(readEncodedRows(data, range, 4, "maps"));
    expect(maxDifference(decoded.subarray(0, 4), rows[0])).toBeLessThanOrEqual((0.5 * 0.499) / 255 + 1e-6);
    expect([...decoded.subarray(4, 8)]).toEqual([5, 5, 5, 5]);
    expect(maxDifference(decoded.subarray(8), rows[2])).toBeLessThanOrEqual((4 * 0.5) / 255 + 1e-6);
  });

  it("reads empty payloads as zero rows", () => {
    expect(readEncodedRows(new DataView(new ArrayBuffer(0)), null, 0, "matrices").rows).toBe(0);
  });

  it("rejects truncated or mismatched buffers with a clear error", () => {
    const { data, range } = encodeRows([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const truncated = new DataView(data.buffer, 0, 5);
    expect(() => readEncodedRows(truncated, range, 3, "maps")).toThrow(/maps: 5 bytes is not a whole number of rows of 3/);
    expect(() => readEncodedRows(data, new DataView(range.buffer, 0, 8), 3, "maps")).toThrow(/2 rows of data but 1/);
    expect(() => readEncodedRows(data, new DataView(range.buffer, 0, 10), 3, "maps")).toThrow(/10 bytes is not a whole number/);
    expect(() => readEncodedRows(data, range, 0, "maps")).toThrow(/0 values per row/);
  });
});
