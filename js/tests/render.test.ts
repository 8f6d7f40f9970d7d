// @vitest-environment jsdom
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import widgetForModel, { type WidgetDefinition } from "../src/index";
import type { WidgetModel } from "../src/model";
import { FakeModel, encodeRows, float32View, widgetTraits } from "./helpers";

/** jsdom has no canvas: a 2D context that accepts every call. */
function fakeContext(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const target: Record<string | symbol, unknown> = {
    canvas,
    createImageData: (width: number, height: number) => ({ width, height, data: new Uint8ClampedArray(width * height * 4) }),
    measureText: (text: string) => ({ width: text.length * 6 }),
  };
  return new Proxy(target, {
    get: (object, key) => (key in object ? object[key] : () => undefined),
    set: (object, key, value) => {
      object[key] = value;
      return true;
    },
  }) as unknown as CanvasRenderingContext2D;
}

beforeAll(() => {
  const contexts = new WeakMap<HTMLCanvasElement, CanvasRenderingContext2D>();
  HTMLCanvasElement.prototype.getContext = function (this: HTMLCanvasElement) {
    if (!contexts.has(this)) contexts.set(this, fakeContext(this));
    return contexts.get(this);
  } as unknown as typeof HTMLCanvasElement.prototype.getContext;
});

const frame = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 40));
const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()?.();
  document.body.replaceChildren();
});

function byTestId<T extends HTMLElement>(root: ParentNode, id: string): T {
  const found = root.querySelector<T>(`[data-testid="${id}"]`);
  if (!found) throw new Error(`no element with data-testid ${id}`);
  return found;
}

/** As anywidget does: the module's factory is called once per model. */
const definitions = new WeakMap<FakeModel, WidgetDefinition>();
function definition(model: FakeModel): WidgetDefinition {
  const known = definitions.get(model) ?? widgetForModel();
  definitions.set(model, known);
  return known;
}

function mount(model: FakeModel): { el: HTMLElement; cleanup: () => void } {
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = definition(model).render({ model: model.handle() as WidgetModel, el });
  cleanups.push(cleanup);
  return { el, cleanup };
}

function initialize(model: FakeModel): void {
  cleanups.push(definition(model).initialize({ model: model.handle() as WidgetModel }));
}

function tileCentre(el: HTMLElement, tile: number): { clientX: number; clientY: number } {
  const rects = JSON.parse(byTestId(el, "attnwidget-grid").dataset.tileRects ?? "[]") as number[][];
  const [x, y, width, height] = rects[tile];
  return { clientX: x + width / 2, clientY: y + height / 2 };
}

function layers(runId: number, first: number): [object, unknown[]] {
  const { data, range } = encodeRows([
    [0, 1, 2, 3],
    [3, 2, 1, 0],
  ]);
  return [{ type: "layers", run_id: runId, first, count: 1 }, [data, range, float32View([0.5, 0.25])]];
}

/** Full-resolution matrices (T == N == 5) for the 6 tiles, and the maps for query [0]. */
function finishedRun(): Record<string, unknown> {
  const rows: number[][] = [];
  for (let tile = 0; tile < 6; tile++) for (let q = 0; q < 5; q++) rows.push([0, 1, 2, 3, 4].map((k) => (k === q ? 0.6 : 0.1)));
  const matrices = encodeRows(rows);
  const maps = encodeRows(Array.from({ length: 6 }, () => [0.1, 0.1, 0.1, 0.1]));
  return {
    run_id: 1,
    status: "done",
    layers_done: 3,
    maps: maps.data,
    maps_range: maps.range,
    specials: float32View(new Array(6).fill(0.6)),
    matrix_size: 5,
    matrices: matrices.data,
    matrices_range: matrices.range,
  };
}

