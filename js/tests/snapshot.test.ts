import { describe, expect, it } from "vitest";
import { boundingBox, fileName } from "../src/snapshot";

describe("snapshot", () => {
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
});
