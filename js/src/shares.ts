/**
 * Where each generated token's attention went (`query_shares`): its shares on the image, the other
 * text and the sink tokens (`SHARE_KINDS`), per layer. Drawn as one stacked bar per token, in the
 * transcript's order, for one layer or the mean over layers; hovering a bar shows its numbers as
 * text, clicking it chooses that token as the transcript's words do.
 *
 * Decoding, the bars' geometry and the read-out are pure; `SharesPlot` draws them on a canvas (so
 * Save PNG takes it as it is). For end-to-end tests the canvas carries `data-bar-rects` (JSON
 * `[x, y, width, height]` per token, CSS pixels) and `data-layer` ("mean" or the 1-based layer).
 */
import { SHARE_KINDS } from "./contract";
import { readFloat32 } from "./decode";
import { element, labelledSelect, sizeCanvas, syncSelect, syncText, textColor } from "./dom";
import type { Rect } from "./layout";
import { type QuerySpan, formatValue, visibleToken } from "./tokens";

type ShareKind = (typeof SHARE_KINDS)[number];

/** `query_shares` decoded: `values[(token * layers + layer) * kinds + kind]`. */
export interface QueryShares {
  readonly tokens: number;
  readonly layers: number;
  readonly values: Float32Array;
}

/**
 * `query_shares` for `tokens` generated tokens and `layers` layers; null when it holds nothing. A
 * payload of another length, or with values that are not finite shares, throws an Error naming it.
 */
export function readQueryShares(value: unknown, tokens: number, layers: number): QueryShares | null {
  const kinds = SHARE_KINDS.length;
  const values = readFloat32(value, "query_shares");
  if (values.length === 0) return null;
  const expected = tokens * layers * kinds;
  if (values.length !== expected) {
    throw new Error(
      `query_shares: ${values.length} float32 values, expected ${tokens} tokens × ${layers} layers × ${kinds} shares = ${expected}`,
    );
  }
  if (values.some((share) => !Number.isFinite(share) || share < 0)) {
    throw new Error("query_shares: shares must be finite and never negative");
  }
  return { tokens, layers, values };
}

/** Each token's shares (`kinds` per token) in `layer` (0-based), or their mean over layers for null. */
export function tokenShares(shares: QueryShares, layer: number | null): Float32Array {
  const kinds = SHARE_KINDS.length;
  const out = new Float32Array(shares.tokens * kinds);
  const chosen = layer === null ? Array.from({ length: shares.layers }, (_, i) => i) : [layer];
  for (let token = 0; token < shares.tokens; token++) {
    for (const l of chosen) {
      for (let kind = 0; kind < kinds; kind++) out[token * kinds + kind] += shares.values[(token * shares.layers + l) * kinds + kind];
    }
    for (let kind = 0; kind < kinds; kind++) out[token * kinds + kind] /= chosen.length;
  }
  return out;
}

/** One token's bar: where it lies and its segments, bottom up in `SHARE_KINDS` order. */
export interface Bar {
  readonly rect: Rect;
  readonly segments: readonly { readonly kind: ShareKind; readonly rect: Rect }[];
}

/** The plot's geometry: the bars, the plot area (share 0 at its bottom, 1 at its top) and the size. */
export interface BarLayout {
  readonly bars: readonly Bar[];
  readonly plot: Rect;
  readonly width: number;
  readonly height: number;
}

/** Sizes of the plot, in CSS pixels. */
const PLOT = { left: 28, top: 22, height: 64, bottom: 10, minStep: 3, maxStep: 22, gap: 1, minWidth: 300 } as const;

/**
 * Bars for `values` (`SHARE_KINDS.length` per token): equal steps filling `maxWidth` (between 3 and 22
 * pixels a token; beyond `maxWidth` when the tokens need more; the legend needs 300 pixels), each share's height in proportion,
 * stacked from the bottom and cut at the plot's top (shares of one token sum to 1 or less).
 */
export function barLayout(values: Float32Array, maxWidth: number): BarLayout {
  const kinds = SHARE_KINDS.length;
  const count = values.length / kinds;
  const room = Math.max(0, maxWidth - PLOT.left - 4);
  const step = Math.max(PLOT.minStep, Math.min(PLOT.maxStep, count > 0 ? Math.floor(room / count) : PLOT.maxStep));
  const plot = { x: PLOT.left, y: PLOT.top, width: step * count, height: PLOT.height };
  const bottom = plot.y + plot.height;
  const bars: Bar[] = [];
  for (let token = 0; token < count; token++) {
    const x = plot.x + token * step;
    const width = Math.max(1, step - PLOT.gap);
    let top = bottom;
    const segments = SHARE_KINDS.map((kind, k) => {
      const height = Math.min(top - plot.y, values[token * kinds + k] * plot.height);
      top -= height;
      return { kind, rect: { x, y: top, width, height } };
    });
    bars.push({ rect: { x, y: plot.y, width, height: plot.height }, segments });
  }
  return { bars, plot, width: Math.max(PLOT.minWidth, plot.x + plot.width + 4), height: bottom + PLOT.bottom };
}