describe("render", () => {
  it("builds the toolbar, status line, grid and a hidden overlay", () => {
    const model = new FakeModel(widgetTraits());
    initialize(model);
    const { el } = mount(model);
    for (const id of ["attnwidget-view", "attnwidget-colormap", "attnwidget-normalize", "attnwidget-status", "attnwidget-grid", "attnwidget-overlay"]) {
      expect(byTestId(el, id)).toBeTruthy();
    }
    const grid = byTestId<HTMLCanvasElement>(el, "attnwidget-grid");
    expect(grid.tabIndex).toBe(0);
    expect([grid.dataset.rows, grid.dataset.cols, grid.dataset.tilesDrawn]).toEqual(["3", "2", "0"]);
    expect(JSON.parse(grid.dataset.tileRects ?? "[]")).toHaveLength(6);
    expect(byTestId(el, "attnwidget-overlay").hidden).toBe(true);
  });

  it("shows partial rows while streaming, with progress in the status line", async () => {
    const model = new FakeModel(widgetTraits({ run_id: 1, status: "running" }));
    initialize(model);
    model.message(...layers(1, 0)); // before any view exists
    const { el } = mount(model);
    const grid = byTestId<HTMLCanvasElement>(el, "attnwidget-grid");
    expect(grid.dataset.tilesDrawn).toBe("2");
    model.message(...layers(1, 1));
    await frame();
    expect(grid.dataset.tilesDrawn).toBe("4");
    expect(byTestId(el, "attnwidget-status").textContent).toBe("Running tiny-vit: 2/3 layers");
  });

  it("keeps each model's data apart", () => {
    const first = new FakeModel(widgetTraits({ run_id: 1, status: "running" }));
    const second = new FakeModel(widgetTraits({ run_id: 1, status: "running" }));
    initialize(first);
    initialize(second);
    first.message(...layers(1, 0));
    const tilesDrawn = (model: FakeModel): string | undefined => byTestId<HTMLCanvasElement>(mount(model).el, "attnwidget-grid").dataset.tilesDrawn;
    expect([tilesDrawn(first), tilesDrawn(second), tilesDrawn(first)]).toEqual(["2", "0", "2"]);
  });

  it("opens a tile on click and closes it with Escape", async () => {
    const model = new FakeModel(widgetTraits(finishedRun()));
    initialize(model);
    const { el } = mount(model);
    const grid = byTestId<HTMLCanvasElement>(el, "attnwidget-grid");
    grid.dispatchEvent(new MouseEvent("click", { bubbles: true, ...tileCentre(el, 3) }));
    expect(model.get("selected")).toEqual([2, 2]);
    expect(model.get("overlay_open")).toBe(true);
    expect(model.saves).toBe(1);
    await frame();
    const overlay = byTestId(el, "attnwidget-overlay");
    expect(overlay.hidden).toBe(false);
    expect(byTestId(el, "attnwidget-overlay-canvas").dataset.layer).toBe("2");
    expect(grid.dataset.selected).toBe("2,2");
    expect(model.sent).toEqual([{ type: "request_head", layer: 2, head: 2 }]);
    grid.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowUp", bubbles: true }));
    expect(model.get("selected")).toEqual([1, 2]);
    grid.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    expect(model.get("overlay_open")).toBe(false);
    await frame();
    expect(overlay.hidden).toBe(true);
  });

  it("sets the query from a click on a patch and computes its maps without a kernel", async () => {
    const model = new FakeModel(widgetTraits({ ...finishedRun(), selected: [1, 1], overlay_open: true }));
    initialize(model);
    const { el } = mount(model);
    const canvas = byTestId<HTMLCanvasElement>(el, "attnwidget-overlay-canvas");
    const [x, y, width, height] = JSON.parse(canvas.dataset.gridRect ?? "[]") as number[];
    canvas.dispatchEvent(new MouseEvent("click", { clientX: x + (width * 3) / 4, clientY: y + height / 4 })); // patch (0, 1)
    expect(model.get("query")).toEqual([2]);
    await frame();
    expect(byTestId(el, "attnwidget-query").textContent).toBe("patch (0, 1)");
    expect(byTestId(el, "attnwidget-notice").textContent).toBe("");
    expect(byTestId<HTMLButtonElement>(el, "attnwidget-reset-query").disabled).toBe(false);
    byTestId(el, "attnwidget-reset-query").click();
    expect(model.get("query")).toEqual([0]);
  });

  it("keeps two views of one model in step and cleans up after itself", async () => {
    const model = new FakeModel(widgetTraits(finishedRun()));
    initialize(model);
    const listenersBefore = model.listenerCount();
    const first = mount(model);
    const second = mount(model);
    const select = byTestId<HTMLSelectElement>(first.el, "attnwidget-colormap");
    select.value = "magma";
    select.dispatchEvent(new Event("change"));
    expect(model.get("colormap")).toBe("magma");
    await frame();
    expect(byTestId<HTMLSelectElement>(second.el, "attnwidget-colormap").value).toBe("magma");
    first.cleanup();
    second.cleanup();
    expect(model.listenerCount()).toBe(listenersBefore);
    expect(first.el.childElementCount).toBe(0);
  });

  it("draws again when the page's theme changes, until it is removed", async () => {
    const model = new FakeModel(widgetTraits(finishedRun()));
    initialize(model);
    const { el, cleanup } = mount(model);
    const grid = byTestId<HTMLCanvasElement>(el, "attnwidget-grid");
    await frame();
    const draws = Number(grid.dataset.draws);
    document.body.dataset.jpThemeName = "JupyterLab Dark"; // as JupyterLab marks a theme switch
    await frame();
    expect(Number(grid.dataset.draws)).toBe(draws + 1);
    cleanup();
    document.body.dataset.jpThemeName = "JupyterLab Light";
    await frame();
    expect(Number(grid.dataset.draws)).toBe(draws + 1);
    delete document.body.dataset.jpThemeName;
  });

  it("names how the kernel pooled the matrices", async () => {
    const maps = encodeRows(Array.from({ length: 6 }, () => [1, 2, 3, 4]));
    const matrices = encodeRows(Array.from({ length: 6 * 2 }, () => [1, 2]));
    const pooled = { run_id: 1, status: "done", layers_done: 3, maps: maps.data, maps_range: maps.range, specials: float32View(new Array(6).fill(0)) };
    const traits = { ...pooled, matrices: matrices.data, matrices_range: matrices.range, matrix_size: 2, view: "matrix", selected: [1, 1], overlay_open: true };
    for (const pooling of ["max", "mean"]) {
      const model = new FakeModel(widgetTraits({ ...traits, pooling }));
      initialize(model);
      const { el } = mount(model);
      await frame();
      expect(byTestId(el, "attnwidget-overlay").textContent).toContain(`${pooling}-pooled to 2 × 2 of 5 tokens`);
    }
  });

  it("shows the generated tokens and their attention shares, queries them on click and names bad shares", async () => {
    const labels = ["A", " <b>cat</b>", "\n"];
    const shares = float32View(Array.from({ length: 3 * 3 * 3 }, (_, i) => [0.5, 0.3, 0.2][i % 3]));
    const model = new FakeModel(widgetTraits({ ...finishedRun(), layer_count: 3, query_labels: labels, query: [2], query_shares: shares }));
    initialize(model);
    const { el } = mount(model);
    await frame();
    const words = Array.from(byTestId(el, "attnwidget-transcript-words").children) as HTMLElement[];
    expect(words.map((word) => word.textContent)).toEqual(["A", " <b>cat</b>", "↵"]);
    expect(el.querySelector("b")).toBeNull();
    expect(byTestId(el, "attnwidget-status").textContent).toContain('query "↵"');
    const plot = byTestId<HTMLCanvasElement>(el, "attnwidget-shares");
    expect(byTestId(el, "attnwidget-shares-panel").hidden).toBe(false);
    expect(JSON.parse(plot.dataset.barRects ?? "[]")).toHaveLength(3);
    const layer = byTestId<HTMLSelectElement>(el, "attnwidget-shares-layer");
    expect([layer.value, layer.options.length, plot.dataset.layer]).toEqual(["mean", 4, "mean"]);
    layer.value = "1";
    layer.dispatchEvent(new Event("change"));
    expect(plot.dataset.layer).toBe("2");
    words[0].dispatchEvent(new MouseEvent("click", { bubbles: true }));
    words[1].dispatchEvent(new MouseEvent("click", { bubbles: true, shiftKey: true }));
    expect(model.get("query")).toEqual([0, 1]);
    await frame();
    expect(byTestId(el, "attnwidget-status").textContent).toContain('query "A <b>cat</b>" (tokens 0–1)');
    // Generation streams: a token more, with its shares; the words shown stay as they are.
    model.update({ query_labels: [...labels, " on"], query_shares: float32View(Array.from({ length: 4 * 3 * 3 }, () => 0.25)) });
    await frame();
    const grown = Array.from(byTestId(el, "attnwidget-transcript-words").children);
    expect([grown.length, grown[0] === words[0], grown[3].textContent]).toEqual([4, true, " on"]);
    expect(JSON.parse(plot.dataset.barRects ?? "[]")).toHaveLength(4);
    model.update({ query_shares: float32View([0.5, 0.5]) });
    await frame();
    expect(byTestId(el, "attnwidget-shares-panel").hidden).toBe(true);
    expect(byTestId(el, "attnwidget-status").textContent).toContain("query_shares: 2 float32 values, expected 4 tokens × 3 layers × 3 shares = 36");
    model.update({ query_labels: [], query_shares: new DataView(new ArrayBuffer(0)) });
    await frame();
    expect(byTestId(el, "attnwidget-transcript").hidden).toBe(true);
  });

  it("shows kernel text as text", async () => {
    const model = new FakeModel(widgetTraits({ status: "error", message: '<img src=x onerror="alert(1)">' }));
    const { el } = mount(model);
    await frame();
    expect(byTestId(el, "attnwidget-status").textContent).toBe('Error: <img src=x onerror="alert(1)">');
    expect(el.querySelector("img")).toBeNull();
  });
});
