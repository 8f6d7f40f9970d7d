import { describe, expect, it } from "vitest";
import { bindStore } from "../src/binding";
import { AttentionStore } from "../src/store";
import { FakeModel, encodeRows, float32View, widgetTraits } from "./helpers";

function layers(runId: number, first: number): [object, unknown[]] {
  const { data, range } = encodeRows([
    [0, 1, 2, 3],
    [3, 2, 1, 0],
  ]);
  return [{ type: "layers", run_id: runId, first, count: 1 }, [data, range, float32View([0.5, 0.25])]];
}

const settle = (): Promise<void> => new Promise((resolve) => queueMicrotask(resolve));

describe("bindStore", () => {
  it("keeps layers streamed before any view exists, and lets go of the model when unbound", () => {
    const model = new FakeModel(widgetTraits({ run_id: 1, status: "running" }));
    const store = new AttentionStore();
    const unbind = bindStore(model.handle(), store);
    model.message(...layers(1, 2));
    expect(store.maps.count).toBe(2);
    unbind();
    expect(model.listenerCount()).toBe(0);
  });

  it("applies one kernel update (several traits) once", async () => {
    const model = new FakeModel(widgetTraits({ run_id: 1 }));
    const store = new AttentionStore();
    const unbind = bindStore(model.handle(), store);
    const before = store.version;
    const { data, range } = encodeRows(Array.from({ length: 6 }, () => [1, 2, 3, 4]));
    model.update({ maps: data, maps_range: range, specials: float32View(new Array(6).fill(0)), status: "done" });
    await settle();
    expect(store.version).toBe(before + 1);
    expect(store.maps.count).toBe(6);
    unbind();
  });

  it("applies trait changes before a message that follows them", () => {
    const model = new FakeModel(widgetTraits({ run_id: 1 }));
    const store = new AttentionStore();
    const unbind = bindStore(model.handle(), store);
    model.update({ run_id: 2, status: "running" });
    model.message(...layers(2, 0));
    expect(store.runId).toBe(2);
    expect(store.maps.count).toBe(2);
    unbind();
  });

  it("follows a query set by a view", async () => {
    const model = new FakeModel(widgetTraits({ run_id: 1, status: "done" }));
    const store = new AttentionStore();
    const unbind = bindStore(model.handle(), store);
    model.handle().set("query", [3]);
    await settle();
    expect(store.queryPending).toBe(true);
    unbind();
  });

  it("keeps matrices a new run left unchanged once the run ends", async () => {
    // 3 x 2 tiles of 2 x 2 patches after CLS: N = 5 tokens; matrices 2 x 2 (pooled) per tile.
    const tiles = 6;
    const maps = encodeRows(Array.from({ length: tiles }, () => [1, 2, 3, 4]));
    const matrices = encodeRows(Array.from({ length: tiles * 2 }, () => [1, 2]));
    const first = {
      run_id: 1,
      status: "done",
      maps: maps.data,
      maps_range: maps.range,
      specials: float32View(new Array(tiles).fill(0)),
      matrix_size: 2,
      matrices: matrices.data,
      matrices_range: matrices.range,
    };
    const model = new FakeModel(widgetTraits(first));
    const store = new AttentionStore();
    const unbind = bindStore(model.handle(), store);
    expect(store.matrixTiles.count).toBe(tiles);

    model.update({ run_id: 2, status: "running" }); // a new query: the kernel recomputes the maps
    await settle();
    expect(store.matrixTiles.count).toBe(0);
    const next = encodeRows(Array.from({ length: tiles }, () => [4, 3, 2, 1]));
    model.update({ maps: next.data, maps_range: next.range, query: [1], status: "done" });
    await settle();
    expect(store.maps.count).toBe(tiles);
    expect(store.matrixTiles.count).toBe(tiles); // the same matrices as before, shown again
    unbind();
  });
});
