/**
 * Colour lookup tables shared with Python (`attnwidget/colormaps.json`: per name, 256 RGB entries
 * as one string of 1536 hex digits), and the value -> colour step used by every canvas.
 */
import tables from "../../attnwidget/colormaps.json";
import { COLORMAPS, type ColormapName } from "./contract";
import { isOneOf } from "./model";

/** 256 RGB triples, flat: entry `i` is `lut[3i], lut[3i+1], lut[3i+2]`. */
export type Lut = Uint8Array;

const parsed = new Map<ColormapName, Lut>();

/** Parses a table of 256 RGB entries written as 1536 hex digits. */
export function parseLut(hex: string): Lut {
  if (hex.length !== 256 * 6 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new Error(`colormap table: expected 1536 hex digits, got ${hex.length} characters`);
  }
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < lut.length; i++) lut[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return lut;
}

/** The lookup table of `name`; an unknown name falls back to viridis. */
export function colormap(name: string): Lut {
  const key: ColormapName = isOneOf(COLORMAPS, name) ? name : COLORMAPS[0];
  let lut = parsed.get(key);
  if (!lut) {
    lut = parseLut(tables[key]);
    parsed.set(key, lut);
  }
  return lut;
}

/** Table index of a normalised value: [0, 1] -> 0..255 (clamped, as matplotlib does); NaN -> -1. */
export function lutIndex(t: number): number {
  if (Number.isNaN(t)) return -1;
  if (t <= 0) return 0;
  return Math.min(255, Math.floor(t * 256));
}

/** RGB of a normalised value, or `null` for NaN (no data). */
export function rgbAt(lut: Lut, t: number): [number, number, number] | null {
  const i = lutIndex(t);
  return i < 0 ? null : [lut[i * 3], lut[i * 3 + 1], lut[i * 3 + 2]];
}

/** A block of `width x height` values and the rectangle of an RGBA image it is painted into. */
export interface PaintTarget {
  /** RGBA pixels of the whole image. */
  readonly pixels: Uint8ClampedArray;
  /** Width of the whole image in pixels. */
  readonly stride: number;
  readonly x: number;
  readonly y: number;
}

/**
 * Colours row-major `values` (`width x height`) into `target`: value -> (v - lo) / (hi - lo) ->
 * table entry, opaque. NaN values become fully transparent; a flat range (hi <= lo) paints entry 0.
 */
export function paintValues(
  values: ArrayLike<number>,
  width: number,
  height: number,
  lo: number,
  hi: number,
  lut: Lut,
  target: PaintTarget,
): void {
  const scale = hi > lo ? 1 / (hi - lo) : 0;
  const { pixels, stride } = target;
  for (let y = 0; y < height; y++) {
    let p = ((target.y + y) * stride + target.x) * 4;
    for (let x = 0; x < width; x++, p += 4) {
      const i = lutIndex((values[y * width + x] - lo) * scale);
      if (i < 0) {
        pixels[p + 3] = 0;
        continue;
      }
      pixels[p] = lut[i * 3];
      pixels[p + 1] = lut[i * 3 + 1];
      pixels[p + 2] = lut[i * 3 + 2];
      pixels[p + 3] = 255;
    }
  }
}
