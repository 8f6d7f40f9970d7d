/**
 * "Save PNG": what a view shows, as one picture. The view's canvases (grid, overlay, colour bars)
 * and the overlay's title are drawn where they lie on screen, at the canvases' own resolution
 * (device pixels), on the page's background behind the view (white where there is none), so text
 * drawn in a dark theme's light colours stays readable; a text's own background (a highlighted word
 * of the transcript) is painted under it. The result is downloaded as a PNG file.
 */
export interface Box {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/** The smallest box holding every box (CSS pixels); empty boxes are ignored. */
export function boundingBox(boxes: readonly Box[]): Box | null {
  const shown = boxes.filter((box) => box.width > 0 && box.height > 0);
  if (shown.length === 0) return null;
  const x = Math.min(...shown.map((box) => box.x));
  const y = Math.min(...shown.map((box) => box.y));
  const right = Math.max(...shown.map((box) => box.x + box.width));
  const bottom = Math.max(...shown.map((box) => box.y + box.height));
  return { x, y, width: right - x, height: bottom - y };
}

/** A file name from free text (a model name, say): letters, digits, dots, dashes and underscores, no leading dot. */
export function fileName(...parts: string[]): string {
  const name = parts
    .map((part) => part.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[-.]+|[-.]+$/g, ""))
    .filter(Boolean)
    .join("-");
  return `${name || "attnwidget"}.png`;
}

/**
 * The background colours behind `node`, outermost first: its ancestors' (out of shadow roots too) and
 * its own computed `background-color`s. Painted in this order over white they give the colour the
 * page shows there.
 */
export function backgroundsBehind(node: Element): string[] {
  const view = node.ownerDocument.defaultView;
  const colours: string[] = [];
  for (let current: Element | null = node; current; current = parentOrHost(current)) {
    const colour = view?.getComputedStyle(current).backgroundColor;
    if (colour) colours.unshift(colour);
  }
  return colours;
}

/** The parent of `node`, or the host of the shadow root it heads (marimo renders widgets in one). */
function parentOrHost(node: Element): Element | null {
  if (node.parentElement) return node.parentElement;
  const root = node.getRootNode();
  return typeof ShadowRoot !== "undefined" && root instanceof ShadowRoot ? root.host : null;
}

/**
 * The shown `canvases` and `texts` composed as on screen, over white and then `backgrounds` (CSS
 * colours, painted in order; see `backgroundsBehind`), or `null` when nothing is shown.
 */
export function composeSnapshot(
  doc: Document,
  canvases: readonly HTMLCanvasElement[],
  texts: readonly HTMLElement[],
  backgrounds: readonly string[] = [],
): HTMLCanvasElement | null {
  const box = (node: Element): Box => {
    const rect = node.getBoundingClientRect();
    return { x: rect.left, y: rect.top, width: rect.width, height: rect.height };
  };
  const shownCanvases = canvases.filter((canvas) => canvas.isConnected && canvas.width > 0 && box(canvas).width > 0);
  const shownTexts = texts.filter((node) => node.isConnected && (node.textContent ?? "") !== "" && box(node).width > 0);
  const bounds = boundingBox([...shownCanvases, ...shownTexts].map(box));
  if (!bounds) return null;
  const ratio = Math.max(1, ...shownCanvases.map((canvas) => canvas.width / box(canvas).width), doc.defaultView?.devicePixelRatio || 1);
  const picture = doc.createElement("canvas");
  picture.width = Math.round(bounds.width * ratio);
  picture.height = Math.round(bounds.height * ratio);
  const context = picture.getContext("2d");
  if (!context) return null;
  for (const colour of ["white", ...backgrounds]) {
    context.fillStyle = colour;
    context.fillRect(0, 0, picture.width, picture.height);
  }
  context.scale(ratio, ratio);
  for (const canvas of shownCanvases) {
    const { x, y, width, height } = box(canvas);
    context.drawImage(canvas, x - bounds.x, y - bounds.y, width, height);
  }
  const view = doc.defaultView;
  for (const node of shownTexts) {
    const { x, y } = box(node);
    const style = view?.getComputedStyle(node);
    const behind = style?.backgroundColor ?? "";
    if (!isTransparent(behind)) {
      const { width, height } = box(node);
      context.fillStyle = behind; // a highlighted word's background
      context.fillRect(x - bounds.x, y - bounds.y, width, height);
    }
    context.font = style ? `${style.fontWeight} ${style.fontSize} ${style.fontFamily}` : "bold 13px sans-serif";
    context.fillStyle = style?.color || "black";
    context.textBaseline = "top";
    context.fillText(node.textContent ?? "", x - bounds.x, y - bounds.y);
  }
  return picture;
}

/** True for a CSS colour that paints nothing: "", "transparent" or one of alpha 0. */
export function isTransparent(colour: string): boolean {
  const alpha = colour.match(/^rgba?\((?:[^,)]*,){3}\s*([\d.]+)\s*\)$/) ?? colour.match(/\/\s*([\d.]+)\s*\)$/);
  return colour === "" || colour === "transparent" || (alpha !== null && Number(alpha[1]) === 0);
}

/** Downloads `picture` as the PNG file `name`. */
export function downloadPng(doc: Document, picture: HTMLCanvasElement, name: string): void {
  picture.toBlob((blob) => {
    if (blob) downloadBlob(doc, blob, name);
  }, "image/png");
}

/** Downloads `blob` as the file `name`. */
export function downloadBlob(doc: Document, blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = doc.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  doc.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
