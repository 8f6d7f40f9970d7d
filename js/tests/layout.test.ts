import { describe, expect, it } from "vitest";
import { cellAt, cellTokenRange, computeGridLayout, gridCoverage, hitTest, pictureLayout, tileRect } from "../src/layout";

const layout = computeGridLayout({ rows: 12, cols: 12, rowLabelChars: 4, colLabelChars: 4, maxWidth: 720 });

describe("grid layout", () => {
  it("fits the tiles into the width, labels left and on top", () => {
    expect(layout.width).toBeLessThanOrEqual(720);
    expect(layout.originX).toBeGreaterThan(20);
    expect(layout.originY).toBeGreaterThan(10);
    expect(layout.tileSize).toBeGreaterThanOrEqual(12);
    expect(layout.tileSize).toBeLessThanOrEqual(72);
    expect(layout.colorBar.y).toBeGreaterThan(tileRect(layout, 11, 0).y + layout.tileSize);
    expect(layout.height).toBeGreaterThan(layout.colorBar.y + layout.colorBar.height);
  });

  it("hits the tile under every tile centre", () => {
    for (let row = 0; row < 12; row++) {
      for (let col = 0; col < 12; col++) {
        const rect = tileRect(layout, row, col);
        const hit = hitTest(layout, rect.x + rect.width / 2, rect.y + rect.height / 2);
        expect(hit).toMatchObject({ row, col, fx: 0.5, fy: 0.5 });
      }
    }
  });

  it("hits nothing over gaps, labels, the colour bar or outside", () => {
    const first = tileRect(layout, 0, 0);
    expect(hitTest(layout, first.x + first.width + layout.gap / 2, first.y + 5)).toBeNull();
    expect(hitTest(layout, first.x + 5, first.y + first.height + layout.gap / 2)).toBeNull();
    expect(hitTest(layout, layout.originX / 2, first.y + 5)).toBeNull();
    expect(hitTest(layout, first.x + 5, layout.originY / 2)).toBeNull();
    expect(hitTest(layout, layout.colorBar.x + 5, layout.colorBar.y + 5)).toBeNull();
    const last = tileRect(layout, 11, 11);
    expect(hitTest(layout, last.x + last.width + 1, last.y + 1)).toBeNull();
  });

  it("keeps 32 x 32 tiles at the minimum size and thins out the labels", () => {
    const big = computeGridLayout({ rows: 32, cols: 32, rowLabelChars: 4, colLabelChars: 4, maxWidth: 400 });
    expect(big.tileSize).toBe(12);
    expect(big.colLabelStep).toBeGreaterThan(1);
    expect(big.rowLabelStep).toBeGreaterThan(1);
    const rect = tileRect(big, 31, 31);
    expect(hitTest(big, rect.x + 1, rect.y + 1)).toMatchObject({ row: 31, col: 31 });
  });
});

describe("pooled cells", () => {
  it("cover floor(i*N/T) .. ceil((i+1)*N/T) - 1", () => {
    expect(cellTokenRange(0, 197, 50)).toEqual([0, 3]);
    expect(cellTokenRange(1, 197, 50)).toEqual([3, 7]);
    expect(cellTokenRange(49, 197, 50)).toEqual([193, 196]);
  });

  it("cover every token, one per cell at full resolution", () => {
    for (let i = 0; i < 197; i++) expect(cellTokenRange(i, 197, 197)).toEqual([i, i]);
    const covered = new Set<number>();
    for (let i = 0; i < 64; i++) {
      const [first, last] = cellTokenRange(i, 577, 64);
      for (let t = first; t <= last; t++) covered.add(t);
    }
    expect(covered.size).toBe(577);
  });
});

describe("picture layout", () => {
  it("fits the picture and places the crop region and the patch grid", () => {
    const picture = pictureLayout(800, 600, 400, [0.125, 0, 0.875, 1], [1, 1]);
    expect([picture.width, picture.height]).toEqual([400, 300]);
    expect(picture.crop).toEqual({ x: 50, y: 0, width: 300, height: 300 });
    expect(picture.grid).toEqual(picture.crop);
  });

  it("shrinks the grid when the input is not a multiple of the patch size", () => {
    expect(gridCoverage(14, 14, [224, 224], 16)).toEqual([1, 1]);
    expect(gridCoverage(14, 14, [230, 230], 16)).toEqual([224 / 230, 224 / 230]);
    expect(gridCoverage(14, 14, null, 16)).toEqual([1, 1]);
  });

  it("finds the cell under a point", () => {
    const rect = { x: 10, y: 10, width: 140, height: 140 };
    expect(cellAt(rect, 14, 14, 15, 15)).toEqual({ row: 0, col: 0 });
    expect(cellAt(rect, 14, 14, 149.9, 25)).toEqual({ row: 1, col: 13 });
    expect(cellAt(rect, 14, 14, 150, 25)).toBeNull();
    expect(cellAt(rect, 14, 14, 9, 25)).toBeNull();
  });
});
