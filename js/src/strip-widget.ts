/**
 * The comparison strip widget (`attnwidget.strip.StripWidget`, anywidget module): the strip as the
 * kernel drew it, a click on a panel opens that panel full size with its caption (text, never
 * HTML), and "Save PNG" downloads the strip. Everything comes from synced traits, so a saved
 * notebook or an exported page works without a kernel.
 */
import { asBytes } from "./decode";
import { element, syncText } from "./dom";
import type { StripTraits } from "./contract";
import type { WidgetModel } from "./model";
import { downloadBlob, fileName } from "./snapshot";
import { ensureStylesheet } from "./styles";

type Box = readonly [number, number, number, number];

const STYLE = `
.attnwidget-strip { font: 13px/1.4 var(--jp-ui-font-family, system-ui, sans-serif); color: var(--jp-ui-font-color1, #1f1f1f); }
.attnwidget-strip button { font: inherit; margin-bottom: 6px; }
.attnwidget-strip .aw-strip { display: block; max-width: 100%; cursor: pointer; }
.attnwidget-strip figure { margin: 8px 0 0; }
.attnwidget-strip figure[hidden] { display: none; }
.attnwidget-strip figure img { display: block; max-width: 100%; }
.attnwidget-strip figcaption { color: var(--jp-ui-font-color2, #555); margin-top: 4px; overflow-wrap: anywhere; }
`;

/** The index of the box holding (x, y), in the picture's own pixels, or -1. */
export function panelAt(boxes: readonly Box[], x: number, y: number): number {
  return boxes.findIndex(([x0, y0, x1, y1]) => x >= x0 && x < x1 && y >= y0 && y < y1);
}

/** Reads the `boxes` trait: [x0, y0, x1, y1] per panel; malformed entries become empty boxes. */
export function readBoxes(value: unknown): Box[] {
  if (!Array.isArray(value)) return [];
  return value.map((box) =>
    Array.isArray(box) && box.length === 4 && box.every((v) => typeof v === "number") ? [box[0], box[1], box[2], box[3]] : [0, 0, 0, 0],
  );
}

/** The bytes of a binary trait, or `null` for none or an unreadable value. */
function bytesOf(value: unknown): Uint8Array | null {
  try {
    const bytes = asBytes(value, "strip");
    return bytes.length > 0 ? bytes : null;
  } catch {
    return null;
  }
}

/** An object URL for image bytes, or "" for none; the caller revokes it. */
function imageUrl(value: unknown, type: string): string {
  const bytes = bytesOf(value);
  return bytes ? URL.createObjectURL(new Blob([bytes.slice()], { type })) : "";
}

function render({ model, el }: { model: WidgetModel<StripTraits>; el: HTMLElement }): () => void {
  const doc = el.ownerDocument;
  ensureStylesheet(el, "attnwidget-strip-styles", STYLE);
  const save = element(doc, "button", { testId: "attnwidget-strip-save", text: "Save PNG", attrs: { type: "button" } });
  const strip = element(doc, "img", { className: "aw-strip", testId: "attnwidget-strip", attrs: { alt: "comparison strip", tabindex: "0" } });
  const full = element(doc, "img", { testId: "attnwidget-strip-panel", attrs: { alt: "" } });
  const caption = element(doc, "figcaption", { testId: "attnwidget-strip-caption" });
  const figure = element(doc, "figure", {}, [full, caption]);
  const root = element(doc, "div", { className: "attnwidget-strip" }, [save, strip, figure]);
  el.append(root);
  const urls: string[] = [];

  const draw = (): void => {
    for (const url of urls.splice(0)) URL.revokeObjectURL(url);
    const picture = imageUrl(model.get("picture"), "image/png");
    urls.push(picture);
    strip.src = picture;
    const selected = Number(model.get("selected"));
    const panels = model.get("panels");
    const panel = Array.isArray(panels) && selected >= 0 ? imageUrl(panels[selected], "image/jpeg") : "";
    figure.hidden = panel === "";
    strip.dataset.selected = String(panel ? selected : -1);
    if (panel) {
      urls.push(panel);
      full.src = panel;
      const captions = model.get("captions");
      const text = Array.isArray(captions) ? String(captions[selected] ?? "") : "";
      syncText(caption, text);
      full.alt = text;
    }
  };
  const choose = (index: number): void => {
    model.set("selected", index);
    try {
      model.save_changes();
    } catch (error) {
      console.warn("attnwidget: could not sync to the kernel", error);
    }
  };
  const onClick = (event: MouseEvent): void => {
    const rect = strip.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) return;
    const x = ((event.clientX - rect.left) * strip.naturalWidth) / rect.width;
    const y = ((event.clientY - rect.top) * strip.naturalHeight) / rect.height;
    const index = panelAt(readBoxes(model.get("boxes")), x, y);
    choose(index === Number(model.get("selected")) ? -1 : index); // a second click closes it
  };
  const onKey = (event: KeyboardEvent): void => {
    if (event.key !== "Escape") return;
    choose(-1);
    event.preventDefault();
  };
  const onSave = (): void => {
    const picture = bytesOf(model.get("picture"));  // the kernel's PNG itself, with its DPI
    if (picture) downloadBlob(doc, new Blob([picture.slice()], { type: "image/png" }), fileName(String(model.get("file_name") || "comparison-strip")));
  };
  strip.addEventListener("click", onClick);
  root.addEventListener("keydown", onKey);
  save.addEventListener("click", onSave);
  const shown = ["change:picture", "change:panels", "change:captions", "change:selected"] as const;
  for (const event of shown) model.on(event, draw);
  draw();
  return () => {
    for (const event of shown) model.off(event, draw);
    for (const url of urls) URL.revokeObjectURL(url);
    root.remove();
  };
}

export default { render };
