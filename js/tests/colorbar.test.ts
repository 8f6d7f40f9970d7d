// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { drawColorBar } from "../src/dom";

/** A 2D context whose text is 0.5 em a character wide, recording each text with the font it had. */
function measuringContext(cssWidth: number): { context: CanvasRenderingContext2D; texts: { text: string; size: number }[] } {
  const canvas = document.createElement("canvas");
  canvas.width = cssWidth * 2; // a device pixel ratio of 2
  canvas.style.width = `${cssWidth}px`;
  const texts: { text: string; size: number }[] = [];
  const state = { font: "11px system-ui, sans-serif" };
  const size = (): number => parseFloat(state.font);
  const target: Record<string | symbol, unknown> = {
    canvas,
    measureText: (text: string) => ({ width: text.length * 0.5 * size() }),
    fillText: (text: string) => texts.push({ text, size: size() }),
  };
  const context = new Proxy(target, {
    get: (object, key) => (key === "font" ? state.font : key in object ? object[key] : () => undefined),
    set: (object, key, value) => {
      if (key === "font") state.font = value;
      else object[key] = value;
      return true;
    },
  }) as unknown as CanvasRenderingContext2D;
  return { context, texts };
}

describe("a colour bar's caption", () => {
  const lut = new Uint8Array(256 * 3);
  const rect = { x: 10, y: 4, width: 180, height: 10 };

  it("keeps its font when it fits", () => {
    const { context, texts } = measuringContext(240);
    drawColorBar(context, rect, lut, [0, 1], "colour range: l=1 h=1", "#000", 11);
    expect(texts.at(-1)).toEqual({ text: "colour range: l=1 h=1", size: 11 });
  });

  it("is set smaller to fit the canvas, never below 8 px", () => {
    const { context, texts } = measuringContext(320);
    const caption = "difference · colour range: l=1 h=1 (per head), centred on 0";
    drawColorBar(context, rect, lut, [-1, 1], caption, "#000", 11);
    const drawn = texts.at(-1)!;
    expect(drawn.text).toBe(caption);
    expect(drawn.size).toBe(10); // the largest size that fits: 59 characters of 5 px in 308 px
    expect(caption.length * 0.5 * drawn.size).toBeLessThanOrEqual(320 - rect.x - 2);
    const { context: narrow, texts: narrowTexts } = measuringContext(80);
    drawColorBar(narrow, rect, lut, [-1, 1], caption, "#000", 11);
    expect(narrowTexts.at(-1)!.size).toBe(8);
  });
});