/** The token whose bar's column holds (x, y), or null. */
export function barAt(layout: BarLayout, x: number, y: number): number | null {
  const { plot } = layout;
  if (y < plot.y || y > plot.y + plot.height + PLOT.bottom || x < plot.x || x >= plot.x + plot.width) return null;
  const token = Math.floor(((x - plot.x) / plot.width) * layout.bars.length);
  return token >= 0 && token < layout.bars.length ? token : null;
}

/** What the layer selector shows: "mean over layers" or "l=3". */
function layerName(layer: number | null): string {
  return layer === null ? "mean over layers" : `l=${layer + 1}`;
}

/** The read-out of a token's bar: `token 3 " cat" · image 0.62 · text 0.3 · sink 0.08 (l=2)`. */
export function shareText(labels: readonly string[], values: Float32Array, token: number, layer: number | null): string {
  const kinds = SHARE_KINDS.length;
  const parts = SHARE_KINDS.map((kind, k) => `${kind} ${formatValue(values[token * kinds + k])}`);
  return `token ${token} "${visibleToken(labels[token] ?? "")}" · ${parts.join(" · ")} (${layerName(layer)})`;
}

/** The colours of the shares, on light and on dark backgrounds: 3:1 or more against either (WCAG 1.4.11). */
export const SHARE_COLOURS: Readonly<Record<"light" | "dark", Readonly<Record<ShareKind, string>>>> = {
  light: { image: "#1565c0", text: "#b34700", sink: "#616161" },
  dark: { image: "#64b5f6", text: "#ffb74d", sink: "#bdbdbd" },
};

/** The palette for text of `colour` (a CSS rgb() colour): light text means a dark background. */
export function sharePalette(colour: string): Readonly<Record<ShareKind, string>> {
  const [r, g, b] = (colour.match(/[\d.]+/g) ?? ["0", "0", "0"]).map(Number);
  return (0.299 * r + 0.587 * g + 0.114 * b) / 255 > 0.5 ? SHARE_COLOURS.dark : SHARE_COLOURS.light;
}

/** What the plot shows. */
export interface SharesScene {
  readonly labels: readonly string[];
  readonly shares: QueryShares;
  readonly span: QuerySpan | null;
  readonly hovered: number | null;
  readonly maxWidth: number;
}

/** Callbacks of the plot: a token's bar clicked (shift: extend the span), a bar hovered (or null). */
export interface SharesHandlers {
  click(token: number, shift: boolean): void;
  hover(token: number | null): void;
}

/** The plot: a layer selector, the bars' canvas with its legend, and a read-out line. */
export class SharesPlot {
  readonly root: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  readonly readout: HTMLElement;
  private readonly select: HTMLSelectElement;
  private layout: BarLayout | null = null;
  private scene: SharesScene | null = null;
  private readonly listeners: [EventTarget, string, EventListener][];

  constructor(doc: Document, handlers: SharesHandlers) {
    const selector = labelledSelect(doc, "Attention shares:", "attnwidget-shares-layer", []);
    this.select = selector.select;
    this.canvas = element(doc, "canvas", { className: "aw-shares-plot", testId: "attnwidget-shares", attrs: { role: "img" } });
    this.readout = element(doc, "div", { className: "aw-hint", testId: "attnwidget-shares-readout" });
    const scroller = element(doc, "div", { className: "aw-shares-scroll" }, [this.canvas]);
    this.root = element(doc, "div", { className: "aw-shares", testId: "attnwidget-shares-panel" }, [selector.label, scroller, this.readout]);
    this.root.hidden = true;
    const tokenAt = (event: MouseEvent): number | null => {
      const box = this.canvas.getBoundingClientRect();
      return this.layout && barAt(this.layout, event.clientX - box.left, event.clientY - box.top);
    };
    const onClick = (event: MouseEvent): void => {
      const token = tokenAt(event);
      if (token !== null) handlers.click(token, event.shiftKey);
    };
    const onMove = (event: PointerEvent): void => handlers.hover(tokenAt(event));
    const onLeave = (): void => handlers.hover(null);
    const onLayer = (): void => {
      if (this.scene) this.draw(this.scene);
    };
    this.listeners = [
      [this.canvas, "click", onClick as EventListener],
      [this.canvas, "pointermove", onMove as EventListener],
      [this.canvas, "pointerleave", onLeave],
      [this.select, "change", onLayer],
    ];
    for (const [target, type, listener] of this.listeners) target.addEventListener(type, listener);
  }

