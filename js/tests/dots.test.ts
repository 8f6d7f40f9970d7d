import { describe, expect, it } from "vitest";
import { type ScatterTraits, dotOfHead, firstSelected, followHeadDots, headOfDot, linkHeadDots } from "../src/dots";
import { FakeModel, widgetTraits } from "./helpers";

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

function gridAndDots(overrides: Record<string, unknown> = {}) {
  const grid = new FakeModel(widgetTraits({ layer_count: 3, head_count: 4, layers: [1, 3], heads: [1, 2, 3, 4], ...overrides }));
  const dots = new FakeModel<ScatterTraits>({ selected: null });
  return { grid, dots };
}

describe("dot numbering", () => {
  it("numbers dots layer by layer, head by head, and back", () => {
    for (let index = 0; index < 12; index++) expect(dotOfHead(headOfDot(index, 4), 4)).toBe(index);
    expect(headOfDot(5, 4)).toEqual([2, 2]);
    expect(dotOfHead(null, 4)).toBeNull();
    expect(dotOfHead([1, 5], 4)).toBeNull();
  });

  it("reads bqplot selections: null, lists and typed arrays", () => {
    expect(firstSelected(null)).toBeNull();
    expect(firstSelected(new Uint32Array([])) ).toBeNull();
    expect(firstSelected(new Uint32Array([7, 2]))).toBe(7);
    expect(firstSelected([3])).toBe(3);
    expect(firstSelected(["3"])).toBeNull();
  });
});

describe("linkHeadDots", () => {
  it("selects the head of a clicked dot, opens its overlay, and adds a hidden layer to the grid", () => {
    const { grid, dots } = gridAndDots();
    const unlink = linkHeadDots(grid.handle(), dots.handle());
    dots.update({ selected: new Uint32Array([1 * 4 + 2]) }); // layer 2, head 3: layer 2 is not shown
    expect(grid.get("selected")).toEqual([2, 3]);
    expect(grid.get("overlay_open")).toBe(true);
    expect(grid.get("layers")).toEqual([1, 2, 3]);
    expect(grid.get("heads")).toEqual([1, 2, 3, 4]);
    expect(grid.saves).toBe(1);
    unlink();
    expect(grid.listenerCount() + dots.listenerCount()).toBe(0);
  });

  it("selects the dot of a head selected in the grid, once", () => {
    const { grid, dots } = gridAndDots({ selected: [3, 4] });
    const unlink = linkHeadDots(grid.handle(), dots.handle());
    expect(Array.from(dots.get("selected") as Uint32Array)).toEqual([11]); // in step from the start
    grid.update({ selected: [1, 2] });
    expect(Array.from(dots.get("selected") as Uint32Array)).toEqual([1]);
    expect(dots.saves).toBe(2);
    expect(grid.saves).toBe(0); // the dot's change did not bounce back to the grid
    grid.update({ selected: [] });
    expect(dots.get("selected")).toBeNull();
    unlink();
  });

  it("keeps the grid's selection when the dot is cleared", () => {
    const { grid, dots } = gridAndDots({ selected: [1, 1] });
    const unlink = linkHeadDots(grid.handle(), dots.handle());
    dots.update({ selected: null });
    expect(grid.get("selected")).toEqual([1, 1]);
    unlink();
  });
});

describe("followHeadDots", () => {
  it("links to the scatter named by head_dots, and to a new one when it changes", async () => {
    const { grid, dots } = gridAndDots({ head_dots: "IPY_MODEL_first" });
    const other = new FakeModel<ScatterTraits>({ selected: null });
    const models: Record<string, FakeModel<ScatterTraits>> = { first: dots, second: other };
    const manager = { get_model: async (id: string) => models[id].handle() };
    const stop = followHeadDots(grid.handle(), manager);
    await settle();
    dots.update({ selected: new Uint32Array([0]) });
    expect(grid.get("selected")).toEqual([1, 1]);

    grid.update({ head_dots: "IPY_MODEL_second" });
    await settle();
    expect(dots.listenerCount()).toBe(0);
    other.update({ selected: new Uint32Array([5]) });
    expect(grid.get("selected")).toEqual([2, 2]);
    stop();
    expect(other.listenerCount()).toBe(0);
    expect(grid.listenerCount()).toBe(0);
  });

  it("does nothing without a scatter or a widget manager", () => {
    const { grid } = gridAndDots({ head_dots: null });
    const stop = followHeadDots(grid.handle(), undefined);
    stop();
    expect(grid.listenerCount()).toBe(0);
  });
});
