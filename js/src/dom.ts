/** Small DOM helpers. Text is only ever set through `textContent`, never parsed as HTML. */
import { formatValue } from "./tokens";
import type { Lut } from "./colormaps";
import type { Rect } from "./layout";

export interface ElementOptions {
  readonly className?: string;
  readonly testId?: string;
  readonly text?: string;
  readonly attrs?: Readonly<Record<string, string>>;
}

/** Creates `<tag>` with a class, a `data-testid`, text and attributes. */
export function element<K extends keyof HTMLElementTagNameMap>(
  doc: Document,
  tag: K,
  options: ElementOptions = {},
  children: readonly Node[] = [],
): HTMLElementTagNameMap[K] {
  const node = doc.createElement(tag);
  if (options.className) node.className = options.className;
  if (options.testId) node.dataset.testid = options.testId;
  if (options.text !== undefined) node.textContent = options.text;
  for (const [name, value] of Object.entries(options.attrs ?? {})) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/** A labelled `<select>` of `[value, label]` choices; returns the label wrapping it and the select. */
export function labelledSelect(
  doc: Document,
  label: string,
  testId: string,
  choices: readonly (readonly [string, string])[],
): { label: HTMLLabelElement; select: HTMLSelectElement } {
  const select = element(doc, "select", { testId });
  for (const [value, text] of choices) select.append(element(doc, "option", { text, attrs: { value } }));
  return { label: element(doc, "label", {}, [doc.createTextNode(`${label} `), select]), select };
}

/** A labelled `<select>` over the values of an enumerated trait; `chosen()` reads it back as one of them. */
export function choiceSelect<V extends string>(
  doc: Document,
  label: string,
  testId: string,
  values: readonly V[],
  text: (value: V) => string = (value) => value,
): { label: HTMLLabelElement; select: HTMLSelectElement; chosen(): V } {
  const labelled = labelledSelect(doc, label, testId, values.map((value) => [value, text(value)] as const));
  return { ...labelled, chosen: () => values.find((value) => value === labelled.select.value) ?? values[0] };
}

/** Sets a `<select>`'s value when it differs (keeps the user's focus and avoids change events). */
export function syncSelect(select: HTMLSelectElement, value: string): void {
  if (select.value !== value) select.value = value;
}

/** Sets an element's text when it differs. */
export function syncText(node: Node, text: string): void {
  if (node.textContent !== text) node.textContent = text;
}

/** Sizes a canvas to `width x height` CSS pixels at the device pixel ratio; returns its 2D context scaled to CSS pixels. */
export function sizeCanvas(canvas: HTMLCanvasElement, width: number, height: number): CanvasRenderingContext2D | null {
  const ratio = devicePixelRatio(canvas);
  const deviceWidth = Math.max(1, Math.round(width * ratio));
  const deviceHeight = Math.max(1, Math.round(height * ratio));
  if (canvas.width !== deviceWidth) canvas.width = deviceWidth;
  if (canvas.height !== deviceHeight) canvas.height = deviceHeight;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const context = canvas.getContext("2d");
  context?.setTransform(deviceWidth / width, 0, 0, deviceHeight / height, 0, 0);
  return context;
}

/** The window's device pixel ratio (1 when unknown). */
export function devicePixelRatio(node: Node): number {
  const ratio = node.ownerDocument?.defaultView?.devicePixelRatio;
  return typeof ratio === "number" && ratio > 0 ? ratio : 1;
}

/** An event's position in the canvas's CSS pixels, correcting for CSS scaling of the element. */
export function canvasPoint(canvas: HTMLCanvasElement, event: MouseEvent): { x: number; y: number } {
  const box = canvas.getBoundingClientRect();
  const cssWidth = parseFloat(canvas.style.width) || box.width;
  const cssHeight = parseFloat(canvas.style.height) || box.height;
  const scaleX = box.width > 0 ? cssWidth / box.width : 1;
  const scaleY = box.height > 0 ? cssHeight / box.height : 1;
  return { x: (event.clientX - box.left) * scaleX, y: (event.clientY - box.top) * scaleY };
}

/** The element's text colour, for text drawn on canvases (follows light and dark themes). */
export function textColor(node: Element): string {
  const color = node.ownerDocument.defaultView?.getComputedStyle(node).color;
  return color || "#222";
}

/**
 * Draws a horizontal colour bar in `rect`, its lo / mid / hi values on the line below and
 * `caption` below those. `range` null draws the gradient with dashes for the numbers.
 */
export function drawColorBar(
  context: CanvasRenderingContext2D,
  rect: Rect,
  lut: Lut,
  range: readonly [number, number] | null,
  caption: string,
  color: string,
  fontSize: number,
): void {
  // For end-to-end tests: where the gradient lies; its numbers and caption are drawn below it.
  context.canvas.dataset.colorbarRect = JSON.stringify([rect.x, rect.y, rect.width, rect.height]);
  const steps = Math.max(1, Math.round(rect.width));
  for (let x = 0; x < steps; x++) {
    const i = Math.min(255, Math.floor((x / steps) * 256));
    context.fillStyle = `rgb(${lut[i * 3]},${lut[i * 3 + 1]},${lut[i * 3 + 2]})`;
    context.fillRect(rect.x + (x * rect.width) / steps, rect.y, rect.width / steps + 0.5, rect.height);
  }
  context.fillStyle = color;
  context.font = `${fontSize}px system-ui, sans-serif`;
  context.textBaseline = "top";
  const numbersY = rect.y + rect.height + 2;
  const [lo, hi] = range ?? [NaN, NaN];
  const labels: [string, CanvasTextAlign, number][] = [
    [formatValue(lo), "left", rect.x],
    [formatValue((lo + hi) / 2), "center", rect.x + rect.width / 2],
    [formatValue(hi), "right", rect.x + rect.width],
  ];
  for (const [text, align, x] of labels) {
    context.textAlign = align;
    context.fillText(text, x, numbersY);
  }
  context.textAlign = "left";
  // A caption wider than the canvas (a long range name with "centred on 0") is set smaller to fit.
  const canvas = context.canvas;
  const room = (parseFloat(canvas.style?.width ?? "") || canvas.width / devicePixelRatio(canvas)) - rect.x - 2;
  for (let size = fontSize; size > MIN_CAPTION_FONT && context.measureText(caption).width > room; size--) {
    context.font = `${size - 1}px system-ui, sans-serif`;
  }
  context.fillText(caption, rect.x, numbersY + fontSize + 4);
}

/** The smallest font a colour bar's caption is shrunk to, in CSS pixels. */
const MIN_CAPTION_FONT = 8;
