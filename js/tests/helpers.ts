/** Test helpers: payloads built by hand the way the kernel builds them (little endian). */
import type { GridTraits } from "../src/contract";
import type { WidgetModel } from "../src/model";

/** Little-endian float32 bytes of `values`, as a DataView (what anywidget hands over). */
export function float32View(values: readonly number[]): DataView {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((value, i) => view.setFloat32(i * 4, value, true));
  return view;
}

/** Row encoding of `rows` (see docs/architecture.md): uint8 data and float32 [lo, hi] per row. */
export function encodeRows(rows: readonly (readonly number[])[]): { data: DataView; range: DataView } {
  const columns = rows[0]?.length ?? 0;
  const data = new Uint8Array(rows.length * columns);
  const ranges: number[] = [];
  rows.forEach((row, r) => {
    const lo = Math.min(...row);
    const hi = Math.max(...row);
    ranges.push(lo, hi);
    row.forEach((v, c) => {
      data[r * columns + c] = hi === lo ? 0 : Math.round((255 * (v - lo)) / (hi - lo));
    });
  });
  return { data: new DataView(data.buffer), range: float32View(ranges) };
}

/** Largest absolute difference between two arrays. */
export function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let most = 0;
  for (let i = 0; i < Math.max(a.length, b.length); i++) most = Math.max(most, Math.abs((a[i] ?? NaN) - (b[i] ?? NaN)));
  return most;
}

type Handler = (...args: never[]) => void;

/**
 * A stand-in for the Backbone model behind anywidget: `handle()` gives a handle like the proxies
 * anywidget passes to `initialize` and `render` (a new object each time, same model behind it).
 */
export class FakeModel<T extends object = GridTraits> {
  readonly sent: object[] = [];
  saves = 0;
  private readonly attributes: Record<string, unknown>;
  private readonly handlers = new Map<string, Set<Handler>>();

  constructor(initial: Record<string, unknown>) {
    this.attributes = { ...initial };
  }

  /** Any value, odd ones too: readers must cope with whatever a saved state holds. */
  readonly get = ((name: string) => this.attributes[name]) as WidgetModel<T>["get"];

  /** Sets attributes together, then fires their change events (as a kernel update does). */
  update(values: Record<string, unknown>): void {
    const changed = Object.keys(values).filter((name) => this.attributes[name] !== values[name]);
    Object.assign(this.attributes, values);
    for (const name of changed) this.emit(`change:${name}`);
  }

  /** Delivers a custom message from the kernel. */
  message(content: object, buffers: unknown[] = []): void {
    this.emit("msg:custom", content, buffers);
  }

  listenerCount(): number {
    let count = 0;
    for (const set of this.handlers.values()) count += set.size;
    return count;
  }

  handle(): WidgetModel<T> {
    const handle = {
      get: this.get,
      set: (name: string, value: unknown) => this.update({ [name]: value }),
      save_changes: () => {
        this.saves += 1;
      },
      send: (content: object) => {
        this.sent.push(content);
      },
      on: (name: string, callback: Handler) => {
        if (!this.handlers.has(name)) this.handlers.set(name, new Set());
        this.handlers.get(name)?.add(callback);
      },
      off: (name?: string | null, callback?: Handler | null) => {
        if (name && callback) this.handlers.get(name)?.delete(callback);
      },
    };
    return handle as WidgetModel<T>;
  }

  private emit(name: string, ...args: unknown[]): void {
    for (const handler of [...(this.handlers.get(name) ?? [])]) (handler as (...a: unknown[]) => void)(...args);
  }
}

/** Traits of a small widget: `layers.length x heads.length` tiles of 2 x 2 patches after one CLS token. */
export function widgetTraits(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model_name: "tiny-vit",
    layers: [1, 2, 3],
    heads: [1, 2],
    grid: [2, 2],
    special_tokens: ["CLS"],
    token_count: 5,
    query: [0],
    maps: new DataView(new ArrayBuffer(0)),
    maps_range: new DataView(new ArrayBuffer(0)),
    specials: new DataView(new ArrayBuffer(0)),
    matrix_size: 0,
    matrices: new DataView(new ArrayBuffer(0)),
    matrices_range: new DataView(new ArrayBuffer(0)),
    run_id: 0,
    layers_done: 0,
    status: "empty",
    message: "",
    image: new DataView(new ArrayBuffer(0)),
    image_size: [0, 0],
    crop_box: [0, 0, 1, 1],
    input_size: [0, 0],
    patch_size: 0,
    view: "query",
    colormap: "viridis",
    normalize: "head",
    selected: [],
    overlay_open: false,
    alpha: 0.6,
    interpolation: "bilinear",
    ...overrides,
  };
}
