// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { backgroundsBehind, boundingBox, fileName, isTransparent } from "../src/snapshot";

describe("snapshot", () => {
  it("paints a text's background only when it shows one", () => {
    expect(["", "transparent", "rgba(0, 0, 0, 0)", "rgb(0 0 0 / 0)"].every(isTransparent)).toBe(true);
    expect(["rgb(189, 189, 189)", "rgb(0, 0, 0)", "rgba(0, 0, 0, 0.5)", "Highlight"].some(isTransparent)).toBe(false);
  });

  it("bounds the shown parts, ignoring empty ones", () => {
    const grid = { x: 10, y: 20, width: 300, height: 200 };
    const overlay = { x: 330, y: 20, width: 256, height: 300 };
    expect(boundingBox([grid, overlay, { x: 0, y: 0, width: 0, height: 0 }])).toEqual({ x: 10, y: 20, width: 576, height: 300 });
    expect(boundingBox([])).toBeNull();
  });

  it("names files after free text without unsafe characters", () => {
    expect(fileName("attnwidget", "google/vit-base-patch16-224", "l8", "h2")).toBe("attnwidget-google-vit-base-patch16-224-l8-h2.png");
    expect(fileName("attnwidget", "<img src=x>", "")).toBe("attnwidget-img-src-x.png");
    expect(fileName("", "../..")).toBe("attnwidget.png");
    expect(fileName("attnwidget", "model.v2")).toBe("attnwidget-model.v2.png");
  });

  it("lists the backgrounds behind a node, outermost first", () => {
    document.body.innerHTML = '<div style="background-color: rgb(17, 17, 17)"><p style="background-color: rgba(255, 0, 0, 0.5)"><span>x</span></p></div>';
    const colours = backgroundsBehind(document.querySelector("span")!).filter((colour) => colour !== "rgba(0, 0, 0, 0)" && colour !== "transparent");
    expect(colours).toEqual(["rgb(17, 17, 17)", "rgba(255, 0, 0, 0.5)"]);
  });

  it("lists the backgrounds outside a shadow root too, as for a widget that marimo renders in one", () => {
    document.body.innerHTML = '<div style="background-color: rgb(17, 17, 17)"><span id="host"></span></div>';
    const shadow = document.getElementById("host")!.attachShadow({ mode: "open" });
    shadow.innerHTML = '<p style="background-color: rgba(255, 0, 0, 0.5)"><span>x</span></p>';
    const colours = backgroundsBehind(shadow.querySelector("span")!).filter((colour) => colour !== "rgba(0, 0, 0, 0)" && colour !== "transparent");
    expect(colours).toEqual(["rgb(17, 17, 17)", "rgba(255, 0, 0, 0.5)"]);
  });
});