  /** Hides the plot. */
  hide(): void {
    this.root.hidden = true;
    this.scene = null;
  }

  /** Draws `scene` for the layer chosen in the selector (the mean over layers by default). */
  draw(scene: SharesScene): void {
    this.scene = scene;
    this.root.hidden = false;
    const layer = this.syncLayers(scene.shares.layers);
    const values = tokenShares(scene.shares, layer);
    const layout = barLayout(values, scene.maxWidth);
    this.layout = layout;
    const context = sizeCanvas(this.canvas, layout.width, layout.height);
    const text = textColor(this.root);
    const palette = sharePalette(text);
    this.canvas.dataset.layer = layer === null ? "mean" : String(layer + 1);
    this.canvas.dataset.barRects = JSON.stringify(layout.bars.map(({ rect }) => [rect.x, rect.y, rect.width, rect.height]));
    this.canvas.setAttribute("aria-label", `Shares of attention on the image, text and sink tokens per generated token, ${layerName(layer)}`);
    syncText(this.readout, scene.hovered !== null && scene.hovered < scene.shares.tokens ? shareText(scene.labels, values, scene.hovered, layer) : "Hover a bar for its shares; click it to query its token.");
    if (!context) return;
    context.clearRect(0, 0, layout.width, layout.height);
    for (const [token, bar] of layout.bars.entries()) {
      for (const segment of bar.segments) {
        context.fillStyle = palette[segment.kind];
        context.fillRect(segment.rect.x, segment.rect.y, segment.rect.width, segment.rect.height);
      }
      const chosen = scene.span !== null && token >= scene.span.first && token <= scene.span.last;
      if (chosen || token === scene.hovered) {
        context.fillStyle = text;
        context.fillRect(bar.rect.x, layout.plot.y + layout.plot.height + 2, bar.rect.width, chosen ? 4 : 2);
      }
    }
    this.drawAxesAndLegend(context, layout, palette, text, layerName(layer));
  }

  dispose(): void {
    for (const [target, type, listener] of this.listeners) target.removeEventListener(type, listener);
    this.root.remove();
  }

  /** Keeps the selector's options at "mean" plus one per layer; returns the chosen layer (null: mean). */
  private syncLayers(layers: number): number | null {
    const doc = this.select.ownerDocument;
    const options = this.select.options;
    if (options.length !== layers + 1) {
      const chosen = this.select.value;
      this.select.replaceChildren(
        ...[null, ...Array.from({ length: layers }, (_, i) => i)].map((layer) =>
          element(doc, "option", { text: layerName(layer), attrs: { value: layer === null ? "mean" : String(layer) } }),
        ),
      );
      const kept = Array.from(this.select.options).some((option) => option.value === chosen);
      syncSelect(this.select, kept ? chosen : "mean");
    }
    return this.select.value === "mean" ? null : Number(this.select.value);
  }

  /** The 0 and 1 of the share axis, and the legend: each kind's colour and name, then what is shown (`caption`). */
  private drawAxesAndLegend(context: CanvasRenderingContext2D, layout: BarLayout, palette: Readonly<Record<ShareKind, string>>, text: string, caption: string): void {
    const { plot } = layout;
    context.fillStyle = text;
    context.font = "11px system-ui, sans-serif";
    context.textAlign = "right";
    context.textBaseline = "middle";
    context.fillText("1", plot.x - 4, plot.y);
    context.fillText("0", plot.x - 4, plot.y + plot.height);
    context.fillRect(plot.x - 2, plot.y, 1, plot.height);
    context.textAlign = "left";
    context.textBaseline = "top";
    let x = plot.x;
    for (const kind of SHARE_KINDS) {
      context.fillStyle = palette[kind];
      context.fillRect(x, 4, 10, 10);
      context.fillStyle = text;
      context.fillText(kind, x + 14, 3);
      x += 14 + context.measureText(kind).width + 12;
    }
    context.fillText(`(${caption})`, x, 3);
  }
}
