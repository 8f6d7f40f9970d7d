/**
 * Property-based tests of the binary decoder and of the store that feeds on it: whatever bytes
 * arrive (truncated, misaligned, corrupt ranges, wrong row counts, non-binary values), the result
 * is a decoded payload of the promised shape or an `Error` naming the payload, never an exception
 * of another kind, never values outside a row's range and never a write outside the target.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { asBytes, decodeRows, decodeRowsInto, readEncodedRows, readFloat32 } from "../src/decode";
import { readDataTraits } from "../src/model";
import { AttentionStore } from "../src/store";
import { FakeModel, encodeRows, float32View, widgetTraits } from "./helpers";

/** Runs per property, from a fixed seed so a failure reproduces; `docs/reliability.md` reports the total. */
const RUNS = { numRuns: 2000, seed: 7 };

/** A byte payload in each container anywidget may hand over, at any offset of a larger buffer. */
const payload = fc
  .tuple(fc.uint8Array({ maxLength: 96 }), fc.nat({ max: 7 }), fc.constantFrom("view", "bytes", "buffer"))
  .map(([bytes, offset, kind]): unknown => {
    const backing = new Uint8Array(offset + bytes.length);
    backing.set(bytes, offset);
    if (kind === "view") return new DataView(backing.buffer, offset, bytes.length);
    if (kind === "bytes") return backing.subarray(offset);
    return backing.slice(offset).buffer;
  });

/** Float32 (lo, hi) pairs as bytes, mostly well formed, sometimes not (NaN, inf, lo > hi). */
const rangeBytes = fc
  .array(fc.oneof(fc.float({ noNaN: true, min: -10, max: 10 }), fc.float()), { maxLength: 24 })
  .map((values) => float32View(values));

const columns = fc.oneof(fc.integer({ min: -2, max: 40 }), fc.double(), fc.constant(Number.NaN));

/** Data and ranges of matching sizes (`rows x width` bytes, `rows` pairs) with arbitrary float32 ranges. */
const shapedRows = fc
  .record({ rows: fc.integer({ min: 1, max: 6 }), width: fc.integer({ min: 1, max: 10 }) })
  .chain(({ rows, width }) =>
    fc.tuple(
      fc.uint8Array({ minLength: rows * width, maxLength: rows * width }),
      fc.array(fc.float(), { minLength: rows * 2, maxLength: rows * 2 }).map((values) => float32View(values)),
      fc.constant(width),
    ),
  );

/** Any value a message or a trait could carry where binary data is expected. */
const anyPayload = fc.oneof(payload, fc.anything(), fc.constant(null));

function byteLength(value: unknown): number {
  return asBytes(value, "x").length;
}

/** A row's decoded values lie within its [lo, hi], up to float32 rounding. */
function withinRange(value: number, lo: number, hi: number): boolean {
  const slack = 4 * Math.max(Math.abs(lo), Math.abs(hi)) * 2 ** -23;
  return Number.isFinite(value) && value >= lo - slack && value <= hi + slack;
}

