/**
 * Binary payloads from the kernel: `bytes` traits and custom-message buffers.
 *
 * anywidget hands these over as `DataView`, sometimes as `ArrayBuffer` or a typed array; every
 * reader here accepts all of them and throws an `Error` naming the payload when its length does
 * not fit the contract, so a malformed buffer becomes a message for the user, not a broken page.
 */

/** Float rows in the "row encoding": `rows x columns` uint8 values, each row scaled to its own [lo, hi]. */
export interface EncodedRows {
  readonly rows: number;
  readonly columns: number;
  /** `uint8[rows * columns]`, row-major. */
  readonly data: Uint8Array;
  /** `[lo, hi]` per row. */
  readonly ranges: Float32Array;
}

/** The bytes of a binary payload without copying; `null`/`undefined` read as empty. */
export function asBytes(value: unknown, what: string): Uint8Array {
  if (value === null || value === undefined) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (isArrayBuffer(value)) return new Uint8Array(value);
  throw new Error(`${what}: expected binary data, got ${describeType(value)}`);
}

/** Little-endian float32 values of a payload; `count`, when given, is the exact number expected. */
export function readFloat32(value: unknown, what: string, count?: number): Float32Array {
  const bytes = asBytes(value, what);
  if (bytes.byteLength % 4 !== 0) {
    throw new Error(`${what}: ${bytes.byteLength} bytes is not a whole number of float32 values`);
  }
  const length = bytes.byteLength / 4;
  if (count !== undefined && length !== count) {
    throw new Error(`${what}: ${length} float32 values, expected ${count}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/**
 * Checks and wraps a row-encoded payload (`data` uint8 + `ranges` float32 pairs) of `columns`
 * values per row. Empty buffers give zero rows.
 */
export function readEncodedRows(data: unknown, ranges: unknown, columns: number, what: string): EncodedRows {
  const bytes = asBytes(data, `${what} data`);
  const rangeValues = readFloat32(ranges, `${what} range`);
  if (bytes.length === 0 && rangeValues.length === 0) {
    return { rows: 0, columns, data: bytes, ranges: rangeValues };
  }
  if (!Number.isInteger(columns) || columns <= 0) {
    throw new Error(`${what}: ${bytes.length} bytes of data but ${columns} values per row`);
  }
  if (bytes.length % columns !== 0) {
    throw new Error(`${what}: ${bytes.length} bytes is not a whole number of rows of ${columns} values`);
  }
  const rows = bytes.length / columns;
  if (rangeValues.length !== rows * 2) {
    throw new Error(`${what}: ${rows} rows of data but ${rangeValues.length / 2} [lo, hi] ranges`);
  }
  for (let row = 0; row < rows; row++) {
    // Every range the kernel writes is finite with lo <= hi; anything else is a corrupt buffer.
    const span = Math.fround(rangeValues[row * 2 + 1] - rangeValues[row * 2]);
    if (!(Number.isFinite(span) && span >= 0)) {
      throw new Error(`${what}: row ${row} has the range [${rangeValues[row * 2]}, ${rangeValues[row * 2 + 1]}]`);
    }
  }
  return { rows, columns, data: bytes, ranges: rangeValues };
}

/**
 * Decodes rows `first .. first + count - 1` into `out` at `offset`: `v = lo + q / 255 * (hi - lo)`.
 * Throws when those rows are not all in `encoded` or do not fit in `out`.
 */
export function decodeRowsInto(
  encoded: EncodedRows,
  first: number,
  count: number,
  out: Float32Array,
  offset = 0,
): void {
  const { columns, data, ranges } = encoded;
  const inside = Number.isInteger(first) && Number.isInteger(count) && Number.isInteger(offset);
  if (!inside || first < 0 || count < 0 || first + count > encoded.rows) {
    throw new Error(`rows ${first}..${first + count - 1} are not among the ${encoded.rows} rows decoded`);
  }
  if (offset < 0 || offset + count * columns > out.length) {
    throw new Error(`${count} rows of ${columns} values do not fit at ${offset} in ${out.length} values`);
  }
  for (let row = first; row < first + count; row++) {
    const lo = ranges[row * 2];
    const step = (ranges[row * 2 + 1] - lo) / 255;
    const source = row * columns;
    const target = offset + (row - first) * columns;
    for (let c = 0; c < columns; c++) out[target + c] = lo + data[source + c] * step;
  }
}

/** All rows decoded into one `Float32Array` of `rows * columns` values. */
export function decodeRows(encoded: EncodedRows): Float32Array {
  const out = new Float32Array(encoded.rows * encoded.columns);
  decodeRowsInto(encoded, 0, encoded.rows, out);
  return out;
}

function isArrayBuffer(value: unknown): value is ArrayBuffer {
  // `instanceof` fails for buffers from another realm (iframes), the tag does not.
  return Object.prototype.toString.call(value) === "[object ArrayBuffer]";
}

function describeType(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? Object.prototype.toString.call(value) : typeof value;
}
