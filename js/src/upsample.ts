/**
 * Resampling of value maps (never of colours: values are resampled first, then colour-mapped).
 *
 * Maps are row-major `Float32Array`s of `width x height` values. Upsampling uses pixel-centre
 * alignment (torch's `align_corners=False`): output pixel `x` samples source coordinate
 * `(x + 0.5) * width / outWidth - 0.5`, clamped to the edge.
 */
import type { Interpolation } from "./contract";
import { cellTokenRange } from "./layout";

/** Resamples a `width x height` map to `outWidth x outHeight` by bilinear or nearest interpolation. */
export function upsample(
  values: ArrayLike<number>,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
  mode: Interpolation,
): Float32Array {
  const out = new Float32Array(outWidth * outHeight);
  if (width <= 0 || height <= 0) return out.fill(NaN);
  const xs = sampleAxis(width, outWidth);
  const ys = sampleAxis(height, outHeight);
  for (let y = 0; y < outHeight; y++) {
    const row = y * outWidth;
    if (mode === "nearest") {
      const source = ys.nearest[y] * width;
      for (let x = 0; x < outWidth; x++) out[row + x] = values[source + xs.nearest[x]];
      continue;
    }
    const top = ys.low[y] * width;
    const bottom = ys.high[y] * width;
    const wy = ys.weight[y];
    for (let x = 0; x < outWidth; x++) {
      const left = xs.low[x];
      const right = xs.high[x];
      const wx = xs.weight[x];
      const upper = values[top + left] * (1 - wx) + values[top + right] * wx;
      const lower = values[bottom + left] * (1 - wx) + values[bottom + right] * wx;
      out[row + x] = upper * (1 - wy) + lower * wy;
    }
  }
  return out;
}

/**
 * Adaptive max-pooling of a `width x height` map to `outWidth x outHeight` (output cell `i` covers
 * source cells `floor(i * n / out) .. ceil((i + 1) * n / out) - 1`, as torch's adaptive pooling):
 * shrinks a map for a small tile without losing its peaks; with a larger output it repeats cells.
 * NaN values are skipped; a window of NaN gives NaN.
 */
export function maxPool(
  values: ArrayLike<number>,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
): Float32Array {
  const out = new Float32Array(outWidth * outHeight);
  const xs = poolWindows(width, outWidth);
  const ys = poolWindows(height, outHeight);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      let best = -Infinity;
      for (let sy = ys[y * 2]; sy <= ys[y * 2 + 1]; sy++) {
        const row = sy * width;
        for (let sx = xs[x * 2]; sx <= xs[x * 2 + 1]; sx++) {
          const v = values[row + sx];
          if (v > best) best = v;
        }
      }
      out[y * outWidth + x] = best === -Infinity ? NaN : best;
    }
  }
  return out;
}

/** First and last source cell of each output cell, flat. */
function poolWindows(size: number, outSize: number): Int32Array {
  const windows = new Int32Array(outSize * 2);
  for (let i = 0; i < outSize; i++) [windows[i * 2], windows[i * 2 + 1]] = cellTokenRange(i, size, outSize);
  return windows;
}

interface AxisSamples {
  nearest: Int32Array;
  low: Int32Array;
  high: Int32Array;
  weight: Float32Array;
}

function sampleAxis(size: number, outSize: number): AxisSamples {
  const samples: AxisSamples = {
    nearest: new Int32Array(outSize),
    low: new Int32Array(outSize),
    high: new Int32Array(outSize),
    weight: new Float32Array(outSize),
  };
  const scale = size / outSize;
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    samples.nearest[i] = Math.min(size - 1, Math.floor(centre));
    const source = Math.min(size - 1, Math.max(0, centre - 0.5));
    const low = Math.floor(source);
    samples.low[i] = low;
    samples.high[i] = Math.min(size - 1, low + 1);
    samples.weight[i] = source - low;
  }
  return samples;
}