describe("decoder properties", () => {
  it("readEncodedRows gives rows of the promised shape within their ranges, or an Error naming the payload", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.tuple(fc.oneof(payload, anyPayload), fc.oneof(rangeBytes, anyPayload), columns), shapedRows),
        ([data, ranges, width]) => {
        let rows;
        try {
          rows = readEncodedRows(data, ranges, width, "maps");
        } catch (error) {
          expect(error).toBeInstanceOf(Error);
          expect((error as Error).message).toMatch(/^maps/);
          return;
        }
        expect(rows.rows * (rows.rows === 0 ? 0 : rows.columns)).toBe(byteLength(data));
        expect(rows.ranges.length).toBe(rows.rows * 2);
        const values = decodeRows(rows);
        expect(values.length).toBe(rows.rows * (rows.rows === 0 ? 0 : rows.columns));
        for (let row = 0; row < rows.rows; row++) {
          const lo = rows.ranges[row * 2];
          const hi = rows.ranges[row * 2 + 1];
          for (let c = 0; c < rows.columns; c++) expect(withinRange(values[row * rows.columns + c], lo, hi)).toBe(true);
        }
        },
      ),
      RUNS,
    );
  });

  it("round-trips any finite rows within half a quantisation step", () => {
    const matrix = fc.integer({ min: 1, max: 12 }).chain((width) =>
      fc.array(fc.array(fc.float({ noNaN: true, min: -1e6, max: 1e6 }), { minLength: width, maxLength: width }), {
        minLength: 1,
        maxLength: 8,
      }),
    );
    fc.assert(
      fc.property(matrix, (rows) => {
        const { data, range } = encodeRows(rows);
        const width = rows[0].length;
        const decoded = decodeRows(readEncodedRows(data, range, width, "maps"));
        rows.forEach((row, r) => {
          const lo = Math.min(...row);
          const hi = Math.max(...row);
          const tolerance = (hi - lo) / 510 + 4 * Math.max(Math.abs(lo), Math.abs(hi)) * 2 ** -23;
          row.forEach((value, c) => expect(Math.abs(decoded[r * width + c] - value)).toBeLessThanOrEqual(tolerance));
        });
      }),
      RUNS,
    );
  });

  it("rejects every truncation of a valid payload", () => {
    const valid = fc
      .record({ rows: fc.integer({ min: 1, max: 6 }), width: fc.integer({ min: 2, max: 10 }) })
      .chain(({ rows, width }) =>
        fc.tuple(
          fc.constant(Array.from({ length: rows }, (_, r) => Array.from({ length: width }, (_, c) => r + c / width))),
          fc.integer({ min: 1, max: rows * width - 1 }),
          fc.boolean(),
        ),
      );
    fc.assert(
      fc.property(valid, ([rows, cut, cutData]) => {
        const { data, range } = encodeRows(rows);
        const width = rows[0].length;
        const shortData = new DataView(data.buffer, 0, data.byteLength - cut);
        const shortRange = new DataView(range.buffer, 0, range.byteLength - Math.min(cut, range.byteLength));
        const [d, r] = cutData ? [shortData, range] : [data, shortRange];
        expect(() => readEncodedRows(d, r, width, "maps")).toThrow(/^maps/);
      }),
      RUNS,
    );
  });

  it("decodeRowsInto writes exactly the rows asked for, or throws and writes nothing", () => {
    const rows = Array.from({ length: 4 }, (_, r) => [r, r + 0.5, r + 1]);
    const encoded = readEncodedRows(encodeRows(rows).data, encodeRows(rows).range, 3, "maps");
    const arguments_ = fc.tuple(
      fc.oneof(fc.integer({ min: -2, max: 6 }), fc.double()),
      fc.oneof(fc.integer({ min: -2, max: 6 }), fc.double()),
      fc.integer({ min: 0, max: 20 }),
      fc.oneof(fc.integer({ min: -2, max: 10 }), fc.double()),
    );
    fc.assert(
      fc.property(arguments_, ([first, count, size, offset]) => {
        const out = new Float32Array(size).fill(-7);
        try {
          decodeRowsInto(encoded, first, count, out, offset);
        } catch (error) {
          expect(error).toBeInstanceOf(Error);
          expect(out.every((value) => value === -7)).toBe(true);
          return;
        }
        const all = decodeRows(encoded);
        out.forEach((value, i) => {
          const inside = i >= offset && i < offset + count * 3;
          expect(value).toBe(inside ? all[first * 3 + (i - offset)] : -7);
        });
      }),
      RUNS,
    );
  });

  it("readFloat32 reads every whole float32 of any container, or throws an Error naming the payload", () => {
    fc.assert(
      fc.property(anyPayload, fc.option(fc.integer({ min: 0, max: 30 }), { nil: undefined }), (value, count) => {
        let values: Float32Array;
        try {
          values = readFloat32(value, "specials", count);
        } catch (error) {
          expect(error).toBeInstanceOf(Error);
          expect((error as Error).message).toMatch(/^specials/);
          return;
        }
        const bytes = asBytes(value, "specials");
        expect(values.length * 4).toBe(bytes.length);
        if (count !== undefined) expect(values.length).toBe(count);
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        values.forEach((v, i) => expect(Object.is(v, view.getFloat32(i * 4, true))).toBe(true));
      }),
      RUNS,
    );
  });
});

describe("store properties", () => {
  /** A message of the kinds the kernel sends, with arbitrary fields and buffers. */
  const message = fc.record({
    type: fc.constantFrom("layers", "layer", "head", "region", "other"),
    run_id: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.anything()),
    first: fc.oneof(fc.integer({ min: -1, max: 4 }), fc.anything()),
    count: fc.oneof(fc.integer({ min: -1, max: 4 }), fc.anything()),
    layer: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.anything()),
    head: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.anything()),
    height: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.anything()),
    width: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.anything()),
    rows: fc.oneof(fc.tuple(fc.integer({ min: -1, max: 6 }), fc.integer({ min: -1, max: 6 })), fc.anything()),
    columns: fc.oneof(fc.tuple(fc.integer({ min: -1, max: 6 }), fc.integer({ min: -1, max: 6 })), fc.anything()),
  });

  /** A `layers` message for rows `first ..` of the 3 x 2 grid of 2 x 2 patches, buffers of the right sizes. */
  const shapedLayers = fc
    .record({ first: fc.integer({ min: 0, max: 2 }), count: fc.integer({ min: 1, max: 3 }) })
    .chain(({ first, count }) =>
      fc.tuple(
        fc.constant({ type: "layers", run_id: 1, first, count }),
        fc.tuple(
          fc.uint8Array({ minLength: count * 2 * 4, maxLength: count * 2 * 4 }),
          fc.array(fc.float(), { minLength: count * 4, maxLength: count * 4 }).map((values) => float32View(values)),
          fc.array(fc.float({ noNaN: true }), { minLength: count * 2, maxLength: count * 2 }).map((values) => float32View(values)),
        ),
      ),
    );
  const anyMessage = fc.oneof(fc.tuple(message, fc.array(fc.oneof(payload, rangeBytes, anyPayload), { maxLength: 4 })), shapedLayers);

  it("takes any stream of messages without throwing; what it keeps is finite", () => {
    fc.assert(
      fc.property(fc.array(anyMessage, { maxLength: 6 }), (messages) => {
        const store = new AttentionStore();
        store.applyTraits(readDataTraits(new FakeModel(widgetTraits({ run_id: 1, status: "running" }))));
        for (const [content, buffers] of messages) expect(() => store.applyMessage(content, buffers)).not.toThrow();
        const maps = store.maps;
        for (let tile = 0; tile < store.tiles; tile++) {
          if (maps.has(tile)) expect(maps.values(tile).every(Number.isFinite)).toBe(true);
        }
      }),
      RUNS,
    );
  });
});
